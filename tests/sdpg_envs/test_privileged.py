"""Privileged-context templates, and the guarantee that the context never reaches the observation."""

from __future__ import annotations

import pytest

from sdpg_envs import ListSource, Problem, ReasoningEnv, VerifierResult
from sdpg_envs.privileged import (
    CONTEXT_PARTS,
    MAX_FEEDBACK_CHARS,
    register_context_part,
    render_context,
    validate_template,
)
from sdpg_envs.tasks.arith import ArithConfig, arith_source

P = Problem("p", "What is 6 * 7?", answer="42", solution="6 * 7 = 42")
WRONG = VerifierResult(0.0, "incorrect", "your final answer 12 is not equal to the reference")
RIGHT = VerifierResult(1.0, "correct", "")


@pytest.mark.parametrize(
    ("template", "result", "expected"),
    [
        ("none", WRONG, ""),
        ("answer", WRONG, "Reference answer: 42"),
        ("solution", None, "Reference solution:\n6 * 7 = 42"),
        ("reference", None, "Reference solution:\n6 * 7 = 42\n\nReference answer: 42"),
        ("feedback", None, ""),
        ("feedback", WRONG, "Feedback on the attempt (incorrect): your final answer 12 is not equal to the reference"),
        ("feedback", RIGHT, "Feedback on the attempt: correct"),
        ("answer+feedback", WRONG,
         "Reference answer: 42\n\nFeedback on the attempt (incorrect): your final answer 12 is not equal to the "
         "reference"),
        ("reference+feedback", None, "Reference solution:\n6 * 7 = 42\n\nReference answer: 42"),
    ],
)
def test_templates_render(template, result, expected):
    assert render_context(template, P, result) == expected


def test_missing_parts_are_skipped_and_feedback_is_capped():
    bare = Problem("q", "Write f.", answer=None, solution="def f():\n    return 1\n")
    assert render_context("reference", bare, None) == "Reference solution:\ndef f():\n    return 1"
    long = VerifierResult(0.0, "runtime_error", "x" * 10_000)
    text = render_context("feedback", bare, long)
    assert len(text) < MAX_FEEDBACK_CHARS + 60 and text.endswith("[truncated]")


def test_unknown_parts_and_custom_parts():
    with pytest.raises(ValueError, match=r"unknown context part\(s\) \['hint'\]"):
        validate_template("reference+hint")
    with pytest.raises(ValueError):
        validate_template("")
    register_context_part("hint_test", lambda p, r: f"Hint: the answer has {len(p.answer)} digits")
    try:
        assert render_context("hint_test+feedback", P, WRONG).startswith("Hint: the answer has 2 digits\n\n")
        with pytest.raises(ValueError, match="already exists"):
            register_context_part("hint_test", lambda p, r: "")
    finally:
        del CONTEXT_PARTS["hint_test"]
    assert render_context(lambda p, r: f"custom {p.id}", P, None) == "custom p"


class ExactVerifier:
    def __call__(self, problem, completion):
        ok = completion.strip() == problem.answer
        return VerifierResult(float(ok), "correct" if ok else "incorrect", "" if ok else "not equal to the reference")

    def batch(self, problems, completions):
        return [self(p, c) for p, c in zip(problems, completions)]


@pytest.mark.parametrize("context", ["none", "answer", "solution", "reference", "feedback", "reference+feedback"])
@pytest.mark.parametrize("template", ["default", "plain", "gsm8k", "terse"])
def test_context_never_in_observation_or_reset_info(context, template):
    from sdpg_envs.envs.math_env import MathEnv

    src = arith_source(ArithConfig(digits=2, num_ops=2, operators="+-*", word_problems=True))
    env = MathEnv(src, ExactVerifier(), context=context, prompt_template=template)
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert set(info) == {"problem_id", "index"}
        *_, step_info = env.step("definitely wrong")
        ctx = step_info["privileged_context"]
        assert ctx == env.build_context(env.problem, VerifierResult(0.0, "incorrect", "not equal to the reference"))
        assert (ctx == "") == (context == "none")
        if ctx:
            assert ctx not in obs
        assert env.problem.solution not in obs and "Reference" not in obs


def test_env_rejects_unknown_context():
    with pytest.raises(ValueError, match="unknown context part"):
        ReasoningEnv(ListSource([P]), ExactVerifier(), context="secret")
