"""Group-relative advantages: hand-computed values and edge cases (spec §3.1)."""

from __future__ import annotations

import pytest
import torch

from sdpg_train.core.advantages import group_advantages


def test_group_scale_uses_unbiased_std():
    # group [1, 0, 0, 0]: mean 0.25, unbiased std sqrt((0.75² + 3·0.25²) / 3) = 0.5
    adv, stats = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), group_size=4)
    assert adv.tolist() == pytest.approx([1.5, -0.5, -0.5, -0.5], rel=1e-5)
    assert stats["reward"] == 0.25 and stats["reward_std"] == pytest.approx(0.5)


def test_zero_variance_groups_get_zero_advantage_and_are_reported():
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, -1.0, -1.0, -1.0])
    adv, stats = group_advantages(rewards, group_size=3)
    assert adv[:3].tolist() == [0.0, 0.0, 0.0] and adv[6:].tolist() == [0.0, 0.0, 0.0]
    assert adv[3:6].tolist() == pytest.approx([-0.57735, 1.1547, -0.57735], rel=1e-4)
    assert stats["frac_reward_zero_std"] == pytest.approx(2 / 3)


def test_group_of_size_one_keeps_reward():
    adv, stats = group_advantages(torch.tensor([0.5, -1.0, 2.0]), group_size=1)
    assert adv.tolist() == pytest.approx([0.5, -1.0, 2.0], rel=1e-5)  # mean 0, std 1 (+eps)
    assert stats["frac_reward_zero_std"] == 0.0


def test_batch_scale_divides_by_batch_std():
    rewards = torch.tensor([1.0, 0.0, 3.0, 1.0])
    adv, _ = group_advantages(rewards, group_size=2, scale="batch")
    batch_std = rewards.std().item()
    assert adv.tolist() == pytest.approx([0.5 / batch_std, -0.5 / batch_std, 1 / batch_std, -1 / batch_std], rel=1e-5)


def test_none_scale_only_centres():
    adv, _ = group_advantages(torch.tensor([1.0, 0.0, 3.0, 1.0]), group_size=2, scale="none")
    assert adv.tolist() == [0.5, -0.5, 1.0, -1.0]


def test_advantages_sum_to_zero_per_group_and_keep_order():
    rewards = torch.randn(5 * 8)
    adv, _ = group_advantages(rewards, group_size=8)
    assert adv.view(5, 8).sum(1).abs().max() < 1e-5
    assert torch.equal(adv.view(5, 8).argsort(1), rewards.view(5, 8).argsort(1))


@pytest.mark.parametrize(
    "rewards,group_size,scale,match",
    [
        (torch.ones(5), 2, "group", "do not split"),
        (torch.ones(4), 0, "group", "do not split"),
        (torch.ones(2, 2), 2, "group", "1-D"),
        (torch.tensor([1.0, float("nan")]), 2, "group", "NaN"),
        (torch.ones(4), 2, "std", "scale must be"),
        (torch.ones(0), 2, "group", "no rewards"),
    ],
)
def test_bad_input(rewards, group_size, scale, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, group_size, scale)
