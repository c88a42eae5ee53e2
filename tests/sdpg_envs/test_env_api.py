"""ReasoningEnv API, check_reasoning_env (over every registered sdpg/* id), spaces and wrappers."""

from __future__ import annotations

import re

import gymnasium as gym
import pytest

import sdpg_envs
from sdpg_envs import (
    ListSource,
    Problem,
    PromptTemplate,
    ReasoningEnv,
    VerifierResult,
    check_reasoning_env,
    registered_ids,
)
from sdpg_envs.spaces import UnicodeText
from sdpg_envs.wrappers import FormatPenalty, LengthPenalty, RecordVerifierStats

gym.register_envs(sdpg_envs)

# Small, cheap kwargs per id for the registry-wide check; ids not listed are made with no kwargs.
CHECK_KWARGS: dict[str, dict] = {
    "sdpg/GSM8K-v0": {"n": 8},
    "sdpg/MATH-v0": {"n": 8},
    "sdpg/MATH500-v0": {"n": 8},
}


class LastNumberVerifier:
    """A tiny real verifier for base-class tests: the last integer in the completion must equal the answer."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, problem: Problem, completion: str) -> VerifierResult:
        self.seen.append(completion)
        numbers = re.findall(r"-?\d+", completion[-200:])
        if not numbers:
            return VerifierResult(0.0, "unparsable", "no final answer found")
        ok = numbers[-1] == problem.answer
        return VerifierResult(float(ok), "correct" if ok else "incorrect", "" if ok else f"{numbers[-1]} is wrong")

    def batch(self, problems, completions):
        return [self(p, c) for p, c in zip(problems, completions)]


class RaisingVerifier(LastNumberVerifier):
    def __call__(self, problem, completion):
        if "boom" in completion:
            raise RuntimeError("verifier exploded")
        return super().__call__(problem, completion)


PROBLEMS = [Problem(f"p{i}", f"What is {i} + {i}?", answer=str(2 * i), solution=f"{i} + {i} = {2 * i}")
            for i in range(10)]


@pytest.fixture
def env() -> ReasoningEnv:
    return ReasoningEnv(ListSource(PROBLEMS, name="doubles"), LastNumberVerifier())


def test_small_env_passes_check_reasoning_env(env):
    check_reasoning_env(env)


def test_reset_is_deterministic_per_seed_and_honours_index(env):
    first = [env.reset(seed=s) for s in range(5)]
    assert first == [env.reset(seed=s) for s in range(5)]
    assert len({info["problem_id"] for _, info in first}) > 1, "different seeds should reach different problems"
    obs, info = env.reset(options={"index": 7})
    assert (obs, info) == ("What is 7 + 7?", {"problem_id": "p7", "index": 7})
    assert env.problem is PROBLEMS[7]
    with pytest.raises(IndexError, match="out of range"):
        env.reset(options={"index": 10})
    with pytest.raises(TypeError, match="must be an int"):
        env.reset(options={"index": "3"})


def test_step_fills_info_and_never_shows_context(env):
    obs, info = env.reset(options={"index": 3})
    assert "privileged_context" not in info
    obs2, reward, terminated, truncated, info = env.step("I think it is 5")
    assert (obs2, reward, terminated, truncated) == ("", 0.0, True, False)
    assert info["verifier"] == {"score": 0.0, "status": "incorrect", "feedback": "5 is wrong", "details": {},
                                "passed": False}
    assert info["answer"] == "6" and info["problem_id"] == "p3"
    assert info["privileged_context"] == (
        "Reference solution:\n3 + 3 = 6\n\nReference answer: 6\n\nFeedback on the attempt (incorrect): 5 is wrong"
    )
    assert info["privileged_context"] not in obs
    assert env.step(env.gold_completion(env.problem))[1] == 1.0


def test_step_before_reset_and_non_str_action_raise_clearly(env):
    with pytest.raises(gym.error.ResetNeeded):
        env.step("1")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="must be a str"):
        env.step(b"bytes")


def test_verifier_exception_becomes_error_result():
    env = ReasoningEnv(ListSource(PROBLEMS), RaisingVerifier())
    env.reset(seed=0)
    _, reward, _, _, info = env.step("boom")
    assert reward == 0.0 and info["verifier"]["status"] == "error"
    assert "verifier exploded" in info["verifier"]["feedback"]
    results = env.verify_batch(PROBLEMS[:3], ["0", "boom", "4"])  # batch fails -> one-by-one fallback
    assert [r.status for r in results] == ["correct", "error", "correct"]


def test_completions_are_clipped_to_max_chars():
    verifier = LastNumberVerifier()
    env = ReasoningEnv(ListSource(PROBLEMS), verifier, max_completion_chars=10)
    env.reset(options={"index": 1})
    env.step("2" + " " * 50 + "7")
    assert verifier.seen[-1] == "2" + " " * 9
    with pytest.raises(ValueError, match="got 2 problems but 1 completions"):
        env.verify_batch(PROBLEMS[:2], ["1"])


def test_prompt_template_callable_and_unknown_name():
    env = ReasoningEnv(ListSource(PROBLEMS), LastNumberVerifier(), prompt_template=lambda p: f"Q: {p.prompt}")
    assert env.reset(options={"index": 2})[0] == "Q: What is 2 + 2?"
    tagged = PromptTemplate("tagged", lambda p: p.prompt + " Answer in <a></a>.", "<a>{answer}</a>")
    env = ReasoningEnv(ListSource(PROBLEMS), LastNumberVerifier(), prompt_template=tagged)
    assert env.reset(options={"index": 2})[0].endswith("<a></a>.") and env.gold_completion(PROBLEMS[2]) == "<a>4</a>"
    with pytest.raises(ValueError, match="unknown prompt_template 'nope'"):
        ReasoningEnv(ListSource(PROBLEMS), LastNumberVerifier(), prompt_template="nope")
    with pytest.raises(TypeError, match="Verifier protocol"):
        ReasoningEnv(ListSource(PROBLEMS), object())


# ----- the checker catches broken envs --------------------------------------------------------------------------
class LeakyEnv(ReasoningEnv):
    def prompt_for(self, problem):
        return problem.prompt + "\n" + self.build_context(problem, None)


class WrongGoldEnv(ReasoningEnv):
    def gold_completion(self, problem):
        return "no number here"


class RandomResetEnv(ReasoningEnv):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=None, options=options)
        return super().reset(options={"index": int(self.np_random.integers(10))})


@pytest.mark.parametrize(("cls", "message"), [(LeakyEnv, "leaked"), (WrongGoldEnv, "gold completion scored")])
def test_checker_rejects_broken_envs(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_reasoning_env(cls(ListSource(PROBLEMS), LastNumberVerifier()), skip_gym_check=True)


def test_checker_rejects_nondeterministic_reset():
    with pytest.raises(AssertionError):
        check_reasoning_env(RandomResetEnv(ListSource(PROBLEMS), LastNumberVerifier()))


# ----- every registered id ------------------------------------------------------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id", registered_ids())
def test_registered_env_passes_check_reasoning_env(env_id):
    env = gym.make(env_id, **CHECK_KWARGS.get(env_id, {}))
    try:
        check_reasoning_env(env, num_problems=2)
    finally:
        env.close()


# ----- spaces -------------------------------------------------------------------------------------------------
def test_unicode_text_space_accepts_any_unicode_and_samples_members():
    space = UnicodeText(max_length=64, seed=0)
    assert r"\frac{1}{2} ≤ π ✓ \ud800" in space and "" in space
    assert "x" * 65 not in space and b"bytes" not in space and 5 not in space
    samples = [space.sample() for _ in range(50)]
    assert all(s in space for s in samples) and any(ord(c) > 127 for s in samples for c in s)
    assert UnicodeText(max_length=64, seed=3).sample() == UnicodeText(max_length=64, seed=3).sample()
    assert UnicodeText(10) == UnicodeText(10) != UnicodeText(11)
    with pytest.raises(ValueError, match="masks"):
        space.sample(mask=(3, None))


# ----- wrappers -----------------------------------------------------------------------------------------------
def test_format_penalty_by_pattern_and_status(env):
    wrapped = FormatPenalty(env, penalty=0.25, pattern=r"\\boxed\{")
    wrapped.reset(options={"index": 2})
    _, reward, _, _, info = wrapped.step("4")
    assert reward == 0.75 and info["format_ok"] is False and info["verifier"]["score"] == 1.0
    _, reward, _, _, info = wrapped.step("\\boxed{4}")
    assert reward == 1.0 and info["format_ok"] is True
    _, reward, _, _, _ = FormatPenalty(env, penalty=0.5).step("no answer")  # status unparsable
    assert reward == -0.5


def test_length_penalty_soft_ramp(env):
    wrapped = LengthPenalty(env, max_length=100, buffer=20, penalty=1.0)
    assert [wrapped.penalty_for(n) for n in (0, 80, 90, 100, 101)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    wrapped.reset(options={"index": 2})
    _, reward, _, _, info = wrapped.step(" " * 86 + "4")  # 87 chars -> 7/20 of the penalty
    assert info["length_penalty"] == pytest.approx(0.35) and reward == pytest.approx(0.65)
    with pytest.raises(ValueError):
        LengthPenalty(env, max_length=10, buffer=11)


def test_record_verifier_stats_window(env):
    wrapped = RecordVerifierStats(env, buffer_length=3)
    for completion in ["0", "1", "x", "0"]:  # index 0: answer "0"
        wrapped.reset(options={"index": 0})
        _, _, _, _, info = wrapped.step(completion)
    stats = info["verifier_stats"]
    assert stats["episodes"] == 4
    assert stats["status_counts"] == {"incorrect": 1, "unparsable": 1, "correct": 1}
    assert stats["pass_rate"] == pytest.approx(1 / 3) and stats["mean_score"] == pytest.approx(1 / 3)
    assert wrapped.stats() == stats and wrapped.stats() is not stats


@pytest.mark.parametrize("template", ["default", "plain", "gsm8k", "terse"])
@pytest.mark.parametrize("knobs", [{"digits": 1, "operators": "+"}, {"digits": 3, "num_ops": 3, "operators": "+-*"},
                                   {"word_problems": True, "num_ops": 3}])
def test_math_gold_completion_scores_one_for_every_template(template, knobs):
    env = gym.make("sdpg/Arith-v0", prompt_template=template, **knobs).unwrapped
    problems = [env.problem_at(i) for i in range(40)]
    results = env.verify_batch(problems, [env.gold_completion(p) for p in problems])
    assert [r.status for r in results] == ["correct"] * 40, [(p.answer, r.feedback) for p, r in zip(problems, results)
                                                             if not r.passed][:3]
    wrong = env.verify_batch(problems, [env.gold_completion(p).replace(p.answer, str(int(p.answer) + 1))
                                        for p in problems])
    assert not any(r.passed for r in wrong)


class AcceptAllVerifier(LastNumberVerifier):
    def __call__(self, problem, completion):
        return VerifierResult(1.0, "correct")


def test_checker_rejects_a_verifier_that_accepts_everything():
    with pytest.raises(AssertionError, match="accepts anything"):
        check_reasoning_env(ReasoningEnv(ListSource(PROBLEMS), AcceptAllVerifier()))
