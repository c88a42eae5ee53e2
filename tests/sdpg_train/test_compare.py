"""`sdpg compare`: side-by-side tables over eval results and training runs, with hand-checked headline lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdpg_train.cli import main
from sdpg_train.evaluation.compare import change_cell, compare_markdown, headline_line, load_entry, relative_change
from sdpg_train.evaluation.evaluate import compute_metrics
from sdpg_train.evaluation.report import EvalReport, SampleRecord


def _eval_dir(path: Path, statuses: list[str]) -> Path:
    """A real results.json + samples.jsonl for one sample per problem with the given code statuses."""
    records = [SampleRecord(i, f"p{i}", 0, "prompt", "code", float(s == "passed"), s, s == "passed", "", 10, False)
               for i, s in enumerate(statuses)]
    EvalReport({"env_id": "sdpg/PyFunc-v0", "ks": [1]}, compute_metrics(records, (1,)), records).save(path)
    return path


@pytest.fixture
def two_evals(tmp_path):
    # before: 10 samples, 4 compile errors, 2 passed; after: 1 compile error, 5 passed
    before = _eval_dir(tmp_path / "base", ["compile_error"] * 4 + ["passed"] * 2 + ["wrong_answer"] * 4)
    after = _eval_dir(tmp_path / "sdpg", ["compile_error"] + ["passed"] * 5 + ["wrong_answer"] * 3 + ["timeout"])
    return before, after


def test_compare_cli_prints_hand_checked_lines(two_evals, capsys):
    assert main(["compare", str(two_evals[0]), str(two_evals[1])]) == 0
    out = capsys.readouterr().out
    assert "compile errors: 40.0% → 10.0% (\u221275.0% relative)" in out  # (10-40)/40 = -75%
    assert "pass rate: 20.0% → 50.0% (+150.0% relative)" in out  # (50-20)/20 = +150%
    assert "| metric | base | sdpg | sdpg vs base |" in out
    assert "| compile_error_rate | 40.0% | 10.0% | \u221230.0 pts (\u221275.0%) |" in out
    assert "| pass@1 | 20.0% | 50.0% | +30.0 pts (+150.0%) |" in out
    assert "| status/timeout | 0.0% | 10.0% | +10.0 pts |" in out
    assert "| num_samples | 10 | 10 | 0 (0%) |" in out


def test_compare_reads_training_runs_and_eval_subfolders(two_evals, tmp_path, capsys):
    run = tmp_path / "grpo-run"
    run.mkdir()
    rows = [{"step": 1, "reward": 0.1, "status/passed": 1, "status/compile_error": 3},
            {"step": 2, "reward": 0.3, "status/passed": 3, "status/compile_error": 1, "status/wrong_answer": 4}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    train = load_entry(run)
    assert train.kind == "train" and train.label == "grpo-run"
    assert train.metrics["reward"] == 0.3 and train.metrics["step"] == 2
    assert train.metrics["pass_rate"] == pytest.approx(3 / 8)
    assert train.metrics["compile_error_rate"] == pytest.approx(1 / 8)
    # a run folder with eval/results.json is represented by that evaluation
    (run / "eval").mkdir()
    (run / "eval" / "results.json").write_text((two_evals[1] / "results.json").read_text())
    evaluated = load_entry(run)
    assert evaluated.kind == "eval" and evaluated.metrics["compile_error_rate"] == pytest.approx(0.1)
    out_md = tmp_path / "cmp.md"
    assert main(["compare", str(two_evals[0]), str(run / "metrics.jsonl"), str(run), "--labels", "a,b,c",
                 "--output", str(out_md)]) == 0
    out = capsys.readouterr().out
    assert "b vs a:" in out and "c vs a:" in out
    assert "compile errors: 40.0% → 12.5% (\u221268.8% relative)" in out
    assert "training values are the last logged step" in out
    assert out_md.read_text() == out


def test_compare_errors_are_clear(two_evals, tmp_path, capsys):
    assert main(["compare", str(two_evals[0]), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(two_evals[0]), str(tmp_path / "empty")]) == 2
    assert "no results.json" in capsys.readouterr().err
    assert main(["compare", str(two_evals[0])]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["compare", str(two_evals[0]), str(two_evals[1]), "--labels", "x"]) == 2
    assert "1 labels for 2 paths" in capsys.readouterr().err


def test_change_formatting_edge_cases():
    assert relative_change(0.0, 0.2) is None and relative_change(0.5, 0.25) == -0.5
    assert headline_line("compile errors", 0.0, 0.0) == "compile errors: 0.0% → 0.0% (no change)"
    assert "undefined" in headline_line("compile errors", 0.0, 0.1)
    assert headline_line("pass rate", None, 0.5) == "pass rate: n/a → 50.0%"
    assert change_cell("mean_completion_tokens", 10.0, 12.5) == "+2.50 (+25.0%)"
    assert change_cell("pass_rate", 0.5, None) == "n/a"


def test_interrupted_eval_is_refused(two_evals, tmp_path):
    data = json.loads((two_evals[0] / "results.json").read_text())
    (tmp_path / "results.json").write_text(json.dumps({**data, "metrics": {}, "complete": False}))
    with pytest.raises(ValueError, match="interrupted"):
        compare_markdown([load_entry(two_evals[0]), load_entry(tmp_path)])
