"""Sandbox throughput on the 164 HumanEval canonical solutions + their tests.

Baseline (measured in the same run): one plain ``python`` subprocess per problem
(``subprocess.run([sys.executable, file], timeout=...)`` on a thread pool with the same number of
workers as the backends), i.e. what simple harnesses do, with no isolation at all.

Each backend is warmed first (workers/containers started), then timed on the whole batch through
``run_many``. Prints one JSON line per configuration: ``backend, runs_per_s, baseline_runs_per_s,
ratio, passed, total, p50_s, p95_s, workers, isolated, startup_s``.

    .venv/bin/python benchmarks/sandbox_throughput.py [--data PATH] [--backends bwrap,process,docker]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandboxes import Limits, make_sandbox, probe_backends, python_program  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("SDPG_SHARED_DIR", ROOT.parent / "shared")) / "data/humaneval/HumanEval.jsonl.gz"
LIMITS = Limits(wall_s=20.0, cpu_s=20.0, memory_mb=1024)


def load_programs(path: Path) -> list[str]:
    """HumanEval prompt + canonical solution + tests + ``check(entry_point)``, one source per problem."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [f"{r['prompt']}{r['canonical_solution']}\n\n{r['test']}\n\ncheck({r['entry_point']})\n" for r in rows]


def _stats(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def run_baseline(sources: list[str], workers: int) -> dict:
    """One plain ``python`` subprocess per problem on ``workers`` threads."""
    with tempfile.TemporaryDirectory(prefix="sdpg-bench-") as tmp:
        paths = []
        for i, src in enumerate(sources):
            paths.append(os.path.join(tmp, f"p{i}.py"))
            Path(paths[-1]).write_text(src)

        def one(path: str) -> tuple[bool, float]:
            start = time.perf_counter()
            try:
                proc = subprocess.run([sys.executable, path], capture_output=True, timeout=LIMITS.wall_s, cwd=tmp)
                ok = proc.returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            return ok, time.perf_counter() - start

        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(one, p) for p in paths]
            results = [f.result() for f in tqdm(as_completed(futures), total=len(futures), desc="baseline")]
        elapsed = time.perf_counter() - start
    p50, p95 = _stats([lat for _, lat in results])
    return {"backend": "baseline", "runs_per_s": len(sources) / elapsed, "passed": sum(ok for ok, _ in results),
            "total": len(sources), "p50_s": p50, "p95_s": p95, "workers": workers, "isolated": False,
            "startup_s": 0.0}


def run_backend(kind: str, sources: list[str], workers: int, options: dict) -> dict:
    start = time.perf_counter()
    with make_sandbox(kind, LIMITS, workers=workers, **options) as sandbox:
        sandbox.warm()
        startup = time.perf_counter() - start
        programs = [python_program(src) for src in sources]
        latencies, passed = [], 0
        begin = time.perf_counter()
        for _, result in tqdm(sandbox.run_many(programs), total=len(programs), desc=kind):
            passed += result.ok
            latencies.append(result.wall_s)
        elapsed = time.perf_counter() - begin
        isolated = sandbox.isolated
    p50, p95 = _stats(latencies)
    return {"backend": kind, "runs_per_s": len(sources) / elapsed, "passed": passed, "total": len(sources),
            "p50_s": p50, "p95_s": p95, "workers": workers, "isolated": isolated, "startup_s": startup}


def _docker_options() -> tuple[dict, object]:
    """Engine URL (starting a private engine when none answers and we are root) with the image built."""
    from sandboxes.engine import reachable, start_private_engine
    from sandboxes.image import DEFAULT_TAG, build_image

    engine, url = None, os.environ.get("DOCKER_HOST")
    if reachable(url) is None:
        engine = start_private_engine()
        url = engine.base_url
    build_image(DEFAULT_TAG, base_url=url)
    return {"base_url": url}, engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="HumanEval.jsonl(.gz)")
    parser.add_argument("--backends", default="bwrap,process,docker")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if not args.data.exists():
        print(f"data not found: {args.data} (use --data)", file=sys.stderr)
        return 2
    sources = load_programs(args.data)
    base = run_baseline(sources, args.workers)
    base.update(baseline_runs_per_s=base["runs_per_s"], ratio=1.0)
    print(json.dumps(base), flush=True)
    probes = probe_backends()
    for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
        engine, options = None, {}
        try:
            if kind == "docker":
                options, engine = _docker_options()
            elif not probes[kind][0]:
                raise RuntimeError(probes[kind][1])
            row = run_backend(kind, sources, args.workers, options)
        except Exception as exc:
            print(json.dumps({"backend": kind, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
            continue
        finally:
            if engine is not None:
                engine.stop()
        row.update(baseline_runs_per_s=base["runs_per_s"], ratio=row["runs_per_s"] / base["runs_per_s"])
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
