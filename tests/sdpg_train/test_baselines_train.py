"""Every baseline / sibling mode trains a few steps with the tiny model on a math and a code env (CPU), the right
modules change, and nothing changes that should not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import sdpg_envs  # noqa: F401
from sdpg_train.config import SDPGConfig
from sdpg_train.core.value_head import ValueHead
from sdpg_train.training.trainer import SDPGTrainer

DOCS = Path(__file__).resolve().parents[2] / "docs"
PYFUNC = {"split": "train", "prompt_template": "compact"}
MODE_ARGS = {
    "ppo": {},
    "rlsd": {"context_sources": ["env"]},
    "sdpo": {"teacher_model_kind": "ema", "context_sources": ["sibling_else_feedback"], "distill_topk": 8},
    "opsd": {"teacher_model_kind": "base", "context_sources": ["reference"], "distill_estimator": "full"},
}


def cfg_for(tmp_path, loss: str, name: str = "run", **changes) -> SDPGConfig:
    base = dict(model_name_or_path="tiny", device="cpu", loss=loss, num_prompts_per_step=2, num_generations=2,
                max_completion_length=6, max_steps=2, learning_rate=1e-3, max_context_length=24,
                output_dir=str(tmp_path / name), disable_tqdm=True, save_final=False, log_completions=False)
    return SDPGConfig(**{**base, **MODE_ARGS[loss], **changes})


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in module.named_parameters() if not torch.equal(v, before[k])]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("loss", ["ppo", "rlsd", "sdpo", "opsd"])
def test_mode_trains_on_math_and_code_env(tmp_path, loss):
    envs = [gym.make("sdpg/Arith-v0"), gym.make("sdpg/PyFunc-v0", **PYFUNC)]
    trainer = SDPGTrainer(env=envs, args=cfg_for(tmp_path, loss, num_prompts_per_step=2))
    before = snapshot(trainer.model)
    frozen = trainer.teacher if trainer.teacher is not None else trainer.ref
    frozen_before = None if frozen is None else snapshot(frozen)
    trainer.train()
    metrics = rows(tmp_path / "run" / "metrics.jsonl")
    assert len(metrics) == 2 and {r["step"] for r in metrics} == {1, 2}
    for r in metrics:
        assert all(math.isfinite(v) for v in r.values()), r
        assert "loss/total" in r and "loss/policy" in r and "entropy" in r and "reward" in r
    if frozen is not None:  # the base/EMA teacher and the reference never get a gradient
        assert all(p.grad is None for p in frozen.parameters())
        if loss != "sdpo":  # the EMA teacher moves by its update rule only
            assert not changed(frozen, frozen_before)
    if loss in ("ppo", "sdpo", "opsd"):  # value loss / distillation move the policy even with zero rewards
        assert changed(trainer.model, before)
    doc = (DOCS / "methods.md").read_text() + (DOCS / "training.md").read_text()
    missing = [k for k in metrics[0] if k != "step" and f"`{k}`" not in doc and not k.startswith(("status/",
                                                                                                "rewards/"))]
    assert not missing, f"metrics not documented in docs/methods.md or docs/training.md: {missing}"


@pytest.mark.timeout(120)
def test_ppo_value_head_is_trained_only_by_the_value_loss(tmp_path):
    trainer = SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=cfg_for(tmp_path, "ppo", vf_coef=0.0, kl_coef=0.0))
    head = trainer.method.value_head
    head_before, before = snapshot(head), snapshot(trainer.model)
    assert trainer.ref is None  # kl_coef = 0: no reference model
    m = trainer.train()
    assert not changed(head, head_before) and m["loss/value"] == 0.0  # vf_coef = 0: the head never moves
    trainer = SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=cfg_for(tmp_path, "ppo", "b", value_head_detach=True))
    head, head_before, before = trainer.method.value_head, snapshot(trainer.method.value_head), snapshot(trainer.model)
    rewards_zero = trainer.train()
    assert changed(head, head_before) == ["summary.weight", "summary.bias"]
    if rewards_zero["reward_std"] == 0 and rewards_zero["kl"] == 0:  # no policy signal at all: trunk untouched
        assert not changed(trainer.model, before)


def test_value_head_detach_blocks_the_trunk_gradient():
    h = torch.randn(5, 8, requires_grad=True)
    ValueHead(8, detach_trunk=True)(h).sum().backward()
    assert h.grad is None
    ValueHead(8)(h).sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0


@pytest.mark.timeout(180)
def test_ppo_checkpoint_saves_and_resumes_the_value_head(tmp_path):
    cfg = cfg_for(tmp_path, "ppo", save_steps=1, max_steps=1)
    trainer = SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=cfg)
    trainer.train()
    ckpt = tmp_path / "run" / "checkpoint-1"
    assert (ckpt / "value_head.safetensors").is_file()
    resumed = SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=cfg.replace(max_steps=1))
    torch.nn.init.zeros_(resumed.method.value_head.summary.weight)
    resumed.train(resume_from_checkpoint=ckpt)
    for a, b in zip(trainer.method.value_head.parameters(), resumed.method.value_head.parameters()):
        assert torch.equal(a, b)


@pytest.mark.timeout(120)
def test_ppo_advantages_are_whitened_gae_and_kl_penalised(tmp_path):
    trainer = SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=cfg_for(tmp_path, "ppo", kl_coef=0.5))
    batch = trainer._rollout(1)
    m = trainer.learn(batch, 1)
    assert trainer.ref is not None and m["kl"] >= 0 and math.isfinite(m["ppo/non_score_reward"])
    assert m["value/mean"] != 0.0 and "loss/value" in m and m["ratio/max"] == pytest.approx(1.0)


class ParityTask:
    """Reward 1 for an even-length completion: random tiny models get non-zero group advantages."""

    name = "test/Parity-v0"

    def sample(self, seed: int):
        from sdpg_envs.types import Problem

        return Problem(f"parity-{seed % 97}", f"Say something of even length #{seed % 97}", answer="even")

    def prompt(self, problem):
        return problem.prompt

    def score(self, problems, completions):
        from sdpg_envs.types import VerifierResult

        return [VerifierResult(float(len(c) % 2 == 0), "correct" if len(c) % 2 == 0 else "incorrect",
                               f"length {len(c)}") for c in completions]

    def context(self, problem, result):
        return f"Answer with an even number of characters. Last attempt: {result.feedback}"


@pytest.mark.timeout(120)
def test_rlsd_with_lambda_zero_is_grpo_and_the_teacher_changes_the_update(tmp_path):
    common = dict(num_generations=4, max_steps=1, alpha=0.0)
    grpo = SDPGTrainer(env=[ParityTask()], args=cfg_for(tmp_path, "ppo", "g", **common).replace(loss="grpo"))
    m_grpo = grpo.train()
    assert m_grpo["reward_std"] > 0
    rl0 = SDPGTrainer(env=[ParityTask()], args=cfg_for(tmp_path, "rlsd", "r0", rlsd_lambda=0.0, **common))
    rl0.train()
    for a, b in zip(grpo.model.parameters(), rl0.model.parameters()):
        assert torch.equal(a, b)  # A_mix = A: exactly GRPO
    rl = SDPGTrainer(env=[ParityTask()], args=cfg_for(tmp_path, "rlsd", "r1", rlsd_lambda=1.0, **common))
    m = rl.train()
    assert m["rlsd/lambda"] == 1.0 and m["rlsd/delta"] != 0.0
    assert any(not torch.equal(a, b) for a, b in zip(grpo.model.parameters(), rl.model.parameters()))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("estimator,alpha", [("full", 0.5), ("full", 1.0), ("sampled", 1.0)])
def test_sdpo_distils_from_successful_siblings_with_an_ema_teacher(tmp_path, estimator, alpha):
    cfg = cfg_for(tmp_path, "sdpo", num_generations=4, max_steps=2, distill_estimator=estimator, distill_alpha=alpha)
    trainer = SDPGTrainer(env=[ParityTask()], args=cfg)
    teacher_before, before = snapshot(trainer.teacher), snapshot(trainer.model)
    m = trainer.train()
    assert 0 < m["distill/gate_open_frac"] <= 1 and m["distill/teacher_frac"] > 0
    assert math.isfinite(m["loss/total"]) and m["loss/policy"] == 0.0
    assert changed(trainer.model, before) and changed(trainer.teacher, teacher_before)  # EMA follows the student
    assert all(p.grad is None for p in trainer.teacher.parameters())
