"""Teacher kind ``encoder``: a trainable soft-prefix pathway trained by its own objective only."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch

import sdpg_envs  # noqa: F401
from sdpg_train.config import SDPGConfig
from sdpg_train.core.context_encoder import ContextEncoder, pooled_embeddings
from sdpg_train.training.trainer import SDPGTrainer
from tests.sdpg_train.test_baselines_train import ParityTask, changed, snapshot


def enc_cfg(tmp_path, name="run", **changes) -> SDPGConfig:
    base = dict(model_name_or_path="tiny", device="cpu", loss="sdpg", beta=0.5, alpha=0.0, num_prompts_per_step=2,
                num_generations=4, max_completion_length=6, max_steps=2, learning_rate=1e-3,
                max_context_length=24, teacher_model_kind="encoder", output_dir=str(tmp_path / name),
                disable_tqdm=True, save_final=False, log_completions=False)
    return SDPGConfig(**{**base, **changes})


def test_encoder_shapes_and_pooling():
    enc = ContextEncoder(8, num_prefix=3, width=16)
    assert enc(torch.randn(2, 8)).shape == (2, 3, 8)
    emb = torch.nn.Embedding(10, 8)
    pooled = pooled_embeddings(emb, [[1, 2], []])
    assert torch.allclose(pooled[0], emb.weight[[1, 2]].mean(0)) and torch.equal(pooled[1], torch.zeros(8))


@pytest.mark.timeout(120)
def test_encoder_is_trained_by_its_own_objective_only(tmp_path):
    trainer = SDPGTrainer(env=[ParityTask()], args=enc_cfg(tmp_path, save_final=True))
    enc = trainer.method.encoder.encoder
    enc_before, before = snapshot(enc), snapshot(trainer.model)
    m = trainer.train()
    assert m["encoder/trained_tokens"] > 0 and math.isfinite(m["encoder/nll"])
    assert m["distill/kl"] > 0 and math.isfinite(m["loss/total"])
    assert changed(enc, enc_before) and changed(trainer.model, before)
    assert all(p.grad is None for p in trainer.model.parameters())  # the encoder objective never touches .grad
    assert (tmp_path / "run" / "checkpoint-2" / "context_encoder.safetensors").is_file()


@pytest.mark.timeout(120)
def test_student_loss_gives_the_encoder_no_gradient(tmp_path):
    trainer = SDPGTrainer(env=[ParityTask()], args=enc_cfg(tmp_path))
    enc = trainer.method.encoder
    seen = []
    for p in enc.encoder.parameters():
        p.register_hook(lambda g: seen.append(g))
    enc.train_step = lambda batch, minis: {}  # switch the encoder's own objective off
    before, model_before = snapshot(enc.encoder), snapshot(trainer.model)
    m = trainer.train()
    assert m["distill/kl"] > 0 and changed(trainer.model, model_before)
    assert not seen and not changed(enc.encoder, before)


@pytest.mark.timeout(120)
def test_encoder_teacher_on_math_and_code_with_sdpo(tmp_path):
    envs = [gym.make("sdpg/Arith-v0"), gym.make("sdpg/PyFunc-v0", split="train", prompt_template="compact")]
    cfg = enc_cfg(tmp_path, loss="sdpo", num_generations=2, context_sources=["env"], distill_topk=8)
    m = SDPGTrainer(env=envs, args=cfg).train()
    assert math.isfinite(m["loss/total"]) and m["distill/gate_open_frac"] > 0
