"""The demo's report: ``report.json`` (every number, machine-readable), ``report.md`` and ``curves.png``.

Every held-out number comes from an eval folder's ``results.json`` (itself recomputable from its
``samples.jsonl``); training-curve numbers (steps-to-threshold) come from each run's ``metrics.jsonl``.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sdpg_train.evaluation.compare import headline_line, read_metrics_jsonl
from sdpg_train.evaluation.report import fmt_pct, write_json_atomic, write_text_atomic

REPORT_FORMAT = "sdpg-demo/1"
WINDOW = 5
"""Moving-average window (steps) of the training pass rate used for steps-to-threshold."""
WARM_LABEL = "warm start"
MIN_GAIN = 0.02
"""Smallest gain over the start that the automatic threshold asks for (2 points of pass rate)."""
_PER_ENV = re.compile(r"rewards/.+/mean")
WARM_DIR, RUNS_DIR, EVAL_DIR, TEACHER_EVAL_DIR = "warmstart", "runs", "eval", "eval-teacher"
"""Sub-folders of a demo folder (written by :mod:`sdpg_train.demo.run`, read here)."""


def env_slug(env_id: str) -> str:
    return env_id.replace("sdpg/", "").replace("/", "-")


def moving_average(values: Sequence[float], window: int = WINDOW) -> list[float]:
    """Trailing moving average (the first points average what exists so far)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def balanced_pass_rate(row: dict[str, Any]) -> float:
    """A step's training pass rate averaged over the envs it drew (``rewards/<env>/mean``; the demo's verifiers
    score 0/1), so the random env mix of a step does not move it; the plain pass rate for a single env."""
    per_env = [float(v) for k, v in row.items() if _PER_ENV.fullmatch(k) and isinstance(v, (int, float))]
    return sum(per_env) / len(per_env) if per_env else float(row.get("pass_rate", 0.0))


def train_pass_rates(run_dir: Path) -> list[float]:
    """Per-step training pass rate of a run (:func:`balanced_pass_rate` of each ``metrics.jsonl`` row)."""
    return [balanced_pass_rate(r) for r in read_metrics_jsonl(run_dir / "metrics.jsonl")]


def steps_to_threshold(rates: Sequence[float], threshold: float, window: int = WINDOW) -> int | None:
    """First step (1-based, from the first full window on) whose trailing moving average of ``rates`` is
    ≥ ``threshold``; None if never."""
    for i, v in enumerate(moving_average(rates, window)):
        if i + 1 >= min(window, len(rates)) and v >= threshold:
            return i + 1
    return None


def auto_threshold(curves: dict[str, list[float]], window: int = WINDOW) -> float:
    """The start (mean over methods of the first full window's average) plus half the best method's gain
    on it, at least ``MIN_GAIN``: a threshold no method reaches means no method improved."""
    ends = [moving_average(c, window) for c in curves.values() if c]
    start = sum(e[min(window, len(e)) - 1] for e in ends) / len(ends)
    best = max(e[-1] for e in ends)
    return start + max(0.5 * (best - start), MIN_GAIN)


def _eval_entry(metrics: dict[str, Any], path: Path, root: Path) -> dict[str, Any]:
    return {"accuracy": metrics["accuracy"], "pass_rate": metrics["pass_rate"],
            "compile_error_rate": metrics.get("compile_error_rate"), "pass_at_k": metrics.get("pass_at_k", {}),
            "num_samples": metrics["num_samples"], "path": str(path.relative_to(root))}


def collect(cfg: Any, *, sft: dict, warm: dict, teacher: dict, methods: dict, missing: list[str],
            timings: dict[str, float]) -> dict[str, Any]:
    """Assemble ``report.json``'s content from the stage outputs."""
    root = Path(cfg.output_dir)
    evals: dict[str, dict[str, Any]] = {WARM_LABEL: {}}
    gap: dict[str, dict[str, float]] = {}
    for env_id, m in warm.items():
        evals[WARM_LABEL][env_id] = _eval_entry(m, root / WARM_DIR / EVAL_DIR / env_slug(env_id), root)
        t = teacher[env_id]
        gap[env_id] = {"student": m["pass_rate"], "teacher": t["pass_rate"], "gap": t["pass_rate"] - m["pass_rate"],
                       "teacher_path": str(Path(WARM_DIR) / TEACHER_EVAL_DIR / env_slug(env_id))}
    curves = {m: train_pass_rates(root / RUNS_DIR / m) for m in methods}
    threshold = cfg.threshold if cfg.threshold is not None else auto_threshold(curves)
    per_method = {}
    for m, info in methods.items():
        evals[m] = {e: _eval_entry(x, root / RUNS_DIR / m / EVAL_DIR / env_slug(e), root)
                    for e, x in info["eval"].items()}
        rates = curves[m]
        per_method[m] = {"loss": info["loss"], "train_seconds": info["train_seconds"], "resumed": info.get("resumed"),
                         "steps_to_threshold": steps_to_threshold(rates, threshold),
                         "first_train_pass_rate": rates[0] if rates else None,
                         "final_train_pass_rate": moving_average(rates)[-1] if rates else None,
                         "run_path": str(Path(RUNS_DIR) / m)}
    for e in evals.values():
        e["mean_pass_rate"] = sum(x["pass_rate"] for x in e.values()) / len(e)  # type: ignore[union-attr]
    return {
        "format": REPORT_FORMAT, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(shlex.quote(a) for a in sys.argv) if sys.argv and "sdpg" in sys.argv[0] else None,
        "config": asdict(cfg), "parameters": sft.get("parameters"),
        "warm_start": {"steps": len(sft.get("losses", [])), "seconds": sft.get("seconds"),
                       "final_loss": sft["losses"][-1] if sft.get("losses") else None, "resumed": sft.get("resumed")},
        "budget": {"steps": cfg.steps, "prompts_per_step": cfg.prompts_per_step, "generations": cfg.generations,
                   "completions_per_method": cfg.steps * cfg.prompts_per_step * cfg.generations},
        "teacher_gap": gap, "threshold": threshold, "threshold_window": WINDOW, "evals": evals,
        "methods": per_method, "missing_methods": missing, "timings": timings,
    }


def _short(env_id: str) -> str:
    return env_id.replace("sdpg/", "")


def render_markdown(rep: dict[str, Any]) -> str:
    """``report.md`` from ``report.json``'s content."""
    cfg, budget = rep["config"], rep["budget"]
    envs = list(rep["teacher_gap"])
    code_envs = [e for e in envs if rep["evals"][WARM_LABEL][e]["compile_error_rate"] is not None]
    lines = [f"# SDPG CPU demo ({rep['created']})", ""]
    if rep.get("command"):
        lines += [f"Command: `{rep['command']}`", ""]
    lines += [
        f"- Model: tiny Qwen2-style byte-level LM, {rep['parameters']:,} parameters (hidden {cfg['hidden_size']}, "
        f"{cfg['num_layers']} layers), warm-started by supervised training for {rep['warm_start']['steps']} steps "
        f"({rep['warm_start']['seconds']:.0f} s), {100 * cfg['sft']['context_fraction']:.0f}% of the examples in "
        "the teacher view (privileged context in the prompt).",
        f"- Tasks: {', '.join(f'`{e}`' for e in envs)}; held-out evaluation on `split=\"test\"`: "
        f"{cfg['eval_n']} problems × {cfg['eval_samples']} samples per env at temperature 1.",
        f"- Identical budget per method: {budget['steps']} steps × {budget['prompts_per_step']} prompts × "
        f"{budget['generations']} generations = {budget['completions_per_method']:,} completions, seed "
        f"{cfg['seed']} (the same prompts at every step), learning rate {cfg['learning_rate']:g}, "
        f"β = {cfg['beta']:g} (SDPG), α = {cfg['alpha']:g}.",
        f"- Wall time of this invocation: {rep['timings']['total_s']:.0f} s{_resumed_note(rep)}.", "",
        "## Teacher vs student (warm start, held-out)", "",
        "SDPG distils from the model itself *with* privileged context; useful only if the context makes it better.",
        "", "| env | student pass@1 | teacher view pass@1 | gap |", "|---|---:|---:|---:|",
    ]
    for e, g in rep["teacher_gap"].items():
        lines.append(f"| {_short(e)} | {fmt_pct(g['student'])} | {fmt_pct(g['teacher'])} | "
                     f"{100 * g['gap']:+.1f} pts |")
    lines += ["", "## Held-out results", ""] + _results_table(rep, envs, code_envs)
    if code_envs:
        lines += ["", "## Compile errors before → after", ""]
        for e in code_envs:
            before = rep["evals"][WARM_LABEL][e]["compile_error_rate"]
            for m in rep["methods"]:
                after = rep["evals"][m][e]["compile_error_rate"]
                lines.append(f"- {m} ({_short(e)}): {headline_line('compile errors', before, after)}")
    lines += ["", "## Training curves", "", "![training curves](curves.png)", "",
              f"Steps to threshold: the first step at which the {rep['threshold_window']}-step moving average of the "
              f"training pass rate (mean over the envs of the step) reaches {fmt_pct(rep['threshold'])}"
              + (" (set with `--threshold`)." if cfg["threshold"] is not None else
                 f" (the first {rep['threshold_window']} steps' average plus half of the best method's gain over "
                 "it, at least 2 points).")]
    if rep["missing_methods"]:
        lines += ["", "## Not run", ""]
        lines += [f"- **{m}**: `SDPGConfig(loss=\"{m}\")` is not available in this build, so it was skipped."
                  for m in rep["missing_methods"]]
    lines += ["", "## Files", "", "- `report.json`: every number above; `curves.png`: training curves.",
              "- `warmstart/`: the warm-start checkpoint, `sft.json` (loss per step), `eval/<env>` and "
              "`eval-teacher/<env>` (each with `results.json` + `samples.jsonl`).",
              "- `runs/<method>/`: `metrics.jsonl`, `samples.jsonl`, the final checkpoint and `eval/<env>`.", ""]
    return "\n".join(lines)


def _resumed_note(rep: dict[str, Any]) -> str:
    reused = (["the warm start"] if rep["warm_start"].get("resumed") else []) + [
        m for m, info in rep["methods"].items() if info.get("resumed")]
    return f" (reused from an earlier invocation: {', '.join(reused)})" if reused else ""


def _results_table(rep: dict[str, Any], envs: list[str], code_envs: list[str]) -> list[str]:
    head = ["model"] + [f"{_short(e)} pass@1" for e in envs] + [f"{_short(e)} compile errors" for e in code_envs]
    head += ["mean pass@1", "steps to threshold", "train time"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for label, ev in rep["evals"].items():
        cells = [label] + [fmt_pct(ev[e]["pass_rate"]) for e in envs]
        cells += [fmt_pct(ev[e]["compile_error_rate"]) for e in code_envs] + [fmt_pct(ev["mean_pass_rate"])]
        m = rep["methods"].get(label)
        if m is None:
            cells += ["—", "—"]
        else:
            s = m["steps_to_threshold"]
            cells += [f"{s}" if s is not None else f"not reached in {rep['budget']['steps']}",
                      f"{m['train_seconds']:.0f} s"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(cfg: Any, *, sft: dict, warm: dict, teacher: dict, methods: dict, missing: list[str],
                 timings: dict[str, float]) -> Path:
    """Write ``report.json``, ``report.md`` and ``curves.png`` into the demo folder; returns ``report.md``."""
    from sdpg_train.evaluation.plotting import plot_runs

    root = Path(cfg.output_dir)
    rep = collect(cfg, sft=sft, warm=warm, teacher=teacher, methods=methods, missing=missing, timings=timings)
    plot_runs([root / RUNS_DIR / m for m in methods], root / "curves.png", labels=list(methods),
              smoothing=min(WINDOW, max(1, cfg.steps // 4)))
    write_json_atomic(root / "report.json", rep)
    write_text_atomic(root / "report.md", render_markdown(rep))
    return root / "report.md"
