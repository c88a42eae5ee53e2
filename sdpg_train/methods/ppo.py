"""Pure loss functions of the baseline and sibling modes (``loss: ppo | rlsd | sdpo | opsd``); see docs/methods.md.

Every function works on flat per-token tensors of one micro-batch (N completion tokens, row-major over the
samples) or on padded (B, T) tensors where stated, returns ``(loss, stats)`` like
:func:`sdpg_train.methods.sdpg.sdpg_loss`
(``loss/*`` stats are this call's contributions to the step's value, the others are means over the masked tokens)
and never touches a model. The trainer wires them in ``trainer.compute_loss`` via :mod:`sdpg_train.methods.base`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DIVERGENCE_ESTIMATORS", "gae", "masked_whiten", "ppo_loss", "rlsd_advantages", "rlsd_lambda",
           "distill_divergence", "sdpo_loss", "opsd_loss", "ppo_token_rewards"]

DIVERGENCE_ESTIMATORS = ("full", "topk", "sampled")


def _zero_where_not(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _denominator(mask: Tensor, num_tokens: float | None, name: str) -> float:
    if mask.dtype != torch.bool:
        raise ValueError(f"{name}: mask must be a bool tensor, got {mask.dtype}")
    if num_tokens is not None and not num_tokens > 0:
        raise ValueError(f"{name}: num_tokens must be > 0, got {num_tokens}")
    return max(float(mask.sum() if num_tokens is None else num_tokens), 1.0)


def _means(values: dict[str, Tensor], mask: Tensor) -> dict[str, float]:
    """Masked means of per-token tensors, one host sync."""
    cnt = max(int(mask.sum()), 1)
    keys = list(values)
    stacked = torch.stack([_zero_where_not(v.detach().float(), mask).sum() / cnt for v in values.values()])
    return dict(zip(keys, stacked.tolist()))


# ---------------------------------------------------------------------------- PPO (classic RLHF)
def ppo_token_rewards(scores: Tensor, mask: Tensor, logp: Tensor | None = None, ref_logp: Tensor | None = None,
                      kl_coef: float = 0.0) -> tuple[Tensor, Tensor]:
    """Per-token rewards r_t = −kl_coef·(log π_old − log π_ref)(y_t), plus the verifier score at the last token.

    Args:
        scores: (B,) verifier reward per completion.
        mask: (B, T) bool, True on real completion tokens (each row needs at least one).
        logp, ref_logp: (B, T) rollout-policy and reference log-probs of the sampled tokens (k1 estimate of the
            per-token KL, as TRL's PPO); None or ``kl_coef=0`` disables the penalty.
        kl_coef: weight of the per-token KL penalty.

    Returns:
        ``(rewards (B, T), kl (B, T))``, zero on padding.
    """
    if mask.dim() != 2 or scores.shape != mask.shape[:1]:
        raise ValueError(f"ppo_token_rewards: scores {tuple(scores.shape)} and mask {tuple(mask.shape)} mismatch")
    lengths = mask.sum(1)  # (B,)
    if bool((lengths == 0).any()):
        raise ValueError("ppo_token_rewards: every completion needs at least one token")
    kl = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    if kl_coef and logp is not None and ref_logp is not None:
        kl = _zero_where_not((logp - ref_logp).float(), mask)  # (B, T)
    rewards = -kl_coef * kl
    last = (lengths - 1).clamp_min(0)  # (B,) index of the last real token (right padding)
    rewards[torch.arange(mask.shape[0], device=mask.device), last] += scores.float().to(mask.device)
    return rewards, kl


def gae(rewards_per_token: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over right-padded completion tokens.

    δ_t = r_t + γ·V_{t+1} − V_t (V = 0 after the last real token); A_t = δ_t + γλ·A_{t+1}; returns = A + V.

    Args:
        rewards_per_token: (B, T) rewards (verifier score at the last token, KL penalties elsewhere).
        values: (B, T) value estimates V(s_t) of the state before token t (no grad).
        mask: (B, T) bool, True on real tokens; tokens after the first False of a row are ignored.
        gamma, lam: discount γ and GAE λ.

    Returns:
        ``(advantages (B, T), returns (B, T))`` fp32, zero on padding.
    """
    if not (rewards_per_token.shape == values.shape == mask.shape) or mask.dim() != 2:
        raise ValueError(f"gae: rewards {tuple(rewards_per_token.shape)}, values {tuple(values.shape)} and mask "
                         f"{tuple(mask.shape)} must be the same (B, T)")
    m = mask.float()  # (B, T)
    r, v = rewards_per_token.float() * m, values.detach().float() * m  # (B, T)
    adv = torch.zeros_like(r)
    next_adv = torch.zeros_like(r[:, 0])  # (B,)
    next_v = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1] - 1, -1, -1):
        delta = r[:, t] + gamma * next_v - v[:, t]
        next_adv = (delta + gamma * lam * next_adv) * m[:, t]
        adv[:, t] = next_adv
        next_v = v[:, t]
    return adv, (adv + v) * m


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(x − mean) / std over the masked entries (TRL ``masked_whiten``: unbiased variance); zero elsewhere."""
    n = int(mask.sum())
    if n == 0:
        return torch.zeros_like(x)
    xm = x[mask].float()
    mean, var = xm.mean(), xm.var(unbiased=True) if n > 1 else torch.zeros(())
    out = (x.float() - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return _zero_where_not(out, mask)


def ppo_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, values: Tensor, old_values: Tensor,
             returns: Tensor, mask: Tensor, *, cliprange: float = 0.2, cliprange_value: float = 0.2,
             vf_coef: float = 0.1, num_tokens: float | None = None) -> tuple[Tensor, dict[str, float]]:
    """Clipped PPO surrogate plus the clipped value loss (TRL PPO), summed over masked tokens / ``num_tokens``.

    ℓ^π_t = max(−A_t ρ_t, −A_t clip(ρ_t, 1 − ε, 1 + ε)), ρ = exp(logp − old_logp);
    ℓ^V_t = ½ max((V_t − R_t)², (clip(V_t, V^old_t − ε_v, V^old_t + ε_v) − R_t)²);
    loss = Σ_mask (ℓ^π + vf_coef·ℓ^V) / num_tokens.

    Args:
        logp: (N,) current log-probs (grad to the policy). old_logp: (N,) rollout log-probs.
        advantages, returns: (N,) GAE advantages (already whitened if wanted) and returns = A_raw + V^old.
        values: (N,) current value predictions (grad to the value head). old_values: (N,) rollout values.
        mask: (N,) bool. cliprange, cliprange_value, vf_coef: ε, ε_v and the value-loss weight.
        num_tokens: denominator (the step's global token count); default ``mask.sum()``.
    """
    denom = _denominator(mask, num_tokens, "ppo_loss")
    for name, t in (("old_logp", old_logp), ("advantages", advantages), ("values", values),
                    ("old_values", old_values), ("returns", returns)):
        if t.shape != logp.shape:
            raise ValueError(f"ppo_loss: {name} has shape {tuple(t.shape)}, expected {tuple(logp.shape)}")
    logp, values = _zero_where_not(logp, mask), _zero_where_not(values.float(), mask)
    old_logp, adv = _zero_where_not(old_logp.detach(), mask), _zero_where_not(advantages.detach().float(), mask)
    old_values, ret = _zero_where_not(old_values.detach().float(), mask), _zero_where_not(returns.detach().float(),
                                                                                          mask)
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))  # (N,)
    pg1, pg2 = -adv * ratio, -adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg = torch.maximum(pg1, pg2)  # (N,)
    v_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    vf1, vf2 = (values - ret).square(), (v_clipped - ret).square()
    vf = 0.5 * torch.maximum(vf1, vf2)  # (N,)
    pg_sum, vf_sum = _zero_where_not(pg, mask).sum() / denom, _zero_where_not(vf, mask).sum() / denom
    loss = pg_sum + vf_coef * vf_sum
    with torch.no_grad():
        stats = _means({"clip_ratio/region": (pg2 > pg1).float(), "ratio/mean": ratio,
                        "value/clipfrac": (vf2 > vf1).float(), "value/mean": values, "value/returns": ret,
                        "value/error": (values - ret).square()}, mask)
        stats.update({"loss/policy": float(pg_sum), "loss/value": float(vf_coef * vf_sum),
                      "ratio/max": float(_zero_where_not(ratio, mask).max()) if bool(mask.any()) else 0.0,
                      "tokens": float(mask.sum())})
    return loss, stats


# ---------------------------------------------------------------------------- RLSD
def rlsd_lambda(step: int, lam: float, decay_steps: int) -> float:
    """λ(k) of RLSD: linear decay from ``lam`` at step 1 to 0 at ``decay_steps`` (0 = constant)."""
    if decay_steps <= 0:
        return lam
    return lam * max(0.0, 1.0 - (step - 1) / decay_steps)


def rlsd_advantages(advantages: Tensor, teacher_logp: Tensor, old_logp: Tensor, lam: float = 0.5,
                    eps_w: float = 0.2, clamp: float = 20.0) -> tuple[Tensor, Tensor]:
    """RLSD per-token advantage: the teacher only re-weights A (spec §9).

    Δ_t = SG[log q(y_t) − log π_old(y_t)] clamped to ±clamp; u_t = exp(sign(A)·Δ_t);
    Â_t = A·clip(u_t, 1 − ε_w, 1 + ε_w); A_mix = (1 − λ)·A + λ·Â.

    Args:
        advantages: (N,) per-token GRPO advantages (A_i broadcast). teacher_logp: (N,) log q(y_t | c, x).
        old_logp: (N,) log π_old(y_t | x). lam: λ (mixing weight). eps_w: ε_w.

    Returns:
        ``(A_mix (N,), Δ (N,))``, both without grad.
    """
    delta = torch.clamp(teacher_logp.detach().float() - old_logp.detach().float(), -clamp, clamp)  # (N,)
    a = advantages.detach().float()
    u = torch.exp(torch.sign(a) * delta)
    a_hat = a * torch.clamp(u, 1.0 - eps_w, 1.0 + eps_w)
    return (1.0 - lam) * a + lam * a_hat, delta


# ---------------------------------------------------------------------------- distillation (SDPO, OPSD)
def _jsd(logp: Tensor, logq: Tensor, alpha: float) -> Tensor:
    """Per-row generalised JSD over the last dim (TRL GKD convention): 0 → KL(q‖p), 1 → KL(p‖q).

    m = (1 − α)·p + α·q; D = α·KL(q‖m) + (1 − α)·KL(p‖m). ``logp``: student log-probs (grad), ``logq``: teacher.
    """
    kl = lambda a, b: (a.exp() * (a - b)).sum(-1)  # noqa: E731  KL(exp a ‖ exp b)
    if alpha == 0.0:
        return kl(logq, logp)
    if alpha == 1.0:
        return kl(logp, logq)
    logm = torch.logsumexp(torch.stack([logp + math.log(1.0 - alpha), logq + math.log(alpha)]), dim=0)
    return alpha * kl(logq, logm) + (1.0 - alpha) * kl(logp, logm)


def _topk_tail(logp: Tensor, logq: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Restrict both (c, V) log-distributions to the student's top-k tokens plus one tail bucket -> (c, k+1)."""
    idx = logp.detach().topk(min(k, logp.shape[-1]), dim=-1).indices  # (c, k)
    lp, lq = logp.gather(-1, idx), logq.gather(-1, idx)  # (c, k)
    tail = lambda x: torch.log1p(-x.exp().sum(-1).clamp(max=1.0 - 1e-6))  # noqa: E731  log(1 − Σ top-k)
    return torch.cat([lp, tail(lp)[:, None]], -1), torch.cat([lq, tail(lq)[:, None]], -1)


def distill_divergence(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor, *, alpha: float = 0.5,
                       estimator: str = "full", topk: int = 100, temperature: float = 1.0) -> Tensor:
    """Per-token divergence D(p_t, SG q_t) between the student and the (detached) teacher distributions.

    Args:
        student_logits: (c, V) student logits (grad). teacher_logits: (c, V) teacher logits (no grad).
        targets: (c,) sampled token ids (used by the ``sampled`` estimator).
        alpha: generalised-JSD weight: 0 = forward KL(q‖p), 1 = reverse KL(p‖q), in between JSD.
        estimator: ``full`` (whole vocabulary), ``topk`` (student top-k tokens + a tail bucket), ``sampled``
            (the sampled token only: SG(log p − log q)·log p(y_t), whose gradient is the on-policy single-sample
            estimate of ∇KL(p‖q); reverse KL only, so ``alpha`` must be 1).
        topk: k of the ``topk`` estimator. temperature: divides both logits.

    Returns:
        (c,) per-token values (for ``sampled`` a surrogate whose value is SG(log p − log q)·log p).
    """
    if estimator not in DIVERGENCE_ESTIMATORS:
        raise ValueError(f"distill_divergence: estimator must be one of {DIVERGENCE_ESTIMATORS}, got {estimator!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distill_divergence: alpha must be in [0, 1], got {alpha}")
    logp = F.log_softmax(student_logits.float() / temperature, -1)  # (c, V)
    logq = F.log_softmax(teacher_logits.detach().float() / temperature, -1)  # (c, V)
    if estimator == "sampled":
        if alpha != 1.0:
            raise ValueError("distill_divergence: the sampled-token estimator only estimates reverse KL (alpha=1)")
        lp, lq = logp.gather(-1, targets[:, None]).squeeze(1), logq.gather(-1, targets[:, None]).squeeze(1)
        return (lp - lq).detach() * lp
    if estimator == "topk":
        logp, logq = _topk_tail(logp, logq, topk)
    return _jsd(logp, logq, alpha)


def sdpo_loss(divergence: Tensor, logp: Tensor, old_logp: Tensor, mask: Tensor, distilled: Tensor, *,
              is_clip: float = 2.0, num_tokens: float | None = None) -> tuple[Tensor, dict[str, float]]:
    """SDPO: distillation replaces the policy gradient; token mean over re-prompted samples only.

    ℓ_t = SG(min(ρ_t, is_clip))·D_t on tokens of samples that got a teacher context, ρ = π_θ/π_old.

    Args:
        divergence: (N,) per-token D(p_t, SG q_t) (grad), e.g. from :func:`distill_divergence`.
        logp, old_logp: (N,) current and rollout log-probs (for the importance weight).
        mask: (N,) bool real tokens. distilled: (N,) bool, tokens of samples with a teacher context.
        is_clip: upper clip of the (detached) importance weight. num_tokens: the step's count of distilled tokens.
    """
    keep = mask & distilled
    denom = _denominator(keep, num_tokens, "sdpo_loss")
    ratio = torch.exp(torch.clamp(logp.detach() - old_logp.detach(), -20.0, 20.0))  # (N,)
    weight = torch.clamp(ratio, max=is_clip)
    per_tok = _zero_where_not(weight * _zero_where_not(divergence, keep), keep)
    loss = per_tok.sum() / denom
    with torch.no_grad():
        stats = _means({"distill/divergence": divergence, "ratio/mean": ratio,
                        "distill/is_clipped_frac": (ratio > is_clip).float()}, keep)
        stats.update({"loss/distill_kl": float(loss), "loss/policy": 0.0,
                      "distill/gate_open_frac": float(keep.float().sum() / max(int(mask.sum()), 1)),
                      "tokens": float(mask.sum())})
    return loss, stats


def opsd_loss(divergence: Tensor, mask: Tensor, *, num_tokens: float | None = None
              ) -> tuple[Tensor, dict[str, float]]:
    """OPSD: on-policy distillation from the reference-conditioned teacher on every token, no reward.

    loss = Σ_mask D_t / num_tokens.
    """
    denom = _denominator(mask, num_tokens, "opsd_loss")
    loss = _zero_where_not(divergence, mask).sum() / denom
    with torch.no_grad():
        stats = _means({"distill/divergence": divergence}, mask)
        stats.update({"loss/distill_kl": float(loss), "loss/policy": 0.0, "tokens": float(mask.sum())})
    return loss, stats
