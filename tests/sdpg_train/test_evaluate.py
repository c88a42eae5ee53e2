"""Evaluation: the unbiased pass@k estimator, metric aggregation, determinism, resume, and the CLI end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
import torch

from sdpg_train.evaluation.evaluate import compute_metrics, evaluate, pass_at_k
from sdpg_train.evaluation.report import RESULTS_FILE, SAMPLES_FILE, SampleRecord, read_results

REPO = Path(__file__).resolve().parents[2]
ARITH = "sdpg/Arith-v0"
TEST_SPLIT = {"split": "test"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 0.4),  # c / n
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (4, 0, 2, 0.0),
        (4, 3, 2, 1.0),  # n - c < k: every k-subset holds a correct sample
        (1, 1, 1, 1.0),
        (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_pass_at_k_equals_subset_enumeration():
    """pass@k = fraction of k-subsets of the n samples that contain a correct one (brute force)."""
    for n in range(1, 7):
        for c in range(n + 1):
            outcomes = [1] * c + [0] * (n - c)
            for k in range(1, n + 1):
                subsets = list(combinations(outcomes, k))
                brute = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 4), (3, 4, 1), (3, 1, 0), (3, -1, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def _rec(pi: int, si: int, status: str, score: float, tokens: int = 3) -> SampleRecord:
    return SampleRecord(pi, f"p{pi}", si, "prompt", "x" * tokens, score, status, score >= 1.0, "", tokens, False)


def test_compute_metrics_aggregates_per_problem():
    # problem 0: 2 of 4 passed; problem 1: 0 of 4 (2 compile errors); problem 2: 4 of 4
    records = [_rec(0, i, s, v) for i, (s, v) in enumerate([("passed", 1), ("wrong_answer", 0)] * 2)]
    records += [_rec(1, i, s, 0) for i, s in enumerate(["compile_error", "compile_error", "timeout", "runtime_error"])]
    records += [_rec(2, i, "passed", 1, tokens=5) for i in range(4)]
    m = compute_metrics(records, ks=(1, 2, 4))
    assert m["num_problems"] == 3 and m["samples_per_problem"] == 4 and m["num_samples"] == 12
    assert m["pass_rate"] == pytest.approx(6 / 12)
    assert m["pass_at_k"]["pass@1"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["pass_at_k"]["pass@2"] == pytest.approx(((1 - 1 / 6) + 0 + 1) / 3)  # 1 - C(2,2)/C(4,2)
    assert m["pass_at_k"]["pass@4"] == pytest.approx(2 / 3)
    assert m["compile_error_rate"] == pytest.approx(2 / 12)
    assert m["status_counts"] == {"passed": 6, "compile_error": 2, "wrong_answer": 2, "runtime_error": 1,
                                  "timeout": 1, "memory_limit": 0, "output_limit": 0, "sandbox_error": 0}
    assert list(m["status_counts"])[:3] == ["passed", "compile_error", "wrong_answer"]  # by count, then name
    assert m["mean_completion_tokens"] == pytest.approx((8 * 3 + 4 * 5) / 12)
    with pytest.raises(ValueError, match="pass@8 needs at least 8"):
        compute_metrics(records, ks=(8,))


def test_compile_error_rate_only_for_code_statuses():
    math_records = [_rec(0, 0, "correct", 1.0), _rec(1, 0, "unparsable", 0.0)]
    assert compute_metrics(math_records)["compile_error_rate"] is None
    assert compute_metrics(math_records)["status_counts"] == {"correct": 1, "unparsable": 1}
    assert compute_metrics(math_records, code_task=True)["compile_error_rate"] == 0.0


# ----------------------------------------------------------------------------------------- evaluate()


@pytest.fixture(scope="module")
def arith():
    """One env instance shared by the module (its verifier worker starts once)."""
    import gymnasium as gym

    import sdpg_envs  # noqa: F401

    env = gym.make(ARITH, **TEST_SPLIT)
    yield env
    env.close()


def _eval(model, tokenizer, env, **kw):
    args = dict(n=4, samples=2, ks=(1, 2), temperature=1.0, max_new_tokens=6, batch_size=4, progress=False)
    args.update(kw)
    return evaluate(model, tokenizer, env, **args)


@pytest.mark.timeout(120)
def test_evaluate_is_deterministic_and_leaves_caller_rng_alone(tiny_model, tokenizer, arith):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = _eval(tiny_model, tokenizer, arith, seed=7)
    assert torch.equal(torch.rand(3), expected_next)  # caller RNG untouched
    b = _eval(tiny_model, tokenizer, arith, seed=7)
    c = _eval(tiny_model, tokenizer, arith, seed=8)
    texts = lambda r: [x.completion for x in r.records]  # noqa: E731
    assert texts(a) == texts(b)
    assert texts(a) != texts(c)
    assert [(r.problem_index, r.sample_index) for r in a.records] == [(p, s) for p in range(4) for s in range(2)]
    assert a.metrics == compute_metrics(a.records, (1, 2))
    assert all(0 < r.num_tokens <= 6 for r in a.records)
    assert tiny_model.training  # train mode restored (fresh models start in train mode)


@pytest.mark.timeout(120)
def test_resume_continues_interrupted_run_and_matches_full_run(tiny_model, tokenizer, arith, tmp_path):
    full = _eval(tiny_model, tokenizer, arith, n=6, output_dir=tmp_path / "full")
    out = tmp_path / "partial"
    _eval(tiny_model, tokenizer, arith, n=6, output_dir=out)
    # simulate a crash during chunk 1 (chunks hold 2 problems x 2 samples): keep chunk 0, half of chunk 1,
    # and a torn line; results.json back to its in-progress state
    lines = (out / SAMPLES_FILE).read_text().splitlines(keepends=True)
    (out / SAMPLES_FILE).write_text("".join(lines[:6]) + lines[6][: len(lines[6]) // 2])
    data = read_results(out)
    (out / RESULTS_FILE).write_text(json.dumps({**data, "complete": False, "metrics": {}}))
    resumed = _eval(tiny_model, tokenizer, arith, n=6, output_dir=out)
    assert resumed.meta["timing"]["resumed_samples"] == 4
    assert [r.completion for r in resumed.records] == [r.completion for r in full.records]
    assert resumed.metrics == full.metrics
    assert len((out / SAMPLES_FILE).read_text().splitlines()) == 12
    assert read_results(out)["complete"] is True
    # a complete run is reloaded, not regenerated; new ks only change the metrics
    again = _eval(tiny_model, tokenizer, arith, n=6, output_dir=out, ks=(2,))
    assert again.meta["timing"]["resumed_samples"] == 12 and list(again.metrics["pass_at_k"]) == ["pass@2"]


@pytest.mark.timeout(120)
def test_an_evaluation_can_grow_but_not_shrink(tiny_model, tokenizer, arith, tmp_path):
    # n=5 with 2-problem chunks: chunks {0,1}, {2,3} are full and reused; the partial chunk {4} is redone
    small = _eval(tiny_model, tokenizer, arith, n=5, output_dir=tmp_path / "grow")
    grown = _eval(tiny_model, tokenizer, arith, n=8, output_dir=tmp_path / "grow")
    fresh = _eval(tiny_model, tokenizer, arith, n=8)
    assert grown.meta["timing"]["resumed_samples"] == 8
    assert [r.completion for r in grown.records] == [r.completion for r in fresh.records]
    assert [r.completion for r in grown.records[:8]] == [r.completion for r in small.records[:8]]
    with pytest.raises(ValueError, match="holds an evaluation of 8 problems, more than the 4"):
        _eval(tiny_model, tokenizer, arith, n=4, output_dir=tmp_path / "grow")
    assert len((tmp_path / "grow" / SAMPLES_FILE).read_text().splitlines()) == 16


@pytest.mark.timeout(60)
def test_resume_refuses_a_different_config(tiny_model, tokenizer, arith, tmp_path):
    _eval(tiny_model, tokenizer, arith, n=2, output_dir=tmp_path)
    with pytest.raises(ValueError, match="differs in: seed"):
        _eval(tiny_model, tokenizer, arith, n=2, output_dir=tmp_path, seed=1)
    assert len((tmp_path / SAMPLES_FILE).read_text().splitlines()) == 4  # finished work kept
    report = _eval(tiny_model, tokenizer, arith, n=2, output_dir=tmp_path, seed=1, overwrite=True)
    assert report.config["seed"] == 1


def test_bad_arguments_give_clear_errors(tiny_model, tokenizer, arith):
    with pytest.raises(ValueError, match="procedural"):
        _eval(tiny_model, tokenizer, arith, n=None)
    with pytest.raises(ValueError, match="each k must be in 1..samples=2"):
        _eval(tiny_model, tokenizer, arith, ks=(1, 4))
    with pytest.raises(ValueError, match="cannot make env 'sdpg/Nope-v0'.*sdpg/Arith-v0"):
        evaluate(tiny_model, tokenizer, "sdpg/Nope-v0", n=1)
    with pytest.raises(ValueError, match="not an sdpg ReasoningEnv"):
        evaluate(tiny_model, tokenizer, object(), n=1)


@pytest.mark.timeout(60)
def test_env_id_and_instance_record_the_same_config(tiny_model, tokenizer, arith):
    by_instance = evaluate(tiny_model, tokenizer, arith, n=2, max_new_tokens=4, progress=False)
    by_id = evaluate(tiny_model, tokenizer, ARITH, env_kwargs=TEST_SPLIT, n=2, max_new_tokens=4, progress=False)
    assert by_instance.config == by_id.config
    assert by_id.config["env_id"] == ARITH and by_id.config["env_kwargs"] == TEST_SPLIT
    assert by_id.config["temperature"] == 0.0  # greedy by default for one sample
    assert [r.completion for r in by_id.records] == [r.completion for r in by_instance.records]
    assert by_id.records[1].prompt == arith.unwrapped.prompt_for(arith.unwrapped.problem_at(1))


# ----------------------------------------------------------------------------------------- CLI


@pytest.mark.timeout(180)
def test_cli_eval_end_to_end(tiny_model_dir, tmp_path):
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "sdpg_train", "eval", "--model", str(tiny_model_dir), "--env", ARITH,
           "--env-kwargs", json.dumps(TEST_SPLIT), "--n", "3", "--samples", "2", "--k", "1,2",
           "--max-new-tokens", "6", "--output", str(out), "--seed", "3"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=170, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "| pass@2 |" in proc.stdout and "| status | count | share |" in proc.stdout
    assert "eval sdpg/Arith-v0" in proc.stderr  # tqdm progress
    results = read_results(out)
    assert results["complete"] and results["config"]["model"] == str(tiny_model_dir)
    assert results["versions"]["torch"] == torch.__version__ and "git" in results
    rows = [json.loads(line) for line in (out / SAMPLES_FILE).read_text().splitlines()]
    assert len(rows) == 6 and {"prompt", "completion", "status", "score", "feedback"} <= set(rows[0])
    bad = subprocess.run(cmd[:-2] + ["--k", "5"], cwd=REPO, capture_output=True, text=True, timeout=170,
                         env=_env())
    assert bad.returncode == 2 and "each k must be in 1..samples=2" in bad.stderr


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def test_pass_at_k_is_monotone_in_k():
    vals = [pass_at_k(20, 3, k) for k in range(1, 21)]
    assert all(a <= b + 1e-15 for a, b in zip(vals, vals[1:])) and math.isclose(vals[-1], 1.0)
