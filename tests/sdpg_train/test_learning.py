"""Held-out learning curves (sdpg_train.demo.learning, benchmarks/learning.py).

The last test is CI's short learning check: from a weak warm start on the easiest task, GRPO must raise the
held-out pass@1 on a fixed set of problems it is never scored on during training.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

from sdpg_train.demo.learning import ARITH_ID, LearningConfig, SFTConfig, run_learning, summarize

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "benchmarks" / "learning.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(method: str, seed: int, values: list[float], ce: list[float] | None = None) -> dict:
    curve = []
    for i, v in enumerate(values):
        scores = {ARITH_ID: {"pass1": v, "greedy": v, "compile_errors": 0.0}}
        if ce is not None:
            scores["sdpg/PyFunc-v0"] = {"pass1": v, "greedy": v, "compile_errors": ce[i]}
        curve.append({"step": 10 * i, "scores": scores})
    return {"method": method, "seed": seed, "curve": curve}


def test_summarize_against_hand_computed_figures():
    cfg = LearningConfig(output_dir="unused", seeds=(0, 1), methods={"grpo": {}, "sdpg": {}})
    results = {
        "grpo": [_run("grpo", 0, [0.2, 0.3, 0.4]), _run("grpo", 1, [0.2, 0.25, 0.3])],
        "sdpg": [_run("sdpg", 0, [0.2, 0.4, 0.5]), _run("sdpg", 1, [0.2, 0.34, 0.3])],
    }
    warm = {"student": {ARITH_ID: {"pass1": 0.2, "greedy": 0.2, "compile_errors": 0.0}}}
    rows = {r["method"]: r for r in summarize(cfg, warm, results)}
    g, s = rows["grpo"], rows["sdpg"]
    assert g["warm_start"] == pytest.approx(0.2) and g["final"] == pytest.approx(0.35)
    assert g["final_std"] == pytest.approx(0.0707107, abs=1e-6)
    assert g["ratio_final_to_grpo"] == pytest.approx(1.0) and g["steps_to_grpo_final"] == 20
    # sdpg's seed-mean curve is 0.2, 0.37, 0.4: it passes GRPO's final 0.35 at step 10
    assert s["final"] == pytest.approx(0.4) and s["best"] == pytest.approx(0.4)
    assert s["steps_to_grpo_final"] == 10 and s["ratio_final_to_grpo"] == pytest.approx(0.4 / 0.35)
    assert g["compile_errors_start"] is None and set(g) >= {
        "method", "env", "seeds", "warm_start", "final", "final_std", "best", "steps_to_grpo_final",
        "compile_errors_start", "compile_errors_end", "ratio_final_to_grpo"}


def test_summarize_reads_compile_errors_from_the_code_env():
    cfg = LearningConfig(output_dir="unused", seeds=(0,), methods={"grpo": {}},
                         envs={ARITH_ID: {}, "sdpg/PyFunc-v0": {}})
    warm = {"student": {"sdpg/PyFunc-v0": {"compile_errors": 0.1}}}
    rows = summarize(cfg, warm, {"grpo": [_run("grpo", 0, [0.2, 0.3], ce=[0.1, 0.04])]})
    assert rows[0]["compile_errors_start"] == 0.1 and rows[0]["compile_errors_end"] == pytest.approx(0.04)


def test_method_specs_parse_with_overrides():
    methods = _bench().parse_methods("grpo,sdpg,sdpg-live:loss=sdpg:teacher_model_kind=live:teacher_temperature=1")
    assert methods["grpo"] == {"loss": "grpo"}
    assert methods["sdpg"]["teacher_model_kind"] == "base"
    assert methods["sdpg-live"] == {"loss": "sdpg", "teacher_model_kind": "live", "teacher_temperature": 1}
    with pytest.raises(ValueError, match="key=value"):
        _bench().parse_methods("grpo:alpha")


@pytest.mark.slow
def test_sweep_workers_die_with_their_parent(tmp_path):
    """A killed sweep must not leave a worker finishing its job into a folder a later run recreated."""
    import os
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    script = f"""
import os, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from sdpg_train.demo.learning import _die_with_parent

def job(path):
    open(path, "w").write(str(os.getpid()))
    time.sleep(60)

if __name__ == "__main__":
    ex = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_die_with_parent,
                             initargs=(os.getpid(),))
    ex.submit(job, {str(pid_file)!r})
    while not os.path.exists({str(pid_file)!r}):
        time.sleep(0.05)
    os._exit(0)  # the parent dies the way a SIGKILLed sweep does: no executor shutdown
"""
    (tmp_path / "sweep.py").write_text(script)  # a file, so that spawn can re-import ``job``
    subprocess.run([sys.executable, str(tmp_path / "sweep.py")], cwd=ROOT, check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{worker}/stat") as f:  # a zombie awaiting reaping counts as gone
                if f.read().split(")")[-1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(worker, 9)
    pytest.fail("the sweep's worker outlived its parent")


def test_grpo_raises_heldout_pass_rate_on_the_easiest_task(tmp_path):
    """CI's learning check: a short GRPO run must beat its warm start on a fixed held-out set (and the run
    resumes: a second call reuses every finished job)."""
    cfg = LearningConfig(
        output_dir=str(tmp_path), methods={"grpo": {"loss": "grpo"}}, seeds=(0,),
        envs={ARITH_ID: {"digits": 1, "operators": "+", "prompt_template": "terse", "context": "reference"}},
        sft=SFTConfig(steps=100, context_fraction=0.0), steps=20, eval_every=20, eval_n=50, eval_samples=4,
        workers=1, progress=False)  # measured on the dev machine: 46.5% -> 53.5%
    rows, md = run_learning(cfg)
    row = rows[0]
    assert row["final"] >= row["warm_start"] + 0.03, row
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [p["step"] for p in summary["curves"]["grpo"][0]] == [0, 20]
    assert "held-out learning curves" in md.read_text() and (tmp_path / "curves.png").stat().st_size > 0
    job = tmp_path / "jobs" / "grpo-s0" / "curve.json"
    stamp = job.stat().st_mtime_ns
    rows2, _ = run_learning(replace(cfg))
    assert job.stat().st_mtime_ns == stamp and rows2[0]["final"] == row["final"]


@pytest.mark.timeout(300)
def test_repair_sweep_reports_first_turn_compile_errors_and_the_repair_rate(tmp_path):
    """``benchmarks/learning.py --repair`` at toy size: the plumbing, not evidence."""
    from sdpg_train.demo.learning import PYFUNC_EXAMPLES, SDPG_RECIPE
    from sdpg_train.demo.repair import REPAIR_ID, REPAIR_SFT_FRACTION, repair_overrides

    over = repair_overrides(PYFUNC_EXAMPLES, SDPG_RECIPE, SFTConfig(steps=3, context_fraction=0.5, repair_pool=8))
    assert set(over["methods"]) == {"grpo", "sdpg"} and over["envs"][REPAIR_ID]["max_attempts"] == 2
    assert over["sft"].repair_fraction == REPAIR_SFT_FRACTION > 0 and over["sft"].steps == 3
    cfg = replace(LearningConfig(output_dir=str(tmp_path)), **over, seeds=(0,), hidden_size=32,
                  steps=1, eval_every=1, prompts_per_step=2,
                  generations=2, max_completion_length=12, eval_n=3, eval_samples=1, workers=1, progress=False)
    rows, md = run_learning(cfg)
    warm = json.loads((tmp_path / "warmstart" / "warm.json").read_text())["student"][REPAIR_ID]
    assert set(warm) >= {"pass1", "greedy", "pass1_turn1", "compile_errors", "compile_errors_last", "repair"}
    for row in rows:
        assert row["compile_errors_start"] == warm["compile_errors"]
        assert row["repair_rate_start"] == warm["repair"] and 0.0 <= row["repair_rate_end"] <= 1.0
    curve = json.loads((tmp_path / "jobs" / "sdpg-s0" / "curve.json").read_text())
    assert curve["curve"][-1]["step"] == 1 and "repair" in curve["curve"][-1]["scores"][REPAIR_ID]
    assert "| method | repair rate start → end |" in md.read_text()
    assert md.read_text().startswith(f"# Learning sweep on {REPAIR_ID}: held-out learning curves\n")


def test_summary_title_names_the_sweep_and_the_demo_keeps_its_own():
    import argparse

    from sdpg_train.commands import demo
    from sdpg_train.demo.learning import DEMO_TITLE, PYFUNC_ID, code_config, render_markdown

    parser = argparse.ArgumentParser()
    demo.configure(parser)
    scores = {"pass1": 0.5, "greedy": 0.5}
    for cfg, title in [(demo.build_config(parser.parse_args(["--quick", "--output", "x"])), DEMO_TITLE),
                       (demo.build_config(parser.parse_args(["--output", "x"])), DEMO_TITLE),
                       (code_config("x"), f"Learning sweep on {PYFUNC_ID}: held-out learning curves"),
                       (LearningConfig(output_dir="x"), f"Learning sweep on {ARITH_ID}: held-out learning curves")]:
        warm = {view: {e: scores for e in cfg.envs} for view in ("student", "teacher")}
        assert render_markdown(cfg, warm, []).startswith(f"# {title}\n\n![held-out curves](curves.png)")
