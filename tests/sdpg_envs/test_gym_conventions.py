"""Gymnasium conventions: ``render_mode="ansi"``, every registered env pickles (fresh and after use), and the
vector-env autoreset mode the docs recommend really scores every call."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import pytest

import sdpg_envs  # noqa: F401
from sdpg_envs.registration import registered_ids

DOCS = Path(__file__).resolve().parents[2] / "docs" / "environments.md"


def test_render_ansi_shows_prompt_completion_and_verdict():
    env = gym.make("sdpg/Arith-v0", render_mode="ansi")
    env.reset(seed=4)
    before = env.render()
    assert "Prompt:" in before and env.unwrapped.prompt_for(env.unwrapped.problem) in before
    assert "Completion: (none yet)" in before
    env.step("I think it is \\boxed{-12345}")
    text = env.render()
    assert "\\boxed{-12345}" in text and "Verdict: incorrect (score 0, failed)" in text
    plain = gym.make("sdpg/Arith-v0")
    plain.reset(seed=0)
    assert plain.render() is None  # no render mode: Gymnasium's None
    with pytest.raises(ValueError, match="render_mode"):
        gym.make("sdpg/Arith-v0", render_mode="human")


def test_gymnasium_check_env_passes_with_render_check_and_warnings_as_errors():
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make("sdpg/Arith-v0", render_mode="ansi").unwrapped, skip_render_check=False)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("env_id", registered_ids())
def test_every_registered_env_pickles_fresh_and_after_use(env_id):
    env = gym.make(env_id)
    try:
        copy = pickle.loads(pickle.dumps(env))
        env.reset(seed=1)
        gold = env.unwrapped.gold_completion(env.unwrapped.problem)
        assert env.step(gold)[1] == 1.0
        used = pickle.loads(pickle.dumps(env))
        for e in (copy, used):
            e.reset(seed=1)
            assert e.unwrapped.problem.id == env.unwrapped.problem.id and e.step(gold)[1] == 1.0
            e.close()
    finally:
        env.close()


def test_same_step_autoreset_scores_every_call_as_documented():
    assert "AutoresetMode.SAME_STEP" in DOCS.read_text()

    def run(mode) -> list[list[float]]:
        envs = gym.make_vec("sdpg/Arith-v0", num_envs=2, vectorization_mode="sync", digits=1,
                            vector_kwargs={"autoreset_mode": mode})
        envs.reset(seed=[1, 2])
        rewards = []
        for _ in range(3):
            gold = [e.unwrapped.gold_completion(e.unwrapped.problem) for e in envs.envs]
            _, r, _, _, info = envs.step(gold)
            rewards.append(r.tolist())
        envs.close()
        return rewards

    assert run(gym.vector.AutoresetMode.SAME_STEP) == [[1.0, 1.0]] * 3
    assert run(gym.vector.AutoresetMode.NEXT_STEP) == [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]  # the default wastes calls
