"""SDPO: self-distillation replaces the policy gradient: on samples that got a privileged context (by default a
successful sibling, else the verifier feedback), minimise the divergence to the teacher, weighted by the clipped
importance ratio π_θ/π_old; token mean over the distilled tokens only.

Needs: a teacher view every step (:class:`~sdpg_train.methods.distill.DistillMethod`); no reference model, no
value head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sdpg_train.core.model_io import MicroBatch
from sdpg_train.methods.base import masked_means, token_denominator, zero_where_not
from sdpg_train.methods.distill import DistillMethod

if TYPE_CHECKING:
    from sdpg_train.config import SDPGConfig

__all__ = ["SDPO", "sdpo_loss"]


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
    denom = token_denominator(keep, num_tokens, "sdpo_loss")
    ratio = torch.exp(torch.clamp(logp.detach() - old_logp.detach(), -20.0, 20.0))  # (N,)
    weight = torch.clamp(ratio, max=is_clip)
    per_tok = zero_where_not(weight * zero_where_not(divergence, keep), keep)
    loss = per_tok.sum() / denom
    with torch.no_grad():
        stats = masked_means({"distill/divergence": divergence, "ratio/mean": ratio,
                        "distill/is_clipped_frac": (ratio > is_clip).float()}, keep)
        stats.update({"loss/distill_kl": float(loss), "loss/policy": 0.0,
                      "distill/gate_open_frac": float(keep.float().sum() / max(int(mask.sum()), 1)),
                      "tokens": float(mask.sum())})
    return loss, stats




class SDPO(DistillMethod):
    """SDPO (see the module docstring)."""

    @classmethod
    def compute_loss(cls, cfg: SDPGConfig, out: Any, mb: MicroBatch, beta: float, num_tokens: float,
                     **extra: Any) -> tuple[Tensor, dict[str, float]]:
        old_logp = out.logp.detach() if mb.old_logp is None else mb.old_logp
        return sdpo_loss(extra["divergence"], out.logp, old_logp, mb.mask, mb.extra["distilled"],
                         is_clip=cfg.distill_is_clip, num_tokens=mb.extra["distill_tokens"])
