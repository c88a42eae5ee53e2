"""Evaluation on repair envs: per-turn pass@1, compile-error rate and repair rate (hand-checked), the printed
table, `sdpg compare`'s turn-1 → turn-t and before → after lines, and `sdpg eval` end to end on PyFuncRepair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdpg_train.cli import main
from sdpg_train.evaluation.compare import load_entry
from sdpg_train.evaluation.evaluate import compute_metrics
from sdpg_train.evaluation.report import SAMPLES_FILE, EvalReport, SampleRecord, read_results

REPO = Path(__file__).resolve().parents[2]


def episode(i: int, statuses: list[str]) -> SampleRecord:
    turns = [{"status": s, "passed": s == "passed", "score": float(s == "passed"), "completion": "c",
              "feedback": "", "num_tokens": 3, "truncated": False} for s in statuses]
    return SampleRecord(i, f"p{i}", 0, "prompt", "c", float(statuses[-1] == "passed"), statuses[-1],
                        statuses[-1] == "passed", "", 3 * len(statuses), False, turns)


def eval_dir(path: Path, episodes: list[list[str]]) -> Path:
    records = [episode(i, s) for i, s in enumerate(episodes)]
    EvalReport({"env_id": "sdpg/PyFuncRepair-v0", "ks": [1]}, compute_metrics(records, (1,)), records).save(path)
    return path


BEFORE = [["compile_error", "passed"], ["compile_error", "compile_error"], ["passed"], ["wrong_answer"] * 2]
AFTER = [["passed"], ["compile_error", "passed"], ["passed"], ["wrong_answer", "passed"]]


def test_per_turn_metrics_are_hand_checked():
    m = compute_metrics([episode(i, s) for i, s in enumerate(BEFORE)], (1,))
    # turn 1: 1 of 4 passed, 2 compile errors, no repair yet (3 failed first attempts)
    # turn 2: A fixed, C stays passed -> 2/4; only B is still a compile error; 1 of 3 first failures repaired
    assert m["turns"] == [{"turn": 1, "pass@1": 0.25, "compile_error_rate": 0.5, "repair_rate": 0.0},
                          {"turn": 2, "pass@1": 0.5, "compile_error_rate": 0.25, "repair_rate": pytest.approx(1 / 3)}]
    assert m["first_turn_failures"] == 3 and m["pass_rate"] == 0.5
    table = EvalReport({"env_id": "x"}, m).to_markdown()
    assert "| turn | pass@1 | compile-error rate | repair rate |" in table
    assert "| 2 | 50.0% | 25.0% | 33.3% |" in table
    assert "turns" not in compute_metrics([SampleRecord(0, "p", 0, "q", "c", 1.0, "passed", True)], (1,))


def test_compare_shows_turn_one_to_turn_t_and_before_after(tmp_path, capsys):
    before, after = eval_dir(tmp_path / "base", BEFORE), eval_dir(tmp_path / "sdpg", AFTER)
    assert main(["compare", str(before), str(after)]) == 0
    out = capsys.readouterr().out
    assert "- base: compile errors at turn 1 → turn 2: 50.0% → 25.0% (\u221250.0% relative)" in out
    assert "- sdpg: compile errors at turn 1 → turn 2: 25.0% → 0.0% (\u2212100.0% relative)" in out
    assert "compile errors at turn 1: 50.0% → 25.0%" in out  # before → after training, at turn 1
    assert "repair rate by turn 2: 33.3% → 100.0%" in out
    assert "| repair_rate/turn2 | 33.3% | 100.0% |" in out
    run = tmp_path / "run"  # a multi-turn training run's last logged per-turn rates
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 3, "episode/compile_error_rate/turn1": 0.5,
                                                   "episode/compile_error_rate/turn2": 0.125}) + "\n")
    entry = load_entry(run)
    assert entry.metrics["compile_error_rate/turn2"] == 0.125
    assert "episode/compile_error_rate/turn2" not in entry.metrics


@pytest.mark.timeout(240)
def test_sdpg_eval_on_a_repair_env_prints_the_per_turn_table(tiny_model_dir, tmp_path):
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "sdpg_train", "eval", "--model", str(tiny_model_dir), "--env",
           "sdpg/PyFuncRepair-v0", "--env-kwargs", '{"max_attempts": 2}', "--n", "3", "--max-new-tokens", "8",
           "--output", str(out), "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=230, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| turn | pass@1 | compile-error rate | repair rate |" in proc.stdout
    metrics = read_results(out)["metrics"]
    rows = [json.loads(line) for line in (out / SAMPLES_FILE).read_text().splitlines()]
    assert len(rows) == 3 and all(1 <= len(r["turns"]) <= 2 for r in rows)
    failed_first = [r for r in rows if not r["turns"][0]["passed"]]
    assert failed_first and all(len(r["turns"]) == 2 for r in failed_first)  # feedback, then a second attempt
    assert [t["turn"] for t in metrics["turns"]] == [1, 2]
    assert metrics["turns"][0]["compile_error_rate"] == sum(r["turns"][0]["status"] == "compile_error"
                                                            for r in rows) / 3
