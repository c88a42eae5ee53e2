"""Learner-test helpers: a fixed rollout batch for tests that call ``SDPGTrainer.learn`` directly (no
generation), a sub-batch helper and a parity task source. Imported by name (``from learner_fixtures import``)."""

from __future__ import annotations

import torch

from sdpg_train.core.rollout import RolloutBatch, encode_prompt


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



def take(batch: RolloutBatch, index: list[int]) -> RolloutBatch:
    """The samples ``index`` of ``batch`` (whole groups, in order) as a batch of their own."""
    pick = lambda xs: [xs[i] for i in index]  # noqa: E731
    return RolloutBatch(
        prompt_ids=pick(batch.prompt_ids), completion_ids=pick(batch.completion_ids), prompts=pick(batch.prompts),
        completions=pick(batch.completions), rewards=batch.rewards[index], statuses=pick(batch.statuses),
        contexts=pick(batch.contexts), answers=pick(batch.answers),
        group_index=torch.arange(len(index)) // batch.group_size, sources=pick(batch.sources),
        clipped=batch.clipped[index], group_size=batch.group_size)


class ParitySource:
    """A TaskSource: reward 1 for completions of even length (random tiny models get non-zero advantages)."""

    name = "test/Parity-v0"

    def sample(self, seed: int):
        from sdpg_envs.types import Problem

        return Problem(f"parity-{seed % 97}", f"Say something of even length #{seed % 97}", answer="even")

    def prompt(self, problem) -> str:
        return problem.prompt

    def score(self, problems, completions):
        from sdpg_envs.types import VerifierResult

        return [VerifierResult(float(len(c) % 2 == 0), "scored", f"length {len(c)}") for c in completions]

    def context(self, problem, result) -> str:
        return f"Answer with an even number of characters. Last attempt: {result.feedback}"
