"""Mixed precision (fp32 master weights, bf16/fp16 autocast compute) and gradient checkpointing that is on."""

from __future__ import annotations

import warnings

import pytest
import torch

from sdpg_train.config import SDPGConfig
from sdpg_train.core.model_io import is_checkpointing
from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm
from sdpg_train.training.trainer import SDPGTrainer

REWARDS = [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.5, 0.0]]


def cfg(tmp_path, **changes) -> SDPGConfig:
    base = dict(model_name_or_path=None, device="cpu", num_prompts_per_step=2, num_generations=4, max_steps=10,
                learning_rate=1e-6, beta=0.1, alpha=0.01, max_context_length=48, output_dir=str(tmp_path / "run"),
                disable_tqdm=True, save_final=False, log_completions=False)
    return SDPGConfig(**{**base, **changes})


def one_update(tmp_path, batch, **changes):
    """Parameters (fp32 copies) before and after one ``learn`` on ``batch``, and the trainer."""
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=["sdpg/Arith-v0"], args=cfg(tmp_path, **changes),
                          processing_class=byte_tokenizer())
    before = {k: v.detach().float().clone() for k, v in trainer.model.named_parameters()}
    trainer.learn(batch, step=1)
    after = {k: v.detach().float().clone() for k, v in trainer.model.named_parameters()}
    return before, after, trainer


def moved(before, after) -> tuple[float, torch.Tensor]:
    """(fraction of parameter entries that changed, the flat update)."""
    delta = torch.cat([(after[k] - before[k]).flatten() for k in before])
    return float((delta != 0).float().mean()), delta


@pytest.mark.timeout(180)
def test_bf16_mixed_precision_moves_parameters_as_fp32_does(tmp_path, make_fixed_batch):
    batch = make_fixed_batch(byte_tokenizer(), REWARDS)
    b32, a32, _ = one_update(tmp_path / "fp32", batch)
    bmx, amx, mixed = one_update(tmp_path / "mixed", batch, torch_dtype="bfloat16")
    frac32, d32 = moved(b32, a32)
    fracmx, dmx = moved(bmx, amx)
    # master weights stay fp32, the forwards really run in bf16, the frozen reference is stored in bf16
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())
    seen = []
    proj = mixed.policy.lm.model.layers[0].self_attn.q_proj
    handle = proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    ids = torch.tensor([[5, 6, 7]])
    mixed.policy(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=torch.arange(3)[None],
                 gather_index=torch.tensor([[0, 1]]), token_mask=torch.tensor([[True, True]]))
    handle.remove()
    assert seen == [torch.bfloat16]
    assert all(p.dtype == torch.bfloat16 for p in mixed.ref.parameters())
    assert frac32 > 0.95 and fracmx > 0.97 * frac32, (frac32, fracmx)
    cos = float(torch.nn.functional.cosine_similarity(d32, dmx, dim=0))
    assert cos > 0.9, cos  # the same update, up to bf16 rounding of the forward
    # pure bf16 parameters, only on request and with a warning: a 1e-6 update is mostly rounded away
    with pytest.warns(UserWarning, match="low_precision_params"):
        bpb, apb, pure = one_update(tmp_path / "pure", batch, torch_dtype="bfloat16", low_precision_params=True)
    assert all(p.dtype == torch.bfloat16 for p in pure.model.parameters())
    fracpb, _ = moved(bpb, apb)
    assert fracpb < 0.5 * frac32, (fracpb, frac32)


@pytest.mark.timeout(180)
def test_fp16_mixed_precision_scales_the_loss_and_resumes_the_scale(tmp_path, make_fixed_batch):
    batch = make_fixed_batch(byte_tokenizer(), REWARDS)
    b, a, trainer = one_update(tmp_path, batch, torch_dtype="float16", learning_rate=1e-3)
    assert trainer.precision.scaler is not None and all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert moved(b, a)[0] > 0.9
    trainer.precision.scaler.update(new_scale=1024.0)  # as after a few overflows
    trainer.global_step = 1
    ckpt = trainer.save_checkpoint()
    assert (ckpt / "scaler.pt").is_file()
    other = SDPGTrainer(tiny_causal_lm(seed=0), env=["sdpg/Arith-v0"], args=cfg(tmp_path, torch_dtype="float16"),
                        processing_class=byte_tokenizer())
    other._maybe_resume(ckpt)
    assert other.precision.scaler.get_scale() == 1024.0


def test_low_precision_params_is_validated():
    with pytest.raises(ValueError, match="low_precision_params needs torch_dtype bfloat16"):
        SDPGConfig(torch_dtype="float16", low_precision_params=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # mixed precision itself never warns
        SDPGConfig(torch_dtype="bfloat16")


def _student_pass_stats(trainer, batch):
    """(bytes saved for backward outside checkpointed regions, gradients) of one student forward + backward."""
    from sdpg_train.core.model_io import plan_step

    mb = plan_step(batch, None, torch.zeros(len(batch)), num_mini_batches=1, max_tokens=4096, pad_id=0,
                   device="cpu")[0][0]
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        h = trainer.policy(**mb.student.inputs())
        loss = (h.float() ** 2).mean()
    loss.backward()
    return saved[0], [p.grad.clone() for p in trainer.model.parameters()]


@pytest.mark.timeout(180)
def test_gradient_checkpointing_is_really_on_for_a_model_loaded_by_path(tmp_path, make_fixed_batch):
    tok = byte_tokenizer()
    path = tmp_path / "model"
    tiny_causal_lm(seed=0, num_layers=4, hidden_size=96).save_pretrained(path)
    tok.save_pretrained(path)
    batch = make_fixed_batch(tok, REWARDS, length=24)
    stats = {}
    for gc in (False, True):
        trainer = SDPGTrainer(str(path), env=["sdpg/Arith-v0"], args=cfg(tmp_path, gradient_checkpointing=gc))
        assert trainer.model.training  # from_pretrained returns eval mode; the trainer trains in train mode
        assert is_checkpointing(trainer.model) == gc
        stats[gc] = _student_pass_stats(trainer, batch)
    (saved_off, grads_off), (saved_on, grads_on) = stats[False], stats[True]
    assert saved_on < 0.25 * saved_off, (saved_on, saved_off)  # activations are recomputed, not kept
    for a, b in zip(grads_off, grads_on):  # and the gradients are the same
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.timeout(180)
def test_cuda_bf16_mixed_precision_update_matches_fp32(tmp_path, make_fixed_batch):
    batch = make_fixed_batch(byte_tokenizer(), REWARDS, length=32)
    b32, a32, _ = one_update(tmp_path / "fp32", batch, device="cuda", gradient_checkpointing=True)
    bmx, amx, mixed = one_update(tmp_path / "mixed", batch, device="cuda", torch_dtype="bfloat16",
                                 gradient_checkpointing=True)
    assert all(p.dtype == torch.float32 and p.is_cuda for p in mixed.model.parameters())
    assert mixed.policy.head_weight().dtype == torch.bfloat16  # bf16 GEMM operands in the head, fp32 accumulation
    frac32, d32 = moved(b32, a32)
    fracmx, dmx = moved(bmx, amx)
    assert fracmx > 0.97 * frac32
    assert float(torch.nn.functional.cosine_similarity(d32, dmx, dim=0)) > 0.9
