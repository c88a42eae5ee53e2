"""TRL 1.16's multi-turn path (``rollout_func``) driving our repair envs: two real GRPO steps on CPU with a tiny
model, the feedback between turns masked out of TRL's loss, TRL's logged rewards equal to our episode rewards."""

from __future__ import annotations

import os
from typing import Any

import pytest

from sdpg_envs import Problem, ProceduralSource, ReasoningEnv, VerifierResult
from sdpg_envs.multiturn import MultiTurnEnv
from sdpg_train.tiny import load_tokenizer
from sdpg_train.trl_repair import RepairRollout

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SPEED = {"max_completion_length": 8, "num_generations": 2, "per_device_train_batch_size": 4, "max_steps": 2,
         "report_to": "none", "use_cpu": True, "save_strategy": "no", "logging_steps": 1, "learning_rate": 1e-2}


def recording(rollout: RepairRollout):
    calls: list[tuple[list[Any], dict[str, list]]] = []

    def rollout_func(prompts, trainer):
        out = rollout(prompts, trainer)
        calls.append((list(prompts), out))
        return out

    rollout_func.calls = calls
    return rollout_func


def train(model_dir, out, rollout: RepairRollout):
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    func = recording(rollout)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[rollout.reward], args=GRPOConfig(output_dir=str(out),
                          **SPEED), train_dataset=rollout.dataset, rollout_func=func,
                          processing_class=load_tokenizer(str(model_dir)))
    trainer.train()
    assert trainer.state.global_step == 2 and len(func.calls) == 2
    return trainer, func.calls


def logged(trainer, key: str) -> list[float]:
    return [h[key] for h in trainer.state.log_history if key in h]


def test_trl_grpo_on_pyfunc_repair_masks_the_feedback(tiny_model_dir, tmp_path):
    rollout = RepairRollout("sdpg/PyFuncRepair-v0", n=4, max_attempts=2, prompt_template="compact")
    trainer, calls = train(tiny_model_dir, tmp_path / "out", rollout)
    tok = trainer.processing_class
    for prompts, out in calls:
        assert len(out["completion_ids"]) == len(prompts) == 4
        rows = zip(prompts, out["prompt_ids"], out["completion_ids"], out["env_mask"], out["turn_statuses"])
        for prompt, prompt_ids, ids, mask, statuses in rows:
            assert rollout.env.prompt_for(rollout.problem_for(prompt)) in tok.decode(prompt_ids)
            assert len(ids) == len(mask) and 1 <= len(statuses) <= 2
            if len(statuses) == 2:  # a failed first attempt: its feedback sits between the turns, masked
                env_text = tok.decode([t for t, m in zip(ids, mask) if not m])
                assert env_text.strip().startswith(f"# {statuses[0]}")  # the compact feedback line
                assert mask.index(0) > 0 and mask[-1] == 1
    # TRL counted only model tokens as completion length and logged our episode rewards
    assert logged(trainer, "completions/mean_length") == pytest.approx(
        [sum(map(sum, out["env_mask"])) / len(out["env_mask"]) for _, out in calls])
    assert logged(trainer, "rewards/pyfuncrepair_v0_episode/mean") == pytest.approx(
        [sum(out["episode_reward"]) / 4 for _, out in calls])


class Parity(ReasoningEnv):
    """Even-length completions pass: a random tiny model gets mixed rewards, so GRPO has a signal."""

    def __init__(self) -> None:
        super().__init__(ProceduralSource(lambda seed, i: Problem(f"p{i}", f"Say something even #{i}", answer="even"),
                                          seed=0, name="parity"), self)

    def __call__(self, problem: Problem, completion: str) -> VerifierResult:
        ok = len(completion) % 2 == 0
        return VerifierResult(float(ok), "correct" if ok else "incorrect", f"length {len(completion)}")

    def batch(self, problems, completions):
        return [self(p, c) for p, c in zip(problems, completions)]


def test_trl_grpo_gets_a_learning_signal_from_episode_rewards(tiny_model_dir, tmp_path):
    rollout = RepairRollout(MultiTurnEnv(Parity(), max_attempts=2), n=4)
    trainer, calls = train(tiny_model_dir, tmp_path / "out", rollout)
    rewards = [r for _, out in calls for r in out["episode_reward"]]
    assert 0 < sum(rewards) < len(rewards)  # mixed outcomes
    two = [s for _, out in calls for s in out["turn_statuses"] if len(s) == 2]
    assert all(s[0] == "incorrect" for s in two)  # only failures get a second turn
    assert any(g > 0 for g in logged(trainer, "grad_norm"))
    with pytest.raises(ValueError, match="not in RepairRollout.dataset"):
        rollout.problem_for("an unknown prompt")
    with pytest.raises(TypeError, match="not a multi-turn env"):
        RepairRollout("sdpg/PyFunc-v0", n=2)
