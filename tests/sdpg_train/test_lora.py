"""LoRA through peft: adapters train, the reference is the base model with adapters disabled (no copy),
checkpoints hold the adapter (exact resume) and the merged weights (``from_pretrained``-ready)."""

from __future__ import annotations

import pytest
import torch

from sdpg_train.config import SDPGConfig
from sdpg_train.core.lora import AdapterDisabled
from sdpg_train.tiny import tiny_causal_lm
from sdpg_train.training.trainer import SDPGTrainer


def lora_cfg(tmp_path, name="run", **changes) -> SDPGConfig:
    base = dict(model_name_or_path="tiny", device="cpu", num_prompts_per_step=2, num_generations=4,
                max_completion_length=8, max_steps=4, learning_rate=1e-2, beta=0.5, alpha=0.05,
                max_context_length=48, output_dir=str(tmp_path / name), disable_tqdm=True, save_final=False,
                lora_r=4, lora_alpha=8.0, teacher_model_kind="base", lr_scheduler_type="cosine", warmup_steps=1)
    return SDPGConfig(**{**base, **changes})


@pytest.mark.timeout(240)
def test_lora_trains_adapters_against_the_adapter_free_base_and_resumes_exactly(tmp_path):
    base = tiny_causal_lm(seed=0)  # (seeds torch: build it before the trainer, which seeds sampling)
    full = SDPGTrainer(args=lora_cfg(tmp_path, "full"))
    assert isinstance(full.ref, AdapterDisabled) and full.teacher is full.ref  # one model, no frozen copy
    assert not list(full.ref.parameters())
    trainable = [n for n, p in full.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert sum(len(g["params"]) for g in full.optimizer.param_groups) == len(trainable)
    full.train()
    frozen_before = dict(base.named_parameters())
    for n, p in full.model.get_base_model().named_parameters():  # the base weights never move
        if "lora_" not in n:
            assert torch.equal(p, frozen_before[n.replace(".base_layer", "")]), n
    # the reference = the initial model: adapters disabled give the base model's hidden states exactly
    ids = torch.tensor([[5, 9, 13, 40]])
    inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=torch.arange(4)[None],
                  gather_index=torch.tensor([[0, 1, 2]]), token_mask=torch.ones(1, 3, dtype=torch.bool))
    with torch.no_grad():
        h_ref, h_pol = full.ref(**inputs), full.policy(**inputs)
        h_base = base.model(input_ids=ids).last_hidden_state[0, :3]
    torch.testing.assert_close(h_ref, h_base)
    assert not torch.allclose(h_pol, h_base)  # the adapters did train

    half = lora_cfg(tmp_path, "half", save_steps=2)
    first = SDPGTrainer(args=half)
    first.args = half.replace(max_steps=2)
    first.train()
    ckpt = tmp_path / "half" / "checkpoint-2"
    assert (ckpt / "adapter" / "adapter_model.safetensors").is_file() and (ckpt / "model.safetensors").is_file()
    resumed = SDPGTrainer(args=half)
    resumed.train(resume_from_checkpoint=True)
    for (k, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(a, b), k
    assert resumed.scheduler.get_last_lr() == full.scheduler.get_last_lr()


@pytest.mark.timeout(180)
def test_merged_checkpoint_loads_as_a_plain_model(tmp_path):
    from transformers import AutoModelForCausalLM

    trainer = SDPGTrainer(args=lora_cfg(tmp_path, max_steps=2, save_final=True))
    trainer.train()
    ckpt = tmp_path / "run" / "checkpoint-2"
    plain = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    assert not any("lora" in n for n, _ in plain.named_parameters())
    ids = torch.tensor([[5, 9, 13, 40, 77]])
    with torch.no_grad():
        want = trainer.model(input_ids=ids).logits
        got = plain(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    trainer.save_model(tmp_path / "export")
    assert (tmp_path / "export" / "model.safetensors").is_file() and (tmp_path / "export" / "adapter").is_dir()
