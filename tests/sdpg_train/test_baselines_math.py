"""The math of the baseline and sibling modes, pinned against small hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from sdpg_train.core.head import sdpg_head
from sdpg_train.methods.distill import chunked_divergence, distill_divergence
from sdpg_train.methods.opsd import opsd_loss
from sdpg_train.methods.ppo import gae, masked_whiten, ppo_loss, ppo_token_rewards
from sdpg_train.methods.rlsd import rlsd_advantages, rlsd_lambda
from sdpg_train.methods.sdpo import sdpo_loss

T, F = True, False


def close(a, b, tol=1e-5):
    a = a.detach() if isinstance(a, torch.Tensor) else a
    b = b.detach() if isinstance(b, torch.Tensor) else b
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol)


def test_gae_hand_computed_with_padding():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [1.0, 1.0, 9.0]])  # 9.0 sits on padding and must be ignored
    mask = torch.tensor([[T, T, T], [T, T, F]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # row 0: δ = [0.1, 0.1, 0.3]; A2 = 0.3, A1 = 0.1 + 0.95·0.3, A0 = 0.1 + 0.95·0.385
    assert close(adv, [[0.46575, 0.385, 0.3], [0.95, 1.0, 0.0]])
    assert close(ret, [[0.96575, 0.985, 1.0], [1.95, 2.0, 0.0]])
    # λ = 1 is the Monte-Carlo return minus the value: A_1 = γ·1 − V_1
    adv1, _ = gae(rewards[:1], values[:1], mask[:1], gamma=0.9, lam=1.0)
    assert close(adv1[0, 1], 0.9 * 1.0 - 0.6) and close(adv1[0, 0], 0.81 - 0.5)
    with pytest.raises(ValueError, match="same"):
        gae(rewards, values[:, :2], mask)


def test_token_rewards_put_score_last_and_kl_penalty_everywhere():
    mask = torch.tensor([[T, T, T], [T, F, F]])
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, 0.0, 0.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, 5.0, 5.0]])
    r, kl = ppo_token_rewards(torch.tensor([1.0, 0.5]), mask, logp, ref, kl_coef=0.1)
    assert close(kl, [[0.5, 0.0, -1.0], [0.0, 0.0, 0.0]])
    assert close(r, [[-0.05, 0.0, 1.1], [0.5, 0.0, 0.0]])
    r0, _ = ppo_token_rewards(torch.tensor([1.0, 0.5]), mask, logp, ref, kl_coef=0.0)
    assert close(r0, [[0, 0, 1.0], [0.5, 0, 0]])


def test_masked_whiten_matches_trl():
    out = masked_whiten(torch.tensor([1.0, 2.0, 3.0, 100.0]), torch.tensor([T, T, T, F]))
    assert close(out, [-1.0, 0.0, 1.0, 0.0], tol=1e-4)


def test_ppo_loss_clipped_policy_and_value_terms():
    old = torch.log(torch.tensor([0.2, 0.4]))
    logp = (old + torch.log(torch.tensor([1.5, 0.5]))).requires_grad_()  # ρ = [1.5, 0.5]
    values = torch.tensor([1.0, 0.4], requires_grad=True)
    loss, stats = ppo_loss(logp, old, torch.tensor([1.0, 1.0]), values, torch.tensor([0.5, 0.5]),
                           torch.tensor([2.0, 0.0]), torch.tensor([T, T]), cliprange=0.2, cliprange_value=0.2,
                           vf_coef=0.1)
    # policy: max(−Aρ, −A clip ρ) = [−1.2, −0.5] -> −0.85; value: ½ max((V−R)², (clipV−R)²) = [0.845, 0.08]
    assert math.isclose(float(loss.detach()), -0.85 + 0.1 * 0.925 / 2, rel_tol=1e-5)
    assert math.isclose(stats["loss/policy"], -0.85, rel_tol=1e-5)
    assert math.isclose(stats["loss/value"], 0.04625, rel_tol=1e-4)
    assert stats["clip_ratio/region"] == 0.5 and stats["value/clipfrac"] == 0.5
    loss.backward()
    assert close(logp.grad, [0.0, -0.25])  # token 0 clipped (ρ > 1 + ε, A > 0): no gradient
    assert close(values.grad, [0.0, 0.1 * 0.4 / 2])  # token 0's value is clipped: no gradient


def test_rlsd_reweights_advantages_by_the_teacher():
    adv = torch.tensor([1.0, -1.0, 1.0])
    old = torch.tensor([-1.0, -1.0, -1.0])
    a_mix, delta = rlsd_advantages(adv, old + torch.tensor([0.1, 0.1, 1.0]), old, lam=0.5, eps_w=0.2)
    # u = exp(sign(A)·Δ) = [e^0.1, e^−0.1, e^1 → clipped 1.2]; A_mix = ½A + ½A·u
    assert close(a_mix, [0.5 + 0.5 * math.exp(0.1), -0.5 - 0.5 * math.exp(-0.1), 1.1])
    assert close(delta, [0.1, 0.1, 1.0])
    assert close(rlsd_advantages(adv, old + 5, old, lam=0.0)[0], adv)  # λ = 0 is GRPO
    assert rlsd_lambda(1, 0.5, 50) == 0.5 and rlsd_lambda(26, 0.5, 50) == 0.25 and rlsd_lambda(60, 0.5, 50) == 0
    assert rlsd_lambda(99, 0.5, 0) == 0.5


def test_divergences_hand_computed():
    zs = torch.tensor([[0.0, 0.0]], requires_grad=True)  # p = [.5, .5]
    zt = torch.tensor([[math.log(3.0), 0.0]])  # q = [.75, .25]
    y = torch.tensor([0])
    rev = distill_divergence(zs, zt, y, alpha=1.0, estimator="full")
    fwd = distill_divergence(zs, zt, y, alpha=0.0, estimator="full")
    jsd = distill_divergence(zs, zt, y, alpha=0.5, estimator="full")
    assert close(rev, [0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)])
    assert close(fwd, [0.75 * math.log(1.5) + 0.25 * math.log(0.5)])
    m = [0.625, 0.375]
    kl_qm = 0.75 * math.log(0.75 / m[0]) + 0.25 * math.log(0.25 / m[1])
    kl_pm = 0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1])
    assert close(jsd, [0.5 * kl_qm + 0.5 * kl_pm])
    # sampled token: value SG(log p − log q)·log p, gradient (log p − log q)(onehot − p)
    smp = distill_divergence(zs, zt, y, alpha=1.0, estimator="sampled")
    assert close(smp, [math.log(0.5 / 0.75) * math.log(0.5)])
    smp.sum().backward()
    assert close(zs.grad, [[math.log(0.5 / 0.75) * 0.5, -math.log(0.5 / 0.75) * 0.5]])
    with pytest.raises(ValueError, match="reverse KL"):
        distill_divergence(zs, zt, y, alpha=0.5, estimator="sampled")


def test_topk_tail_collapses_the_rest_of_the_vocabulary():
    zs = torch.tensor([[math.log(2.0), 0.0, 0.0]])  # p = [.5, .25, .25]
    zt = torch.tensor([[math.log(6.0), 0.0, 0.0]])  # q = [.75, .125, .125]
    top1 = distill_divergence(zs, zt, torch.tensor([1]), alpha=1.0, estimator="topk", topk=1)
    assert close(top1, [0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)])  # over {top-1, tail}
    full = distill_divergence(zs, zt, torch.tensor([1]), alpha=1.0, estimator="full")
    assert close(distill_divergence(zs, zt, torch.tensor([1]), alpha=1.0, estimator="topk", topk=3), full)


def test_sdpo_and_opsd_reductions():
    div = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    old = torch.zeros(3)
    logp = torch.tensor([0.0, math.log(3.0), 0.0])  # ρ = [1, 3, 1] -> weight min(ρ, 2) = [1, 2, 1]
    loss, stats = sdpo_loss(div, logp, old, torch.tensor([T, T, T]), torch.tensor([T, T, F]), is_clip=2.0)
    assert math.isclose(float(loss.detach()), (1 + 4) / 2)  # token mean over the re-prompted samples only
    loss.backward()
    assert close(div.grad, [0.5, 1.0, 0.0])
    assert stats["distill/is_clipped_frac"] == 0.5
    assert math.isclose(stats["distill/gate_open_frac"], 2 / 3, rel_tol=1e-6)
    loss2, _ = opsd_loss(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([T, T, F]))
    assert float(loss2) == 1.5


def test_chunked_full_reverse_kl_matches_the_head():
    torch.manual_seed(0)
    n, h, v = 7, 5, 11
    hs = torch.randn(n, h, dtype=torch.float64, requires_grad=True)
    ht = torch.randn(n, h, dtype=torch.float64)
    w = torch.randn(v, h, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, v, (n,))
    ours = chunked_divergence(hs, w, None, ht, w.detach(), y, chunk=3, alpha=1.0, estimator="full")
    gh, gw = torch.autograd.grad(ours.sum(), (hs, w))
    head = sdpg_head(hs, w, y, teacher_hidden=ht, chunk_size=4).kl_teacher
    gh2, gw2 = torch.autograd.grad(head.sum(), (hs, w))
    assert torch.allclose(ours.double(), head, atol=1e-5)
    assert torch.allclose(gh.double(), gh2, atol=1e-4) and torch.allclose(gw.double(), gw2, atol=1e-4)


def test_every_mode_is_selectable_from_the_cli_and_validated():
    from sdpg_train.config import SDPGConfig

    for loss in ("ppo", "rlsd", "sdpo", "opsd"):
        cfg = SDPGConfig.from_args(["--loss", loss, "--kl_coef", "0.1", "--distill_estimator", "full"])
        assert cfg.loss == loss and cfg.effective_beta_base == 0.0
        assert cfg.needs_teacher == (loss != "ppo") and cfg.needs_ref == (loss == "ppo")
    assert not SDPGConfig(loss="ppo", kl_coef=0.0).needs_ref
    with pytest.raises(ValueError, match="reverse KL"):
        SDPGConfig(loss="sdpo", distill_estimator="sampled", distill_alpha=0.5)
    with pytest.raises(ValueError, match="encoder needs a teacher"):
        SDPGConfig(loss="ppo", teacher_model_kind="encoder")
    with pytest.raises(ValueError, match="gamma"):
        SDPGConfig(loss="ppo", gamma=1.5)
