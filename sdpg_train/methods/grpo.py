"""GRPO: the SDPG loss with β = 0: group-relative advantages, PPO dual-clip, and the α·reference term when
α > 0 (``alpha=0`` for plain GRPO). No teacher, no value head."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sdpg_train.methods.sdpg import SDPG

if TYPE_CHECKING:
    from sdpg_train.config import SDPGConfig

__all__ = ["GRPO"]


class GRPO(SDPG):
    """SDPG without the distillation term (its loss, :meth:`SDPG.compute_loss`, with β = 0)."""

    @classmethod
    def beta_base(cls, cfg: SDPGConfig) -> float:
        return 0.0
