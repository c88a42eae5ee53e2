"""PPO (classic RLHF): a value head on the final hidden state, GAE over completion tokens, the clipped surrogate
plus a clipped value loss, and a per-token KL-to-reference penalty in the reward (TRL's PPO).

Needs: a value head (trained with the policy, saved with checkpoints), a frozen reference model when
``kl_coef > 0``; no teacher. The loss math is pure (tensors in, ``(loss, stats)`` out), pinned by
``tests/sdpg_train/test_baselines_math.py``; :class:`PPO` wires it into the trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sdpg_train.core.head import sdpg_head
from sdpg_train.core.model_io import MicroBatch, sampled_logprobs
from sdpg_train.methods.base import (
    Method,
    all_micro_batches,
    masked_means,
    pad_tokens,
    token_denominator,
    zero_where_not,
)

if TYPE_CHECKING:
    from sdpg_train.config import SDPGConfig

__all__ = ["PPO", "gae", "masked_whiten", "ppo_loss", "ppo_token_rewards"]


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
        kl = zero_where_not((logp - ref_logp).float(), mask)  # (B, T)
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
    return zero_where_not(out, mask)


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
    denom = token_denominator(mask, num_tokens, "ppo_loss")
    for name, t in (("old_logp", old_logp), ("advantages", advantages), ("values", values),
                    ("old_values", old_values), ("returns", returns)):
        if t.shape != logp.shape:
            raise ValueError(f"ppo_loss: {name} has shape {tuple(t.shape)}, expected {tuple(logp.shape)}")
    logp, values = zero_where_not(logp, mask), zero_where_not(values.float(), mask)
    old_logp, adv = zero_where_not(old_logp.detach(), mask), zero_where_not(advantages.detach().float(), mask)
    old_values, ret = zero_where_not(old_values.detach().float(), mask), zero_where_not(returns.detach().float(),
                                                                                          mask)
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))  # (N,)
    pg1, pg2 = -adv * ratio, -adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg = torch.maximum(pg1, pg2)  # (N,)
    v_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    vf1, vf2 = (values - ret).square(), (v_clipped - ret).square()
    vf = 0.5 * torch.maximum(vf1, vf2)  # (N,)
    pg_sum, vf_sum = zero_where_not(pg, mask).sum() / denom, zero_where_not(vf, mask).sum() / denom
    loss = pg_sum + vf_coef * vf_sum
    with torch.no_grad():
        stats = masked_means({"clip_ratio/region": (pg2 > pg1).float(), "ratio/mean": ratio,
                        "value/clipfrac": (vf2 > vf1).float(), "value/mean": values, "value/returns": ret,
                        "value/error": (values - ret).square()}, mask)
        stats.update({"loss/policy": float(pg_sum), "loss/value": float(vf_coef * vf_sum),
                      "ratio/max": float(zero_where_not(ratio, mask).max()) if bool(mask.any()) else 0.0,
                      "tokens": float(mask.sum())})
    return loss, stats




class PPO(Method):
    """Classic RLHF PPO: value head on the final hidden state, GAE, KL-to-reference penalty in the reward."""

    supports_multiturn = False
    multiturn_refusal = ("its value head and GAE run within one completion, so they cannot carry an episode's "
                         "reward back across turns")

    @classmethod
    def needs_ref(cls, cfg: SDPGConfig) -> bool:
        return cfg.kl_coef > 0

    @classmethod
    def needs_value_head(cls, cfg: SDPGConfig) -> bool:
        return True

    @classmethod
    def compute_loss(cls, cfg: SDPGConfig, out: Any, mb: MicroBatch, beta: float, num_tokens: float,
                     **extra: Any) -> tuple[Tensor, dict[str, float]]:
        old_logp = out.logp.detach() if mb.old_logp is None else mb.old_logp
        return ppo_loss(out.logp, old_logp, mb.advantages, extra["values"], mb.extra["old_values"],
                        mb.extra["returns"], mb.mask, cliprange=cfg.cliprange, cliprange_value=cfg.cliprange_value,
                        vf_coef=cfg.vf_coef, num_tokens=num_tokens)

    @torch.no_grad()
    def prepare(self, batch: Any, tview: Any, minis: list[list[MicroBatch]], step: int) -> dict[str, float]:
        t, a = self.trainer, self.args
        kw = t._head_kw
        raw, kls, penalties = [], [], []
        for mb in all_micro_batches(minis):
            h = t.policy(**mb.student.inputs())  # (Ntok, H) rollout-policy hidden states
            mb.old_logp = sdpg_head(h, t.policy.lm_head_weight, mb.student.targets, lm_bias=t.policy.lm_head_bias,
                                    **kw).logp
            values = self.value_head(h)  # (Ntok,)
            if t.ref is not None and mb.ref_logp is None:
                mb.ref_logp = sampled_logprobs(t.ref, mb.student, **kw).logp
            tm = mb.student.token_mask  # (n, T)
            scores = batch.rewards[mb.index].to(tm.device)  # (n,)
            ref = None if mb.ref_logp is None else pad_tokens(mb.ref_logp, tm)
            rewards, kl = ppo_token_rewards(scores, tm, pad_tokens(mb.old_logp, tm), ref, a.kl_coef)  # (n, T)
            adv, ret = gae(rewards, pad_tokens(values, tm), tm, a.gamma, a.lam)  # (n, T)
            mb.extra.update(old_values=values, returns=ret[tm])
            raw.append(adv[tm])
            kls.append(kl[tm])
            penalties.append((-a.kl_coef * kl).sum(1))  # (n,) summed per completion
        flat = torch.cat(raw)  # (Ntok_step,)
        white = masked_whiten(flat, torch.ones_like(flat, dtype=torch.bool)) if a.whiten_advantages else flat
        start = 0
        for mb in all_micro_batches(minis):
            mb.advantages = white[start : start + mb.num_tokens]
            start += mb.num_tokens
        k1 = torch.cat(kls)
        stats = torch.stack([flat.mean(), flat.std() if flat.numel() > 1 else flat.new_zeros(()), flat.min(),
                             flat.max(), (torch.exp(-k1) - 1 + k1).mean(), k1.mean(),
                             torch.cat(penalties).mean()]).tolist()
        keys = ("advantages/mean", "advantages/std", "advantages/min", "advantages/max")
        out = dict(zip(keys, stats[:4]))
        if t.ref is not None:
            out.update({"kl": stats[4], "ref/log_ratio": stats[5], "ppo/non_score_reward": stats[6]})
        return out

    def loss_inputs(self, mb: MicroBatch, out: Any, h_student: Tensor, h_teacher: Tensor | None) -> dict[str, Any]:
        return {"values": self.value_head(h_student)}  # (Ntok,) with grad to the head (and trunk unless detached)


