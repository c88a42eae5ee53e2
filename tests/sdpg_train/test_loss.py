"""The SDPG loss pinned to hand-computed values (spec §3.2-3.6)."""

from __future__ import annotations

import math

import pytest
import torch

from sdpg_train.core.head import sdpg_head
from sdpg_train.methods.sdpg import REF_KL_MODES, beta_schedule, policy_loss_dual_clip, ref_kl_surrogate, sdpg_loss


# --- β schedule -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "step,expected",
    [(1, 1e-3 / 50), (25, 1e-3 / 2), (50, 1e-3), (51, 1e-3 * 349 / 350), (225, 1e-3 * 0.5), (400, 0.0), (450, 0.0)],
)
def test_beta_schedule_paper_triangle(step, expected):
    assert beta_schedule(step, 1e-3, 50, 350, 400) == pytest.approx(expected, rel=1e-12, abs=0)


def test_beta_schedule_constant_without_warmup_or_decay():
    assert [beta_schedule(k, 0.5, 0, 0, 400) for k in (1, 200, 400)] == [0.5, 0.5, 0.5]
    assert beta_schedule(10, 0.5, 0, 350, 0) == 0.5  # unknown total: no decay, as the reference code


def test_beta_schedule_rejects_zero_based_step():
    with pytest.raises(ValueError, match="1-based"):
        beta_schedule(0, 1e-3, 50, 350, 400)


# --- dual-clip PPO ----------------------------------------------------------------------------------------------
# (A, ρ) -> (loss, d loss / d logp, flag) with ε_low = 0.2, ε_high = 0.28, c = 10
DUAL_CASES = [
    (1.0, 1.0, -1.0, -1.0, None),  # on-policy: -A ρ, gradient -A ρ
    (1.0, 0.5, -0.5, -0.5, None),  # A > 0, ρ below the band: unclipped (max picks -Aρ)
    (1.0, 1.5, -1.28, 0.0, "clipped_high"),  # A > 0, ρ > 1 + ε_high: clipped, no gradient
    (-1.0, 0.5, 0.8, 0.0, "clipped_low"),  # A < 0, ρ < 1 - ε_low: clipped, no gradient
    (-1.0, 1.5, 1.5, 1.5, None),  # A < 0, ρ above the band: unclipped (max picks -Aρ)
    (-2.0, 20.0, 20.0, 0.0, "clipped_dual"),  # A < 0, ρ > c: dual clip bounds the loss at -A c = 20
    (0.0, 3.0, 0.0, 0.0, None),  # zero advantage: nothing
]


@pytest.mark.parametrize("adv,ratio,loss,grad,flag", DUAL_CASES)
def test_dual_clip_branches(adv, ratio, loss, grad, flag):
    logp = torch.tensor([math.log(ratio)], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, dtype=torch.float64)
    out, stats = policy_loss_dual_clip(logp, old, torch.tensor([adv], dtype=torch.float64), 0.2, 0.28, 10.0)
    (g,) = torch.autograd.grad(out.sum(), logp)
    assert out.item() == pytest.approx(loss, abs=1e-12)
    assert g.item() == pytest.approx(grad, abs=1e-12)
    for name in ("clipped_low", "clipped_high", "clipped_dual"):
        assert bool(stats[name].item()) == (name == flag), name


def test_dual_clip_rejects_c_at_most_one():
    with pytest.raises(ValueError, match="dual_clip_c"):
        policy_loss_dual_clip(torch.zeros(1), torch.zeros(1), torch.ones(1), 0.2, 0.2, 1.0)


# --- reference surrogates ---------------------------------------------------------------------------------------
E = math.exp(-0.3)
# log w = 0.3: (value, d/d logp) per mode, straight from the spec's table (and k1/k3 definitions)
REF_TABLE = {
    "fkl": (E, -E),
    "rkl": (0.5 * 1.3**2, 1.3),
    "ufkl": (E + 0.3, 1 - E),
    "urkl": (0.5 * 0.3**2, 0.3),
    "k1": (0.3, 1.0),
    "k3": (E - 1 + 0.3, 1 - E),
}


@pytest.mark.parametrize("mode", REF_KL_MODES)
def test_ref_kl_modes_value_and_gradient(mode):
    logp = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([-1.3], dtype=torch.float64)
    val = ref_kl_surrogate(logp, ref, mode)
    (g,) = torch.autograd.grad(val.sum(), logp)
    assert val.item() == pytest.approx(REF_TABLE[mode][0], abs=1e-12)
    assert g.item() == pytest.approx(REF_TABLE[mode][1], abs=1e-12)


def test_ref_kl_clamp_bounds_value_and_stops_gradient():
    logp = torch.tensor([-40.0], requires_grad=True)  # token collapsed vs π_ref: log w = -39
    val = ref_kl_surrogate(logp, torch.tensor([-1.0]), "fkl", clamp=20.0)
    (g,) = torch.autograd.grad(val.sum(), logp)
    assert val.item() == pytest.approx(math.exp(20.0), rel=1e-6) and g.item() == 0.0
    unclamped = ref_kl_surrogate(logp, torch.tensor([-1.0]), "fkl", clamp=None)
    assert unclamped.item() == pytest.approx(math.exp(39.0), rel=1e-5)


def test_ref_kl_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        ref_kl_surrogate(torch.zeros(1), torch.zeros(1), "kl")


# --- sdpg_loss --------------------------------------------------------------------------------------------------
def _on_policy(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.full((n,), -1.0, dtype=torch.float64, requires_grad=True)
    return logp, logp.detach().clone()


def test_gating_keeps_gated_tokens_in_denominator():
    logp, old = _on_policy(4)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)  # completion 1 = tokens 0-1, completion 2 = 2-3
    kl = torch.tensor([0.5, 0.2, 0.7, 0.1], dtype=torch.float64)
    mask = torch.ones(4, dtype=torch.bool)
    loss, stats = sdpg_loss(logp, old, adv, mask, kl_teacher=kl, beta=0.1, gate_positive=True)
    # ℓ^pg = -A at ρ = 1 -> sums to 0; distillation only on A > 0 tokens: 0.1 * 0.7, divided by all 4 tokens
    assert loss.item() == pytest.approx(0.1 * 0.7 / 4, abs=1e-12)
    assert stats["distill/gate_open_frac"] == 0.5 and stats["loss/distill_kl"] == pytest.approx(0.0175)
    loss_off, _ = sdpg_loss(logp, old, adv, mask, kl_teacher=kl, beta=0.1, gate_positive=False)
    assert loss_off.item() == pytest.approx(0.1 * 1.5 / 4, abs=1e-12)


def test_kl_clamp_and_its_gradient():
    logp, old = _on_policy(2)
    kl = torch.tensor([25.0, 3.0], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([1.0, 1.0], dtype=torch.float64)
    loss, stats = sdpg_loss(logp, old, adv, torch.ones(2, dtype=torch.bool), kl_teacher=kl, beta=1.0, kl_clamp=20.0)
    (g,) = torch.autograd.grad(loss, kl)
    assert loss.item() == pytest.approx((-2.0 + 20.0 + 3.0) / 2)
    assert g.tolist() == [0.0, 0.5] and stats["distill/kl_clamped_frac"] == 0.5


def test_full_loss_hand_computed_with_urkl():
    logp = torch.tensor([-1.0, -2.0, -0.5], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([-1.0, -2.0, -0.5], dtype=torch.float64)
    ref = torch.tensor([-1.3, -2.0, -0.9], dtype=torch.float64)
    adv = torch.tensor([2.0, -1.0, 2.0], dtype=torch.float64)
    kl = torch.tensor([0.4, 0.9, 0.1], dtype=torch.float64)
    mask = torch.tensor([True, True, False])
    loss, stats = sdpg_loss(logp, old, adv, mask, kl_teacher=kl, ref_logp=ref, beta=0.01, alpha=0.1, kl_mode="urkl")
    # token 0: -2 + 0.01*0.4 + 0.1*0.5*0.09 ; token 1: +1 + 0 (gated) + 0 ; token 2 masked; denominator 2
    expected = (-2 + 0.004 + 0.0045 + 1.0) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    (g,) = torch.autograd.grad(loss, logp)
    assert g.tolist() == pytest.approx([(-2 + 0.1 * 0.3) / 2, 1.0 / 2, 0.0], abs=1e-12)
    assert stats["tokens"] == 2 and stats["loss/ref_kl"] == pytest.approx(0.0045 / 2)


def test_grpo_is_beta_zero_and_ignores_teacher():
    logp = torch.randn(6, requires_grad=True)
    old, adv, mask = logp.detach() + 0.05, torch.randn(6), torch.ones(6, dtype=torch.bool)
    grpo, _ = sdpg_loss(logp, old, adv, mask)
    with_kl, _ = sdpg_loss(logp, old, adv, mask, kl_teacher=torch.rand(6) * 5, beta=0.0)
    pg, _ = policy_loss_dual_clip(logp, old, adv, 0.2, 0.28, 10.0)
    assert torch.equal(grpo, with_kl) and grpo.item() == pytest.approx(pg.mean().item())


def test_kl_ref_full_is_added_with_alpha():
    logp, old = _on_policy(2)
    klr = torch.tensor([0.3, 0.5], dtype=torch.float64)
    loss, stats = sdpg_loss(logp, old, torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.bool),
                            kl_ref_full=klr, alpha=0.2)  # fmt: skip
    assert loss.item() == pytest.approx(0.2 * 0.8 / 2) and stats["ref/kl_full"] == pytest.approx(0.4)


def test_global_token_normalisation_is_invariant_to_micro_batch_split():
    g = torch.Generator().manual_seed(1)
    n = 23
    logp = (torch.randn(n, generator=g, dtype=torch.float64) - 2).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    ref = logp.detach() + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    kl = torch.rand(n, generator=g, dtype=torch.float64)
    mask = torch.rand(n, generator=g) > 0.3
    kw = dict(beta=0.05, alpha=0.01, kl_mode="ufkl")
    whole, _ = sdpg_loss(logp, old, adv, mask, kl_teacher=kl, ref_logp=ref, **kw)
    (g_whole,) = torch.autograd.grad(whole, logp)
    total = float(mask.sum())
    parts = [slice(0, 4), slice(4, 5), slice(5, 19), slice(19, n)]  # uneven micro-batches, one may be all-masked
    split = sum(sdpg_loss(logp[s], old[s], adv[s], mask[s], kl_teacher=kl[s], ref_logp=ref[s], num_tokens=total,
                          **kw)[0] for s in parts)  # fmt: skip
    (g_split,) = torch.autograd.grad(split, logp)
    assert split.item() == pytest.approx(whole.item(), abs=1e-12)
    assert torch.allclose(g_split, g_whole, atol=1e-14)
    per_mb, _ = sdpg_loss(logp[:4], old[:4], adv[:4], mask[:4], kl_teacher=kl[:4], ref_logp=ref[:4], **kw)
    assert per_mb.item() != pytest.approx(sdpg_loss(logp[:4], old[:4], adv[:4], mask[:4], kl_teacher=kl[:4],
                                                    ref_logp=ref[:4], num_tokens=total, **kw)[0].item())  # fmt: skip


def test_masked_nan_and_inf_do_not_leak_into_loss_or_gradient():
    logp = torch.tensor([-1.0, float("nan"), 800.0, -2.0], requires_grad=True)
    old = torch.tensor([-1.1, float("inf"), -900.0, -2.0])
    ref = torch.tensor([-1.2, float("nan"), float("-inf"), -2.5])
    kl = torch.tensor([0.1, float("nan"), float("inf"), 0.2])
    mask = torch.tensor([True, False, False, True])
    loss, stats = sdpg_loss(logp, old, torch.ones(4), mask, kl_teacher=kl, ref_logp=ref, kl_ref_full=kl,
                            beta=0.1, alpha=0.1, kl_mode="fkl")  # fmt: skip
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.isfinite(loss) and torch.isfinite(g).all() and g[1] == 0 and g[2] == 0
    assert all(math.isfinite(v) for v in stats.values())


def test_all_masked_micro_batch_gives_zero_loss():
    logp = torch.randn(3, requires_grad=True)
    loss, stats = sdpg_loss(logp, logp.detach(), torch.ones(3), torch.zeros(3, dtype=torch.bool), num_tokens=10)
    assert loss.item() == 0.0 and stats["tokens"] == 0
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros(3))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"beta": 0.1}, "needs kl_teacher"),
        ({"mask": torch.ones(3)}, "bool"),
        ({"kl_teacher": torch.zeros(2), "beta": 0.1}, r"kl_teacher has shape"),
        ({"num_tokens": 0}, "num_tokens"),
        ({"ref_logp": torch.zeros(3), "alpha": 0.1, "kl_mode": "bogus"}, "mode must be one of"),
        ({"alpha": -1.0}, ">= 0"),
    ],
)
def test_sdpg_loss_bad_input(kwargs, match):
    args = {"mask": torch.ones(3, dtype=torch.bool)} | kwargs
    mask = args.pop("mask")
    with pytest.raises(ValueError, match=match):
        sdpg_loss(torch.zeros(3), torch.zeros(3), torch.ones(3), mask, **args)


def test_head_and_loss_end_to_end_match_naive():
    """Chunked head + loss gives the same weight gradient as full logits + the same loss."""
    g = torch.Generator().manual_seed(5)
    n, hid, v = 19, 8, 97
    h = torch.randn(n, hid, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(v, hid, generator=g, dtype=torch.float64, requires_grad=True)
    th = h.detach() + 0.3 * torch.randn(n, hid, generator=g, dtype=torch.float64)
    y = torch.randint(0, v, (n,), generator=g)
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    mask = torch.rand(n, generator=g) > 0.2
    old = torch.randn(n, generator=g, dtype=torch.float64) * 0.1 - 4.5
    out = sdpg_head(h, w, y, teacher_hidden=th, chunk_size=4)
    loss, _ = sdpg_loss(out.logp, old, adv, mask, kl_teacher=out.kl_teacher, beta=0.3)
    gw = torch.autograd.grad(loss, w)[0]
    lp = torch.log_softmax(h @ w.t(), -1)
    lq = torch.log_softmax(th @ w.detach().t(), -1)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    loss_ref, _ = sdpg_loss(lp.gather(1, y[:, None]).squeeze(1), old, adv, mask, kl_teacher=kl, beta=0.3)
    assert loss.item() == pytest.approx(loss_ref.item(), rel=1e-12)
    assert torch.allclose(gw, torch.autograd.grad(loss_ref, w)[0], rtol=1e-10, atol=1e-12)
