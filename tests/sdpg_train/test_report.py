"""Report files: results.json must agree with samples.jsonl recomputed by hand; writes are atomic."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from sdpg_train.evaluation.evaluate import compute_metrics, evaluate
from sdpg_train.evaluation.report import (
    RESULTS_FILE,
    SAMPLES_FILE,
    EvalReport,
    SampleRecord,
    git_revision,
    markdown_table,
    read_results,
    read_samples,
    write_json_atomic,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def recompute_from_file(samples_path: Path, ks: list[int]) -> dict:
    """Independent recomputation from the raw JSONL (no sdpg code): the numbers results.json must hold."""
    rows = [json.loads(line) for line in samples_path.read_text().splitlines()]
    groups: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["problem_index"]].append(r)
    passk = {}
    for k in ks:
        vals = []
        for g in groups.values():
            n, c = len(g), sum(r["passed"] for r in g)
            vals.append(1 - math.comb(n - c, k) / math.comb(n, k))  # Chen et al., direct binomials
        passk[f"pass@{k}"] = sum(vals) / len(vals)
    statuses = Counter(r["status"] for r in rows)
    return {
        "num_samples": len(rows),
        "num_problems": len(groups),
        "accuracy": sum(r["score"] for r in rows) / len(rows),
        "pass_rate": sum(r["passed"] for r in rows) / len(rows),
        "pass_at_k": passk,
        "status_counts": dict(statuses),
        "compile_error_rate": statuses["compile_error"] / len(rows),
        "mean_completion_tokens": sum(r["num_tokens"] for r in rows) / len(rows),
        "truncated_rate": sum(r["truncated"] for r in rows) / len(rows),
    }


def _check_consistent(out: Path, ks: list[int], code: bool) -> dict:
    metrics = read_results(out)["metrics"]
    expected = recompute_from_file(out / SAMPLES_FILE, ks)
    for key in ("num_samples", "num_problems", "accuracy", "pass_rate", "mean_completion_tokens", "truncated_rate"):
        assert metrics[key] == pytest.approx(expected[key]), key
    assert metrics["pass_at_k"] == pytest.approx(expected["pass_at_k"])
    assert {k: v for k, v in metrics["status_counts"].items() if v} == expected["status_counts"]
    assert metrics["compile_error_rate"] == (pytest.approx(expected["compile_error_rate"]) if code else None)
    return metrics


@pytest.mark.timeout(120)
def test_eval_results_agree_with_samples_file(tiny_model, tokenizer, tmp_path):
    report = evaluate(tiny_model, tokenizer, "sdpg/Arith-v0", env_kwargs={"split": "test"}, n=3, samples=3,
                      ks=(1, 3), temperature=1.0, max_new_tokens=5, output_dir=tmp_path, progress=False)
    metrics = _check_consistent(tmp_path, [1, 3], code=False)
    assert metrics == report.metrics
    data = read_results(tmp_path)
    assert data["complete"] is True and data["config"]["samples"] == 3 and data["config"]["ks"] == [1, 3]
    assert data["versions"]["transformers"] and data["versions"]["python"]
    assert data["git"] is None or len(data["git"]["revision"]) == 40
    row = json.loads((tmp_path / SAMPLES_FILE).read_text().splitlines()[0])
    assert row["prompt"].startswith("What is") and row["status"] in ("correct", "incorrect", "unparsable")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


@pytest.mark.timeout(120)
def test_code_eval_reports_compile_errors_from_the_real_verifier(tiny_model, tokenizer, tmp_path):
    """A random model writes garbage: the sandboxed Python compile step must classify it, and the rate must match."""
    evaluate(tiny_model, tokenizer, "sdpg/PyFunc-v0", env_kwargs={"split": "test", "prompt_template": "compact"},
             n=2, samples=2, ks=(1, 2), temperature=1.0, max_new_tokens=8, output_dir=tmp_path, progress=False)
    metrics = _check_consistent(tmp_path, [1, 2], code=True)
    assert metrics["compile_error_rate"] is not None and metrics["compile_error_rate"] > 0
    rows = [json.loads(line) for line in (tmp_path / SAMPLES_FILE).read_text().splitlines()]
    compile_rows = [r for r in rows if r["status"] == "compile_error"]
    assert compile_rows and all("Error" in r["feedback"] for r in compile_rows)  # the compiler's trace is kept


def _mixed_records() -> list[SampleRecord]:
    plan = {  # problem -> statuses of its 4 samples
        0: ["passed", "compile_error", "passed", "wrong_answer"],
        1: ["compile_error", "compile_error", "runtime_error", "timeout"],
        2: ["passed", "passed", "passed", "passed"],
    }
    return [
        SampleRecord(p, f"p{p}", s, f"prompt {p}", "def f(): pass", float(st == "passed"), st, st == "passed",
                     "trace" if st != "passed" else "", 4 + s, s == 3)
        for p, statuses in plan.items() for s, st in enumerate(statuses)
    ]


def test_saved_report_agrees_with_its_samples_file(tmp_path):
    records = _mixed_records()
    report = EvalReport(config={"env_id": "sdpg/PyFunc-v0", "ks": [1, 2, 4]},
                        metrics=compute_metrics(records, (1, 2, 4)), records=records, meta={"versions": {}})
    report.save(tmp_path)
    metrics = _check_consistent(tmp_path, [1, 2, 4], code=True)
    assert metrics["compile_error_rate"] == pytest.approx(3 / 12)
    assert metrics["pass_at_k"]["pass@1"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert read_samples(tmp_path / SAMPLES_FILE) == records


def test_markdown_table_rows():
    text = markdown_table(compute_metrics(_mixed_records(), (1, 2)), title="sdpg/PyFunc-v0")
    assert text.startswith("### sdpg/PyFunc-v0")
    for row in ("| pass@1 | 50.0% |", "| pass@2 | 61.1% |", "| compile-error rate | 25.0% |",
                "| passed | 6 | 50.0% |", "| compile_error | 3 | 25.0% |", "| truncated at max tokens | 25.0% |"):
        assert row in text, row


def test_read_samples_skips_a_torn_last_line(tmp_path):
    path = tmp_path / SAMPLES_FILE
    good = json.dumps(_mixed_records()[0].__dict__)
    path.write_text(good + "\n" + good[: len(good) // 2])
    assert read_samples(path) == [_mixed_records()[0]]


def test_atomic_write_keeps_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / RESULTS_FILE
    write_json_atomic(path, {"metrics": {"a": 1}})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"metrics": {"a": object()}})
    assert json.loads(path.read_text()) == {"metrics": {"a": 1}}
    assert [p.name for p in tmp_path.iterdir()] == [RESULTS_FILE]


def test_read_results_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_results(tmp_path)
    (tmp_path / RESULTS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_results(tmp_path)
    (tmp_path / RESULTS_FILE).write_text("[1]")
    with pytest.raises(ValueError, match="not an sdpg eval results file"):
        read_results(tmp_path)


def test_git_revision_inside_and_outside_a_repository(tmp_path):
    assert git_revision(tmp_path) is None
    here = git_revision()
    assert here is None or (len(here["revision"]) == 40 and isinstance(here["dirty"], bool))
