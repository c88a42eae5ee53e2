"""The learned scalar verifier: AUC math, training, save/load, the reward wrapper and the command."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import pytest
import torch

import sdpg_envs  # noqa: F401
from sdpg_train.cli import main
from sdpg_train.config import SDPGConfig
from sdpg_train.training.learned_verifier import (
    LearnedRewardSource,
    LearnedVerifier,
    collect_examples,
    featurize,
    roc_auc,
    train_verifier,
)
from sdpg_train.training.trainer import SDPGTrainer


def test_roc_auc_hand_computed():
    s, y = torch.tensor([0.9, 0.2, 0.6, 0.6]), torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert roc_auc(s, y) == pytest.approx(3.5 / 4)
    assert math.isnan(roc_auc(s, torch.ones(4)))


def test_train_verifier_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(80, generator=g) > 0.5).float()
    x = torch.randn(80, 6, generator=g)
    x[:, 0] += 10.0 * y  # separable along one feature
    head, m = train_verifier(x, y, epochs=100)
    assert m["heldout_accuracy"] == 1.0 and m["heldout_auc"] == 1.0 and m["heldout_n"] == 20
    with pytest.raises(ValueError, match="labelled"):
        train_verifier(x[:2], y[:2])


def test_rule_labels_and_reward_wrapper(tmp_path, tiny_model, tokenizer):
    env = gym.make("sdpg/Arith-v0")
    data = collect_examples(env, 12, seed=1)
    assert data.labels.tolist() == [1.0, 0.0, 0.0] * 12  # correct, wrong answer, wrong unboxed answer
    feats = featurize(tiny_model, tokenizer, data.prompts, data.completions, batch_size=8)
    assert feats.shape == (36, 2 * tiny_model.config.hidden_size) and torch.isfinite(feats).all()
    head, _ = train_verifier(feats, data.labels, epochs=30)
    ver = LearnedVerifier(tiny_model, tokenizer, head, "tiny")
    ver.save(tmp_path / "v")
    again = LearnedVerifier.load(tmp_path / "v", tiny_model, tokenizer)
    assert again.score(data.prompts[:3], data.completions[:3]) == ver.score(data.prompts[:3], data.completions[:3])
    source = LearnedRewardSource(env, again)
    cfg = SDPGConfig(model_name_or_path="tiny", device="cpu", loss="grpo", alpha=0.0, num_prompts_per_step=2,
                     num_generations=2, max_completion_length=6, max_steps=1, output_dir=str(tmp_path / "run"),
                     disable_tqdm=True, save_final=False)
    m = SDPGTrainer(env=[source], args=cfg).train()
    assert 0.0 < m["reward"] < 1.0 and m["reward_std"] > 0  # soft learned rewards, not the rule verifier's 0/1
    assert any(k.startswith("status/learned_") for k in m)


@pytest.mark.timeout(120)
def test_train_verifier_command(tmp_path, capsys):
    rc = main(["train-verifier", "--num_problems", "16", "--epochs", "20", "--output", str(tmp_path / "v")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and 0.0 <= out["heldout_accuracy"] <= 1.0 and out["heldout_n"] == 12
    assert (tmp_path / "v" / "verifier_head.safetensors").is_file()
    assert main(["train-verifier", "--env", "sdpg/Nope-v0"]) == 2
