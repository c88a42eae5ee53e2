"""A fixed rollout batch for learner tests that call ``SDPGTrainer.learn`` directly (no generation)."""

from __future__ import annotations

import pytest
import torch

from sdpg_train.rollout import RolloutBatch, encode_prompt


def fixed_batch(tok, rewards: list[list[float]], length: int = 6, seed: int = 0) -> RolloutBatch:
    """B groups of G samples (``rewards[b][g]``): real chat-templated prompts, random completions of 2..``length``
    byte tokens ending in EOS, and a distinct privileged context per sample."""
    gen = torch.Generator().manual_seed(seed)
    n_groups, g = len(rewards), len(rewards[0])
    prompts = [f"Question {b}: what is {b} + {b + 1}?" for b in range(n_groups) for _ in range(g)]
    comps = [torch.randint(3, 259, (int(torch.randint(1, length, (1,), generator=gen)),), generator=gen).tolist()
             + [tok.eos_token_id] for _ in prompts]
    return RolloutBatch(
        prompt_ids=[encode_prompt(tok, p) for p in prompts], completion_ids=comps, prompts=prompts,
        completions=[tok.decode(c, skip_special_tokens=True) for c in comps],
        rewards=torch.tensor([r for row in rewards for r in row], dtype=torch.float32),
        statuses=["scored"] * len(prompts),
        contexts=[f"The answer is {i % 7}; sample {i}." for i in range(len(prompts))],
        answers=[None] * len(prompts), group_index=torch.arange(len(prompts)) // g, sources=["fixed"] * len(prompts),
        clipped=torch.zeros(len(prompts), dtype=torch.bool), group_size=g)


@pytest.fixture
def make_fixed_batch():
    return fixed_batch
