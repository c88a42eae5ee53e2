"""Benchmark: the CPU demo over several RL seeds — SDPG vs GRPO (vs PPO) with mean ± std per method.

One warm start (trained with the first seed) is shared by every seed, so the spread measures the RL runs (their
sampling and problem draws), not the warm start; all held-out evaluations use the same evaluation seed. Each
seed is a full demo folder (``<output>/seed-<k>/``, ``report.md`` included); seeds after the first link the
first seed's ``warmstart/``. Rerunning with the same ``--output`` resumes (finished stages are skipped).

Variants add SDPG runs with other settings under their own label, e.g. the β sweep
``--variants 'sdpg-b1e-3:beta=0.001,sdpg-b0.5:beta=0.5,sdpg-gated:gate_positive=true'``.

Prints one JSON line per method: the mean and std over seeds of the held-out pass@1 (per env and mean), the
PyFunc compile-error rate, steps-to-threshold (one threshold for all seeds: halfway from the first step's
training pass rate to the best final one over every run, unless ``--threshold``), the final training pass rate
and the training time, plus each mean's ratio to GRPO's measured in the same run. Writes ``summary.md`` and
``summary.json`` next to the seed folders.

    python benchmarks/demo_seeds.py --seeds 0,1,2 --steps 30 --output runs/demo-seeds
    python benchmarks/demo_seeds.py --quick --seeds 0,1,2 --output /tmp/demo-seeds-quick   # plumbing, minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sdpg_train.demo.report import auto_threshold, steps_to_threshold, train_pass_rates  # noqa: E402
from sdpg_train.demo.run import DemoConfig, quick_config, run_demo, split_methods  # noqa: E402

METRICS = ("mean_pass_rate", "Arith-v0", "PyFunc-v0", "compile_error_rate", "final_train_pass_rate",
           "steps_to_threshold", "train_seconds")


def parse_variants(text: str) -> dict[str, dict[str, Any]]:
    """``'label:key=value:key=value,label2:...'`` -> ``{label: {"loss": "sdpg", key: value}}`` (JSON values)."""
    out: dict[str, dict[str, Any]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        label, *pairs = item.split(":")
        fields: dict[str, Any] = {"loss": "sdpg"}
        for pair in pairs:
            key, _, raw = pair.partition("=")
            try:
                fields[key] = json.loads(raw)
            except json.JSONDecodeError:
                fields[key] = raw
        out[label] = fields
    return out


def run_seed(base: DemoConfig, root: Path, seed: int, first: int) -> dict[str, Any]:
    cfg = replace(base, output_dir=str(root / f"seed-{seed}"), seed=seed)
    warm = Path(cfg.output_dir) / "warmstart"
    if seed != first and not warm.exists():
        warm.parent.mkdir(parents=True, exist_ok=True)
        warm.symlink_to(Path("..") / f"seed-{first}" / "warmstart", target_is_directory=True)
    run_demo(cfg)
    return json.loads((Path(cfg.output_dir) / "report.json").read_text())


def per_run_values(rep: dict[str, Any], method: str, root: Path, threshold: float) -> dict[str, float | None]:
    ev, info = rep["evals"][method], rep["methods"][method]
    run = root / f"seed-{rep['config']['seed']}" / info["run_path"]
    return {"mean_pass_rate": ev["mean_pass_rate"], "Arith-v0": ev["sdpg/Arith-v0"]["pass_rate"],
            "PyFunc-v0": ev["sdpg/PyFunc-v0"]["pass_rate"],
            "compile_error_rate": ev["sdpg/PyFunc-v0"]["compile_error_rate"],
            "final_train_pass_rate": info["final_train_pass_rate"],
            "steps_to_threshold": steps_to_threshold(train_pass_rates(run), threshold),
            "train_seconds": info["train_seconds"]}


def mean_std(values: list[float | None], budget: int | None = None) -> dict[str, Any]:
    """Mean ± std; for steps-to-threshold a run that never reached it counts as ``budget + 1``."""
    reached = [v for v in values if v is not None]
    vals = [float(v) if v is not None else float(budget + 1) for v in values] if budget else reached
    out: dict[str, Any] = {"mean": statistics.fmean(vals) if vals else None,
                           "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    if budget:
        out["reached"] = f"{len(reached)}/{len(values)}"
    return out


def summarize(reports: list[dict[str, Any]], methods: list[str], root: Path, threshold: float | None
              ) -> tuple[list[dict[str, Any]], float]:
    curves = {f"{r['config']['seed']}/{m}": train_pass_rates(root / f"seed-{r['config']['seed']}" /
                                                            r["methods"][m]["run_path"])
              for r in reports for m in methods}
    thr = threshold if threshold is not None else auto_threshold(curves)
    steps = reports[0]["budget"]["steps"]
    rows = []
    for m in methods:
        runs = [per_run_values(r, m, root, thr) for r in reports]
        row: dict[str, Any] = {"method": m, "loss": reports[0]["methods"][m]["loss"],
                               "seeds": [r["config"]["seed"] for r in reports], "threshold": thr,
                               "budget": reports[0]["budget"]}
        for key in METRICS:
            row[key] = mean_std([x[key] for x in runs], steps if key == "steps_to_threshold" else None)
        row["per_seed"] = runs
        rows.append(row)
    base = next((r for r in rows if r["method"] == "grpo"), None)
    for row in rows:
        if base is not None:
            row["vs_grpo"] = {k: (row[k]["mean"] / base[k]["mean"] if base[k]["mean"] else None)
                              for k in ("mean_pass_rate", "compile_error_rate", "steps_to_threshold")}
    return rows, thr


def markdown(rows: list[dict[str, Any]], thr: float) -> str:
    def pct(d: dict[str, Any]) -> str:
        return "n/a" if d["mean"] is None else f"{100 * d['mean']:.1f} ± {100 * d['std']:.1f}%"

    head = ("| method | mean pass@1 | Arith pass@1 | PyFunc pass@1 | PyFunc compile errors | final train pass rate | "
            f"steps to {100 * thr:.1f}% (reached) | train time |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, t = r["steps_to_threshold"], r["train_seconds"]
        lines.append(f"| {r['method']} | {pct(r['mean_pass_rate'])} | {pct(r['Arith-v0'])} | {pct(r['PyFunc-v0'])} | "
                     f"{pct(r['compile_error_rate'])} | {pct(r['final_train_pass_rate'])} | "
                     f"{s['mean']:.1f} ± {s['std']:.1f} ({s['reached']}) | {t['mean']:.0f} ± {t['std']:.0f} s |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="sdpg,grpo,ppo")
    ap.add_argument("--variants", default="", help="extra SDPG runs: 'label:key=value:...,label2:...'")
    ap.add_argument("--steps", type=int, default=None, help="RL steps per method (default: the demo's)")
    ap.add_argument("--beta", type=float, default=None, help="β of the plain 'sdpg' method (default: the demo's)")
    ap.add_argument("--lr", type=float, default=None, help="RL learning rate of every method (default: the demo's)")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--quick", action="store_true", help="the CI-sized demo per seed")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--output", type=Path, default=Path("runs/demo-seeds"))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = parse_variants(args.variants)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) + tuple(variants)
    base = quick_config("") if args.quick else DemoConfig(output_dir="")
    changes: dict[str, Any] = {"methods": methods, "method_overrides": variants, "workers": args.workers,
                               "progress": sys.stderr.isatty()}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.beta is not None:
        changes["beta"] = args.beta
    if args.lr is not None:
        changes["learning_rate"] = args.lr
    base = replace(base, **changes)
    runnable, missing = split_methods(base)
    for m in missing:
        print(f"demo_seeds: {m!r} is not available in this build (SDPGConfig.loss); skipped", file=sys.stderr)
    reports = [run_seed(base, args.output, s, seeds[0]) for s in seeds]
    rows, thr = summarize(reports, runnable, args.output, args.threshold)
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "per_seed"}))
    (args.output / "summary.json").write_text(json.dumps({"rows": rows, "missing": missing}, indent=1))
    (args.output / "summary.md").write_text(markdown(rows, thr))
    print(markdown(rows, thr), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
