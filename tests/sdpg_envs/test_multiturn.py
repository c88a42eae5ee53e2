"""MultiTurnEnv (feedback as the next observation, discounted final reward, text and chat) and the repair envs."""

from __future__ import annotations

import gymnasium as gym
import pytest

import sdpg_envs
from sdpg_envs import ListSource, ReasoningEnv, check_reasoning_env
from sdpg_envs.multiturn import MultiTurnEnv
from sdpg_envs.spaces import ChatMessages
from tests.sdpg_envs.test_env_api import PROBLEMS, LastNumberVerifier

gym.register_envs(sdpg_envs)


def doubles(**kwargs) -> MultiTurnEnv:
    return MultiTurnEnv(ReasoningEnv(ListSource(PROBLEMS, name="doubles"), LastNumberVerifier()), **kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"observation": "chat", "discount": 0.5}, {"max_attempts": 1},
                                    {"feedback_template": "compact", "max_attempts": 5}])
def test_multiturn_env_passes_check_reasoning_env(kwargs):
    check_reasoning_env(doubles(**kwargs))


def test_feedback_is_the_next_observation_and_a_later_pass_scores_discounted():
    env = doubles(max_attempts=3, discount=0.5, instruction="Again.")
    obs, info = env.reset(options={"index": 4})
    assert obs == "What is 4 + 4?" and info == {"problem_id": "p4", "index": 4}
    obs, reward, terminated, truncated, info = env.step("5")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs == "\n\nAttempt 1 of 3 failed (incorrect).\n5 is wrong\n\nAgain.\n\n"
    assert info["attempt"] == 1 and info["turns"] == [{"attempt": 1, "status": "incorrect", "score": 0.0,
                                                       "passed": False}]
    assert info["privileged_context"].endswith("Feedback on the attempt (incorrect): 5 is wrong")
    obs, reward, terminated, _, info = env.step("no number\n")  # ends with a newline: one less in front
    assert obs.startswith("\nAttempt 2 of 3 failed (unparsable).\nno final answer found")
    obs, reward, terminated, _, info = env.step("8")
    assert (obs, reward, terminated) == ("", 0.25, True)
    assert [t["status"] for t in info["turns"]] == ["incorrect", "unparsable", "correct"]
    assert env.transcript().startswith("What is 4 + 4?5\n\nAttempt 1 of 3") and env.transcript().endswith("8")
    assert [m["role"] for m in env.messages()] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    with pytest.raises(gym.error.ResetNeeded, match="episode is over"):
        env.step("8")
    env.reset(options={"index": 4})
    assert env.step("8")[1:3] == (1.0, True) and env.attempt == 1


def test_chat_observations_and_exhausted_attempts():
    env = doubles(max_attempts=2, observation="chat")
    assert isinstance(env.observation_space, ChatMessages)
    obs, _ = env.reset(options={"index": 1})
    assert obs == [{"role": "user", "content": "What is 1 + 1?"}] and obs in env.observation_space
    obs, reward, terminated, _, _ = env.step("3")
    assert obs == [{"role": "user", "content": "Attempt 1 of 2 failed (incorrect).\n3 is wrong\n\nTry again."}]
    obs, reward, terminated, _, info = env.step("4")
    assert (obs, reward, terminated, info["attempt"]) == ([], 0.0, True, 2)
    assert env.messages()[-1] == {"role": "assistant", "content": "4"}


def test_feedback_is_clipped_to_the_budget_and_bad_arguments_are_refused():
    env = doubles(feedback_chars=60)
    env.reset(options={"index": 0})
    obs = env.step("1" * 500)[0]
    assert "[truncated]" in obs and len(obs) < 200
    for bad, match in [({"max_attempts": 0}, "max_attempts"), ({"discount": 0.0}, "discount"),
                       ({"observation": "image"}, "observation"), ({"feedback_template": "x"}, "feedback_template"),
                       ({"feedback_chars": 10}, "feedback_chars")]:
        with pytest.raises(ValueError, match=match):
            doubles(**bad)
    with pytest.raises(TypeError, match="already multi-turn"):
        MultiTurnEnv(doubles())
    with pytest.raises(TypeError, match="FeedbackTemplate"):
        doubles(feedback_template=print)
    with pytest.raises(ValueError, match="unknown context part"):
        doubles().context = "answer+nope"


def test_any_registered_single_step_env_becomes_multi_turn():
    env = MultiTurnEnv(gym.make("sdpg/Arith-v0", digits=1, operators="+", prompt_template="terse"),
                       feedback_template="compact")
    obs, _ = env.reset(seed=3)
    assert obs.startswith("Q: ") and env.context == "reference+feedback"
    env.context = "answer"
    assert env.env.context == "answer"
    wrong = str(int(env.problem.answer) + 1)
    obs, reward, terminated, _, info = env.step(f" {wrong}")
    assert obs.startswith("\n# incorrect: ") and not terminated
    assert info["privileged_context"] == f"Reference answer: {env.problem.answer}"


@pytest.mark.timeout(120)
def test_pyfunc_repair_compile_error_then_fix_scores():
    env = gym.make("sdpg/PyFuncRepair-v0", prompt_template="compact")
    assert env.unwrapped.max_attempts == 3
    env.reset(seed=5)
    problem = env.unwrapped.problem
    broken = problem.solution.replace("def f(x):", "def f(x)")
    obs, reward, terminated, _, info = env.step(broken)
    assert not terminated and reward == 0.0 and info["verifier"]["status"] == "compile_error"
    assert obs == "# compile_error: SyntaxError: expected ':'\n"
    assert "Reference solution" in info["privileged_context"] and "SyntaxError" in info["privileged_context"]
    _, reward, terminated, _, info = env.step(problem.solution)
    assert terminated and reward == 1.0 and [t["status"] for t in info["turns"]] == ["compile_error", "passed"]
    env.close()


@pytest.mark.timeout(120)
def test_mbpp_repair_chat_feedback_shows_the_failing_test():
    env = gym.make("sdpg/MBPPRepair-v0", n=2, observation="chat", max_attempts=2)
    obs, _ = env.reset(options={"index": 0})
    assert obs[0]["content"].endswith("```python code block.")
    obs, _, terminated, _, info = env.step("```python\ndef remove_Occ(s, ch):\n    return s\n```")
    content = obs[0]["content"]
    assert not terminated and info["verifier"]["status"] == "wrong_answer"
    assert content.startswith("Attempt 1 of 2 failed (wrong_answer).") and "Test failed: assert remove_Occ(" in content
    assert content.endswith("Fix the program. Answer with the complete Python code in a single ```python code block.")
    env.close()


def test_render_ansi_shows_every_attempt_and_the_feedback_shown():
    env = doubles(render_mode="ansi")
    env.reset(options={"index": 2})
    assert "Completion: (none yet)" in env.render()
    env.step("3")
    env.step("4")
    text = env.render()
    assert "attempt 2 of 3" in text and "Attempt 1:\n3\nVerdict: incorrect" in text and "Feedback shown:" in text
    assert text.rstrip().endswith("Verdict: correct (score 1, passed)")
    with pytest.raises(ValueError, match="render_mode"):
        doubles(render_mode="human")
