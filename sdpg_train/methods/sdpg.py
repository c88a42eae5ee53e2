"""SDPG: the method (:class:`SDPG`) and its per-token loss as pure functions: tensors in, ``(loss, stats)`` out
(spec §3.2-3.6, §11).

All per-token tensors are flattened over the micro-batch: (N,) with N = number of completion positions, plus
a boolean ``mask`` (N,) that is False on padding and tool tokens. For one token t of completion i:

    ℓ_t = ℓ^pg_t + β(k) · g_i · min(KL_t, clamp) + α · f_mode(log w_t) [+ α · KL_ref_full_t]

* ℓ^pg: dual-clip PPO surrogate (:func:`policy_loss_dual_clip`);
* KL_t = KL(p_t || SG q_t) over the full vocabulary (from :func:`sdpg_train.core.head.sdpg_head`), g_i = 1[A_i > 0]
  when gating is on;
* log w_t = log π_θ(y_t) − log π_ref(y_t), f_mode one of :data:`REF_KL_MODES` (:func:`ref_kl_surrogate`);
* loss = Σ_{masked t} ℓ_t / num_tokens, num_tokens = the global count of completion tokens in the optimizer
  step (all micro-batches and accumulation steps), so the gradient does not depend on how tokens are split.

GRPO is this loss with ``beta=0`` (and usually ``alpha=0``): :mod:`sdpg_train.methods.grpo`.

Needs: a teacher view while β > 0 (the teacher is the policy itself, or an EMA/base copy), a frozen reference
model when α > 0, no value head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sdpg_train.methods.base import Method

if TYPE_CHECKING:
    from sdpg_train.config import SDPGConfig
    from sdpg_train.core.model_io import MicroBatch

__all__ = ["REF_KL_MODES", "SDPG", "beta_schedule", "policy_loss_dual_clip", "ref_kl_surrogate", "sdpg_loss"]

REF_KL_MODES = ("fkl", "rkl", "ufkl", "urkl", "k1", "k3")


def beta_schedule(step: int, base: float, warmup_steps: int, decay_steps: int, total_steps: int) -> float:
    """β(k) = base · min(1, k / T_warm) · min(1, (T − k) / T_decay), k 1-based (spec §3.3).

    Written as the reference code does (`_compute_effective_beta`): the warm-up factor applies only while
    ``k < warmup_steps`` and the decay factor only when ``k >= T - decay_steps`` (floored at 0); a zero
    ``warmup_steps``/``decay_steps`` disables that side. With the paper's (1e-3, 50, 350, 400):
    β(1) = 2e-5, β(50) = 1e-3, β(400) = 0.

    Example:
        >>> beta_schedule(1, 1e-3, 50, 350, 400), beta_schedule(50, 1e-3, 50, 350, 400)
        (2e-05, 0.001)
    """
    if step < 1:
        raise ValueError(f"beta_schedule: step is 1-based, got {step}")
    if warmup_steps < 0 or decay_steps < 0 or total_steps < 0:
        raise ValueError("beta_schedule: warmup_steps, decay_steps and total_steps must be >= 0")
    warm = step / warmup_steps if warmup_steps > 0 and step < warmup_steps else 1.0
    decay = 1.0
    if decay_steps > 0 and total_steps > 0 and step >= total_steps - decay_steps:
        decay = max(total_steps - step, 0) / decay_steps
    return base * warm * decay


def policy_loss_dual_clip(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, clip_low: float, clip_high: float, dual_clip_c: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """Dual-clip PPO surrogate per token (spec §3.2; DAPO clip-higher when ``clip_high > clip_low``).

    ρ = exp(clamp(logp − old_logp, −20, 20)); u = max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high));
    ℓ = min(u, −A·c) where A < 0, else u.

    Args:
        logp: (N,) log π_θ(y_t), differentiable.
        old_logp: (N,) log π_old(y_t) of the rollout policy (no grad).
        advantages: (N,) A_i broadcast to the tokens of completion i.
        clip_low, clip_high: ε_low, ε_high.
        dual_clip_c: c > 1; bounds the loss of negative-advantage tokens whose ratio exploded.

    Returns:
        ``(per_token_loss (N,), stats)`` with per-token (N,) tensors in ``stats`` (reduce them with your mask):
        ``ratio``, ``clipped_low`` (ρ < 1 − ε_low and A < 0), ``clipped_high`` (ρ > 1 + ε_high and A > 0),
        ``clipped_dual`` (A < 0 and the dual bound is active) — every flagged token has zero gradient.
    """
    if dual_clip_c <= 1.0:
        raise ValueError(f"policy_loss_dual_clip: dual_clip_c must be > 1, got {dual_clip_c}")
    old_logp, advantages = old_logp.detach(), advantages.detach()
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))  # (N,)
    u1 = -advantages * ratio
    u2 = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    u = torch.maximum(u1, u2)
    bound = -advantages * dual_clip_c
    negative = advantages < 0
    loss = torch.where(negative, torch.minimum(u, bound), u)  # (N,)
    with torch.no_grad():
        stats = {
            "ratio": ratio.detach(),
            "clipped_low": (ratio < 1.0 - clip_low) & negative,
            "clipped_high": (ratio > 1.0 + clip_high) & (advantages > 0),
            "clipped_dual": negative & (u > bound),
        }
    return loss, stats


def ref_kl_surrogate(logp: Tensor, ref_logp: Tensor, mode: str, clamp: float | None = 20.0) -> Tensor:
    """Per-token reference-KL term f(log w), log w = logp − ref_logp (spec §3.4; k1/k3 are ours).

    | mode   | f(log w)              | d f / d logp        |
    |--------|-----------------------|---------------------|
    | `fkl`  | w⁻¹                   | −w⁻¹                |
    | `rkl`  | ½ (log w + 1)²        | log w + 1           |
    | `ufkl` | w⁻¹ + log w           | 1 − w⁻¹             |
    | `urkl` | ½ (log w)²            | log w               |
    | `k1`   | log w                 | 1                   |
    | `k3`   | w⁻¹ − 1 + log w       | 1 − w⁻¹             |

    ``k1`` and ``k3`` are the sampled-token KL(π_θ‖π_ref) *estimators* (Schulman's k1/k3; TRL GRPO's ``beta``
    term is k3). As losses: k3 has the same gradient as ``ufkl`` (it differs by the constant 1 and is ≥ 0, so
    its value reads as a KL estimate); k1's expected gradient on on-policy samples is 0 (E[∇ log π] = 0), so use
    it for logging or as a reward penalty, not as a loss.

    Args:
        logp: (N,) log π_θ(y_t), differentiable.
        ref_logp: (N,) log π_ref(y_t) (no grad).
        mode: one of :data:`REF_KL_MODES`.
        clamp: log w is clamped to [−clamp, clamp] first (zero gradient outside), guarding exp(−log w) against
            tokens whose probability collapsed (spec §10 pitfall 10; the reference code does not clamp).
            ``None`` disables it.

    Returns:
        (N,) per-token values (not multiplied by α).
    """
    if mode not in REF_KL_MODES:
        raise ValueError(f"ref_kl_surrogate: mode must be one of {REF_KL_MODES}, got {mode!r}")
    log_w = logp - ref_logp.detach()  # (N,)
    if clamp is not None:
        log_w = torch.clamp(log_w, -clamp, clamp)
    if mode == "urkl":
        return 0.5 * log_w.square()
    if mode == "rkl":
        return 0.5 * (log_w + 1.0).square()
    if mode == "k1":
        return log_w
    inv_w = torch.exp(-log_w)
    if mode == "fkl":
        return inv_w
    if mode == "ufkl":
        return inv_w + log_w
    return inv_w - 1.0 + log_w  # k3


def _masked(x: Tensor | None, mask: Tensor, name: str, n: int) -> Tensor | None:
    """x with masked-out positions replaced by 0 *before* any math, so NaN/inf there cannot leak (pitfall 7)."""
    if x is None:
        return None
    if tuple(x.shape) != (n,):
        raise ValueError(f"sdpg_loss: {name} has shape {tuple(x.shape)}, expected ({n},) like mask")
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def sdpg_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    kl_teacher: Tensor | None = None,
    ref_logp: Tensor | None = None,
    kl_ref_full: Tensor | None = None,
    beta: float = 0.0,
    alpha: float = 0.0,
    kl_mode: str = "urkl",
    gate_positive: bool = True,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip_c: float = 10.0,
    kl_clamp: float = 20.0,
    log_ratio_clamp: float | None = 20.0,
    num_tokens: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The SDPG loss of one micro-batch (GRPO with ``beta=0``); see the module docstring for the formula.

    Args:
        logp: (N,) log π_θ(y_t) of the sampled tokens (``HeadOutput.logp``), differentiable.
        old_logp: (N,) log π_old(y_t) from the rollout policy, same code path (pitfall 4).
        advantages: (N,) A_i broadcast over the tokens of completion i.
        mask: (N,) bool, True on completion tokens that count.
        kl_teacher: (N,) KL(p‖SG q) (``HeadOutput.kl_teacher``); required when ``beta > 0``.
        ref_logp: (N,) log π_ref(y_t); enables the sampled-token reference term α·f_mode(log w).
        kl_ref_full: (N,) exact full-vocabulary KL(p‖π_ref) (``HeadOutput.kl_ref``); adds α·KL_ref_full. Pass
            either this or ``ref_logp`` (both are added when both are given).
        beta: β(k) for this step (see :func:`beta_schedule`).
        alpha: reference-KL weight α.
        kl_mode: reference surrogate, one of :data:`REF_KL_MODES`.
        gate_positive: distil only completions with A > 0 (paper Eq. 3.5); gated tokens stay in the denominator.
        clip_low, clip_high, dual_clip_c: PPO clipping (ε_low, ε_high, c).
        kl_clamp: upper clamp of the distillation KL_t.
        log_ratio_clamp: |log w| clamp of the reference term (:func:`ref_kl_surrogate`); None disables it.
        num_tokens: denominator: the number of completion tokens in the whole optimizer step (all micro-batches
            and accumulation steps, all ranks if you average there). Default: ``mask.sum()`` of this call.

    Returns:
        ``(loss, stats)``: scalar loss = Σ_{mask} ℓ_t / num_tokens. ``loss/*`` stats are this call's
        contributions (they add up across micro-batches to the step's value); the others are means over this
        call's masked tokens (``tokens`` gives the count, to weight them when averaging micro-batches).
    """
    n = mask.shape[0] if mask.dim() == 1 else -1
    if mask.dim() != 1 or mask.dtype != torch.bool:
        raise ValueError(f"sdpg_loss: mask must be a 1-D bool tensor, got {mask.dtype} of shape {tuple(mask.shape)}")
    if beta > 0 and kl_teacher is None:
        raise ValueError("sdpg_loss: beta > 0 needs kl_teacher (HeadOutput.kl_teacher)")
    if beta < 0 or alpha < 0:
        raise ValueError(f"sdpg_loss: beta and alpha must be >= 0, got {beta}, {alpha}")
    count = int(mask.sum())
    denom = float(count if num_tokens is None else num_tokens)
    if num_tokens is not None and not denom > 0:
        raise ValueError(f"sdpg_loss: num_tokens must be > 0, got {num_tokens}")
    denom = max(denom, 1.0)
    logp, old_logp, adv = (_masked(x, mask, k, n) for x, k in ((logp, "logp"), (old_logp, "old_logp"),
                                                                (advantages, "advantages")))  # fmt: skip
    kl_teacher = _masked(kl_teacher, mask, "kl_teacher", n)
    ref_logp = _masked(ref_logp, mask, "ref_logp", n)
    kl_ref_full = _masked(kl_ref_full, mask, "kl_ref_full", n)

    pg, clip = policy_loss_dual_clip(logp, old_logp, adv, clip_low, clip_high, dual_clip_c)  # (N,)
    zero = torch.zeros_like(pg)
    gate = (adv > 0) if gate_positive else mask  # (N,) bool
    distill = zero
    if kl_teacher is not None and beta > 0:
        distill = beta * torch.where(gate, torch.clamp(kl_teacher, max=kl_clamp), zero)
    ref_term = zero
    if ref_logp is not None and alpha > 0:
        ref_term = alpha * ref_kl_surrogate(logp, ref_logp, kl_mode, clamp=log_ratio_clamp)
    if kl_ref_full is not None and alpha > 0:
        ref_term = ref_term + alpha * kl_ref_full
    per_token = torch.where(mask, pg + distill + ref_term, zero)  # (N,)
    loss = per_token.sum() / denom
    with torch.no_grad():
        stats = _stats(mask, count, denom, pg, distill, ref_term, clip, gate, kl_teacher, kl_clamp, logp,
                       ref_logp, kl_ref_full)  # fmt: skip
    stats.update(beta=float(beta), alpha=float(alpha))
    return loss, stats


def _stats(mask, count, denom, pg, distill, ref_term, clip, gate, kl_teacher, kl_clamp, logp, ref_logp, kl_full):
    """Reduce per-token quantities to floats with one host sync."""
    m = mask.float()  # (N,)
    cnt = max(count, 1)
    mean = lambda x: torch.where(mask, x.float(), torch.zeros_like(m)).sum() / cnt  # noqa: E731
    values = {
        "loss/policy": torch.where(mask, pg, torch.zeros_like(pg)).sum() / denom,
        "loss/distill_kl": torch.where(mask, distill, torch.zeros_like(pg)).sum() / denom,
        "loss/ref_kl": torch.where(mask, ref_term, torch.zeros_like(pg)).sum() / denom,
        "clip_ratio/low": mean(clip["clipped_low"]),
        "clip_ratio/high": mean(clip["clipped_high"]),
        "clip_ratio/dual": mean(clip["clipped_dual"]),
        "clip_ratio/region": mean(clip["clipped_low"] | clip["clipped_high"] | clip["clipped_dual"]),
        "ratio/mean": mean(clip["ratio"]),
        "ratio/max": torch.where(mask, clip["ratio"], torch.zeros_like(m)).max() if count else m.sum(),
        "distill/gate_open_frac": mean(gate & mask),
    }
    if kl_teacher is not None:
        values["distill/kl"] = mean(kl_teacher)
        values["distill/kl_max"] = torch.where(mask, kl_teacher, torch.zeros_like(m)).max() if count else m.sum()
        values["distill/kl_clamped_frac"] = mean(kl_teacher > kl_clamp)
    if ref_logp is not None:
        values["ref/log_ratio"] = mean(logp - ref_logp)
        d = torch.clamp(ref_logp - logp, -20.0, 20.0)
        values["kl"] = mean(torch.exp(d) - 1.0 - d)  # k3 estimate of KL(π_θ‖π_ref), TRL's `kl`
    if kl_full is not None:
        values["ref/kl_full"] = mean(kl_full)
    keys = list(values)
    floats = torch.stack([v.float().reshape(()) for v in values.values()]).tolist()
    out = dict(zip(keys, floats))
    out["tokens"] = float(count)
    return out


class SDPG(Method):
    """SDPG: PPO dual-clip + β(k)·KL(student‖SG teacher) over the full vocabulary + α·reference term."""

    token_separable = True

    @classmethod
    def beta_base(cls, cfg: SDPGConfig) -> float:
        return cfg.beta

    @classmethod
    def needs_ref(cls, cfg: SDPGConfig) -> bool:
        return cfg.alpha > 0

    def zero_gradient_samples(self, adv: Tensor, beta: float) -> Tensor | None:
        """A = 0 zeroes the policy term (and its gradient) exactly; with α = 0 and the distillation term off for
        the sample (β(k) = 0, or gated out: A > 0 fails), nothing of its loss depends on the parameters."""
        a = self.args
        if a.alpha > 0 or (beta > 0 and not a.gate_positive) or self.encoder is not None:
            return None
        return adv == 0

    @classmethod
    def compute_loss(cls, cfg: SDPGConfig, out: Any, mb: MicroBatch, beta: float, num_tokens: float,
                     **extra: Any) -> tuple[Tensor, dict[str, float]]:
        old_logp = out.logp.detach() if mb.old_logp is None else mb.old_logp
        kl_teacher = out.kl_teacher
        if kl_teacher is None and beta > 0:  # no sample of this micro-batch passed the gate: nothing to distil
            kl_teacher = torch.zeros_like(out.logp)
        return sdpg_loss(
            out.logp, old_logp, mb.advantages, mb.mask, kl_teacher=kl_teacher,
            ref_logp=None if cfg.full_ref_kl else mb.ref_logp, kl_ref_full=out.kl_ref, beta=beta,
            alpha=cfg.alpha, kl_mode=cfg.kl_mode, gate_positive=cfg.gate_positive, clip_low=cfg.clip_low,
            clip_high=cfg.clip_high, dual_clip_c=cfg.dual_clip_c, kl_clamp=cfg.kl_clamp,
            log_ratio_clamp=cfg.log_ratio_clamp, num_tokens=num_tokens,
        )
