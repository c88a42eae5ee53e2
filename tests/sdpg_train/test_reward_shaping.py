"""Reward-shaping wrappers count in training and in ``as_reward_func`` (they used to be dropped via ``unwrapped``)."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.wrappers import TransformObservation, TransformReward

import sdpg_envs  # noqa: F401
from sdpg_envs.adapters import as_reward_func, to_dataset
from sdpg_envs.wrappers import FormatPenalty, LengthPenalty
from sdpg_train.config import SDPGConfig
from sdpg_train.core.rollout import EnvSource
from sdpg_train.training.trainer import SDPGTrainer


def shaped_env() -> gym.Env:
    """Reward = 2 · (score − 0.25): the format pattern never matches, so every completion pays the penalty."""
    return TransformReward(FormatPenalty(gym.make("sdpg/Arith-v0"), penalty=0.25, pattern="^NEVER$"),
                           lambda r: 2.0 * r)


def test_env_source_applies_the_wrapper_chain() -> None:
    src = EnvSource(shaped_env())
    problem = src.sample(3)
    gold = src.env.gold_completion(problem)
    right, wrong = src.score([problem, problem], [gold, "no idea"])
    assert (right.score, wrong.score) == (1.5, -0.5)  # what env.step would give
    assert right.details["verifier_score"] == 1.0 and right.status == "correct"
    assert src.sample(3).id == problem.id  # the same seed still draws the same problem
    env = shaped_env()
    env.reset(seed=3)
    assert env.step(gold)[1] == 1.5
    plain = EnvSource(gym.make("sdpg/Arith-v0"))  # gym.make's own wrappers change nothing: verdicts as they are
    assert not plain.shaping.active and plain.score([problem], [gold])[0].score == 1.0


def test_as_reward_func_applies_the_wrapper_chain() -> None:
    ds = to_dataset("sdpg/Arith-v0", n=2)
    rows = {k: ds[k] for k in ds.column_names}
    answers = [f"\\boxed{{{a}}}" for a in rows["answer"]]
    assert as_reward_func("sdpg/Arith-v0")(completions=answers, **rows) == [1.0, 1.0]
    length = LengthPenalty(gym.make("sdpg/Arith-v0"), max_length=1, buffer=0, penalty=0.5)
    assert as_reward_func(length)(completions=answers, **rows) == [0.5, 0.5]
    assert as_reward_func(shaped_env())(completions=["no idea", answers[1]], **rows) == [-0.5, 1.5]


def test_observation_wrappers_are_refused_with_their_name() -> None:
    base = gym.make("sdpg/Arith-v0")
    env = TransformObservation(base, lambda o: o.upper(), base.observation_space)
    with pytest.raises(TypeError, match="TransformObservation"):
        EnvSource(env)
    with pytest.raises(TypeError, match="TransformObservation"):
        as_reward_func(env)


@pytest.mark.timeout(180)
def test_trainer_rewards_are_the_shaped_rewards(tmp_path) -> None:
    cfg = SDPGConfig(model_name_or_path="tiny", device="cpu", loss="grpo", alpha=0.0, num_prompts_per_step=2,
                     num_generations=2, max_completion_length=4, max_steps=1, output_dir=str(tmp_path / "run"),
                     disable_tqdm=True, save_final=False, log_completions=False)
    trainer = SDPGTrainer(env=shaped_env(), args=cfg)
    batch = trainer._rollout(1)
    raw = [r.score for r in batch.results]
    assert batch.rewards.tolist() == [2.0 * (s - 0.25) for s in raw]
