"""OPSD: on-policy distillation from the reference-conditioned teacher on every token of samples that have a
context, no reward: loss = Σ D_t / num_tokens.

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

__all__ = ["OPSD", "opsd_loss"]


def opsd_loss(divergence: Tensor, mask: Tensor, *, num_tokens: float | None = None
              ) -> tuple[Tensor, dict[str, float]]:
    """OPSD: on-policy distillation from the reference-conditioned teacher on every token, no reward.

    loss = Σ_mask D_t / num_tokens.
    """
    denom = token_denominator(mask, num_tokens, "opsd_loss")
    loss = zero_where_not(divergence, mask).sum() / denom
    with torch.no_grad():
        stats = masked_means({"distill/divergence": divergence}, mask)
        stats.update({"loss/distill_kl": float(loss), "loss/policy": 0.0, "tokens": float(mask.sum())})
    return loss, stats



class OPSD(DistillMethod):
    """OPSD (see the module docstring)."""

    @classmethod
    def compute_loss(cls, cfg: SDPGConfig, out: Any, mb: MicroBatch, beta: float, num_tokens: float,
                     **extra: Any) -> tuple[Tensor, dict[str, float]]:
        return opsd_loss(extra["divergence"], mb.mask & mb.extra["distilled"], num_tokens=num_tokens)
