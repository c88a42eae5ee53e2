"""The PPO value head: a scalar linear head on the policy's final hidden state (TRL ``ValueHead`` style).

V(s_t) = w·h_t + b, where h_t is the final hidden state at the position that predicts completion token t (the
same rows :class:`sdpg_train.core.model_io.CompletionModel` returns). The head runs in fp32 whatever the model dtype
and is saved with checkpoints as ``value_head.safetensors``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ValueHead"]


class ValueHead(nn.Module):
    """Scalar value per completion token from (Ntok, H) hidden states.

    Args:
        hidden_size: H of the policy's final hidden states.
        detach_trunk: when True the value loss trains only this head (the hidden states are detached); when
            False (TRL's ``AutoModelForCausalLMWithValueHead``) its gradient also reaches the shared trunk.
    """

    def __init__(self, hidden_size: int, detach_trunk: bool = False) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"ValueHead: hidden_size must be >= 1, got {hidden_size}")
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.summary.weight, std=1.0 / hidden_size**0.5)
        nn.init.zeros_(self.summary.bias)
        self.detach_trunk = detach_trunk

    def forward(self, hidden: Tensor) -> Tensor:
        """(Ntok, H) hidden states -> (Ntok,) fp32 values."""
        h = hidden.detach() if self.detach_trunk else hidden
        return self.summary(h.float()).squeeze(-1)  # (Ntok,)

    @classmethod
    def for_model(cls, lm: nn.Module, detach_trunk: bool = False) -> ValueHead:
        """A head sized for ``lm`` (reads ``config.hidden_size``), on the model's device."""
        size = getattr(getattr(lm, "config", None), "hidden_size", None)
        if size is None:
            size = lm.get_output_embeddings().weight.shape[1]
        device = next(lm.parameters()).device
        return cls(int(size), detach_trunk=detach_trunk).to(device)


@torch.no_grad()
def values_of(head: ValueHead, hidden: Tensor) -> Tensor:
    """No-grad values (rollout pass)."""
    return head(hidden).detach()
