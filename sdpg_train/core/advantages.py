"""Group-relative advantages (GRPO / SDPG outcome term, spec §3.1).

Rewards arrive flattened and group-contiguous: ``rewards[b * G + g]`` is completion g of prompt b. Each
completion's advantage is broadcast to all of its tokens by the caller.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["SCALES", "group_advantages"]

SCALES = ("group", "batch", "none")


def group_advantages(
    rewards: Tensor, group_size: int, scale: str = "group", eps: float = 1e-6
) -> tuple[Tensor, dict[str, float]]:
    """A_i = (R_i - mean_group R) / (std + eps), one value per completion.

    Args:
        rewards: (B*G,) scalar rewards, group-contiguous (prompt b's completions at ``b*G : (b+1)*G``).
        group_size: G, completions per prompt.
        scale: ``"group"`` divides by the unbiased std of each group (spec §3.1, the reference code);
            ``"batch"`` by the unbiased std of all rewards in the batch (TRL ``scale_rewards="batch"``);
            ``"none"`` only subtracts the group mean (Dr. GRPO).
        eps: added to the std (ε_std = 1e-6 in the paper).

    Returns:
        ``(advantages (B*G,) fp32, stats)``. A group of size 1 is treated as the reference code does: mean 0 and
        std 1, so its advantage is its reward (``scale="none"``: the reward itself). Groups with identical rewards
        get A = 0; ``frac_reward_zero_std`` reports the fraction of such groups (size-1 groups are not counted).

    Example:
        >>> adv, stats = group_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), group_size=2)
        >>> [round(a, 4) for a in adv.tolist()], stats["frac_reward_zero_std"]
        ([0.7071, -0.7071, 0.0, 0.0], 0.5)
    """
    if scale not in SCALES:
        raise ValueError(f"group_advantages: scale must be one of {SCALES}, got {scale!r}")
    if rewards.dim() != 1:
        raise ValueError(f"group_advantages: rewards must be 1-D (B*G,), got shape {tuple(rewards.shape)}")
    if rewards.numel() == 0:
        raise ValueError("group_advantages: no rewards given")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"group_advantages: {rewards.numel()} rewards do not split into groups of {group_size}")
    if not torch.isfinite(rewards).all():
        raise ValueError("group_advantages: rewards contain NaN or inf; score every completion first")
    r = rewards.to(torch.float32).view(-1, group_size)  # (B, G)
    if group_size == 1:
        mean, std = torch.zeros_like(r[:, 0]), torch.ones_like(r[:, 0])  # (B,), (B,)
    else:
        mean, std = r.mean(1), r.std(1)  # unbiased, as torch and the reference code
    centred = r - mean.unsqueeze(1)  # (B, G)
    if scale == "group":
        adv = centred / (std.unsqueeze(1) + eps)
    elif scale == "batch":
        batch_std = rewards.to(torch.float32).std() if rewards.numel() > 1 else torch.ones(())
        adv = centred / (batch_std + eps)
    else:
        adv = centred
    adv = adv.reshape(-1)  # (B*G,)
    zero_std = torch.isclose(std, torch.zeros_like(std)) if group_size > 1 else torch.zeros_like(std, dtype=bool)
    values = torch.stack(
        [
            rewards.float().mean(),
            std.mean() if group_size > 1 else torch.zeros(()),
            zero_std.float().mean(),
            adv.mean(),
            adv.std() if adv.numel() > 1 else torch.zeros(()),
            adv.min(),
            adv.max(),
        ]
    ).tolist()
    keys = ("reward", "reward_std", "frac_reward_zero_std", "advantages/mean", "advantages/std",
            "advantages/min", "advantages/max")  # fmt: skip
    return adv, dict(zip(keys, values))
