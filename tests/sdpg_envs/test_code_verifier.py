"""Code verifier on real data: extraction, HumanEval/MBPP samples (references pass, mutants fail), C batches,
metrics helpers."""

from __future__ import annotations

import pytest

from sdpg_envs.metrics import compile_error_rate, pass_rate, status_histogram, summarize
from sdpg_envs.tasks.humaneval import load_humaneval
from sdpg_envs.tasks.mbpp import load_mbpp
from sdpg_envs.types import Problem, VerifierResult
from sdpg_envs.verifiers.code import CodeVerifier, TestSpec, extract_code


@pytest.fixture(scope="module")
def verifier():
    with CodeVerifier(timeout_s=20) as v:
        yield v


@pytest.mark.parametrize(("text", "mode", "expected"), [
    ("```python\ndef f():\n    return 1\n```", "auto", "def f():\n    return 1\n"),
    ("intro\n```py\na = 1\n```\nthen\n```python\nb = 2\n```\nbye", "auto", "b = 2\n"),
    ("```c\nint x;\n```\n```\nplain = 1\n```", "auto", "plain = 1\n"),
    ("no fence here\nx = 1", "auto", "no fence here\nx = 1\n"),
    ("no fence here", "fenced", None),
    ("```python\ndef f():\n    return 1", "auto", "def f():\n    return 1\n"),  # unterminated fence
    ("\n\n    return 1\n\n", "raw", "    return 1\n"),  # indentation of a continuation is kept
])
def test_extract_code(text, mode, expected):
    assert extract_code(text, mode=mode) == expected


def test_extract_code_language_and_errors():
    assert extract_code("```python\np = 1\n```\n```c\nint main;\n```", language="c") == "int main;\n"
    with pytest.raises(ValueError, match="extraction mode"):
        extract_code("x", mode="nope")
    with pytest.raises(ValueError, match="language"):
        extract_code("x", language="rust")


def test_bad_specs_raise_clear_errors():
    with pytest.raises(ValueError, match="does not compile"):
        TestSpec(tests="assert (")
    with pytest.raises(ValueError, match="pair"):
        TestSpec(tests=[["only input"]], language="c")
    with pytest.raises(ValueError, match="timeout_s"):
        TestSpec(tests="assert True", timeout_s=0)
    with pytest.raises(ValueError, match="metadata"):
        CodeVerifier().spec_for(Problem("p", "no tests"))


def _mutants(problem: Problem) -> dict[str, str]:
    prompt = problem.metadata["preamble"]
    return {"return None": prompt + "    return None\n", "pass": prompt + "    pass\n",
            "syntax error": problem.solution + "\n)\n"}


@pytest.mark.timeout(180)
def test_humaneval_sample_references_pass_and_mutants_fail(verifier):
    problems = load_humaneval()[::16]  # 11 problems spread over the set
    completions = [f"```python\n{p.solution}```" for p in problems]
    assert [r.status for r in verifier.batch(problems, completions)] == ["passed"] * len(problems)
    names, mutated, mprobs = [], [], []
    for p in problems:
        for name, code in _mutants(p).items():
            names.append(f"{p.id} {name}")
            mutated.append(f"```python\n{code}```")
            mprobs.append(p)
    for name, result in zip(names, verifier.batch(mprobs, mutated)):
        assert result.status != "passed", f"mutant passed: {name}"
        if name.endswith("syntax error"):
            assert result.status == "compile_error"


@pytest.mark.timeout(180)
def test_mbpp_references_pass_including_setup_and_builtin_args(verifier):
    wanted = {"MBPP/367", "MBPP/927", "MBPP/533", "MBPP/737", "MBPP/11", "MBPP/20", "MBPP/510", "MBPP/600"}
    problems = [p for p in load_mbpp(split="all") if p.id in wanted]
    assert len(problems) == len(wanted)
    results = verifier.batch(problems, [p.solution for p in problems])
    assert {p.id: r.status for p, r in zip(problems, results)} == dict.fromkeys(sorted(wanted), "passed")
    broken = verifier.batch(problems, [p.solution.replace("return", "return None and ", 1) for p in problems])
    assert all(r.status != "passed" for r in broken)
    sanitized = load_mbpp(variant="sanitized", n=6)
    assert all(r.passed for r in verifier.batch(sanitized, [p.solution for p in sanitized]))


def test_metrics_helpers():
    verdicts = [VerifierResult(1.0, "passed"), {"status": "compile_error"}, "compile_error", "wrong_answer"]
    hist = status_histogram(verdicts)
    assert hist["compile_error"] == 2 and hist["passed"] == 1 and hist["timeout"] == 0
    assert compile_error_rate(verdicts) == 0.5 and pass_rate(verdicts) == 0.25
    summary = summarize(verdicts)
    assert summary["n"] == 4 and summary["status_frac"]["wrong_answer"] == 0.25
    assert summarize([])["pass_rate"] == 0.0
    with pytest.raises(ValueError, match="status"):
        status_histogram([{"score": 1}])
