"""What a move to a real checkpoint relies on: per-view LM-head biases, tokenizers that reload through
``AutoTokenizer``, separate clamps for the distillation KL and the reference log-ratio."""

from __future__ import annotations

import torch
from torch import nn

from sdpg_train.config import SDPGConfig
from sdpg_train.core.model_io import plan_step
from sdpg_train.core.teacher import build_teacher_view
from sdpg_train.methods.sdpg import sdpg_loss
from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm
from sdpg_train.training.trainer import SDPGTrainer


def _kl(zp: torch.Tensor, zq: torch.Tensor) -> torch.Tensor:
    lp, lq = torch.log_softmax(zp.double(), -1), torch.log_softmax(zq.double(), -1)
    return (lp.exp() * (lp - lq)).sum(-1)


def test_each_view_uses_its_own_lm_head_bias(tmp_path, make_fixed_batch):
    lm = tiny_causal_lm(seed=0, tie_word_embeddings=False)
    head = nn.Linear(lm.lm_head.in_features, lm.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(lm.lm_head.weight)
        head.bias.normal_(0, 1.0)
    lm.lm_head = head
    tok = byte_tokenizer()
    cfg = SDPGConfig(device="cpu", num_prompts_per_step=2, num_generations=4, beta=0.1, alpha=0.1, full_ref_kl=True,
                     teacher_model_kind="base", output_dir=str(tmp_path), disable_tqdm=True, log_completions=False)
    trainer = SDPGTrainer(lm, env=["sdpg/Arith-v0"], args=cfg, processing_class=tok)
    with torch.no_grad():  # the student's head bias has moved away from the frozen (base teacher = reference) one
        trainer.policy.lm_head_bias.add_(torch.randn_like(head.bias) * 2.0)
    batch = make_fixed_batch(tok, [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.5, 0.0]])
    tview = build_teacher_view(tok, batch, sources=["env"], template=cfg.teacher_template, max_context_length=48)
    mb = plan_step(batch, tview.prompt_ids, torch.zeros(len(batch)), num_mini_batches=1, max_tokens=4096, pad_id=0,
                   device="cpu")[0][0]
    h_s = trainer.policy(**mb.student.inputs())
    with torch.no_grad():
        h_t, h_r = trainer._teacher_hidden(mb, h_s), trainer.ref(**mb.student.inputs())
    _, out, _, _ = trainer._head_and_loss(mb, h_s, h_t, h_r, 0.1, float(mb.num_tokens))
    pol, frozen = trainer.policy.lm.lm_head, trainer.ref.lm.lm_head
    z_s = h_s.detach() @ pol.weight.detach().t() + pol.bias.detach()
    z_t = h_t @ frozen.weight.t() + frozen.bias
    z_r = h_r @ frozen.weight.t() + frozen.bias
    torch.testing.assert_close(out.kl_teacher.double(), _kl(z_s, z_t), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.kl_ref.double(), _kl(z_s, z_r), rtol=1e-4, atol=1e-5)
    wrong = _kl(z_s, h_t @ frozen.weight.t() + pol.bias.detach())  # the student's bias on the teacher view
    assert not torch.allclose(out.kl_teacher.double(), wrong, rtol=1e-2)


def test_tiny_checkpoint_reloads_through_auto_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    tok = byte_tokenizer()
    tiny_causal_lm().save_pretrained(tmp_path)  # config.json with model_type qwen2 beside the tokenizer
    tok.save_pretrained(tmp_path)
    auto = AutoTokenizer.from_pretrained(tmp_path)
    text = "Héllo wörld 12+3=?\n<|user|> ∑"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(auto) == 259 and (auto.pad_token_id, auto.eos_token_id) == (0, 1)
    assert auto(text, add_special_tokens=False)["input_ids"] == ids and auto.decode(ids) == text
    msgs = [{"role": "user", "content": "2+2?"}]
    assert auto.apply_chat_template(msgs, tokenize=False) == tok.apply_chat_template(msgs, tokenize=False)


def test_kl_clamp_and_log_ratio_clamp_are_separate_knobs():
    logp = torch.tensor([-1.0, -30.0], requires_grad=True)
    ref = torch.tensor([-1.5, -1.0])
    args = dict(old_logp=logp.detach(), advantages=torch.zeros(2), mask=torch.ones(2, dtype=torch.bool),
                kl_teacher=torch.tensor([3.0, 3.0]), ref_logp=ref, beta=1.0, alpha=1.0, kl_mode="urkl",
                gate_positive=False)
    loose, _ = sdpg_loss(logp, **args, kl_clamp=1.0, log_ratio_clamp=100.0)
    tight, _ = sdpg_loss(logp, **args, kl_clamp=1.0, log_ratio_clamp=5.0)
    # distillation: min(3, 1) per token either way; reference: ½ (log w)² with log w = 0.5 and −29 (or −5)
    assert torch.isclose(loose, torch.tensor((2 * 1.0 + 0.5 * 0.25 + 0.5 * 29.0**2) / 2))
    assert torch.isclose(tight, torch.tensor((2 * 1.0 + 0.5 * 0.25 + 0.5 * 5.0**2) / 2))
