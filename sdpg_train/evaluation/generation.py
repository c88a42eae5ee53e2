"""Batched generation for evaluation, sharing the trainer's prompt encoding and completion trimming.

Prompts go through :func:`sdpg_train.core.rollout.encode_prompt` (chat template when the tokenizer has one, no special
tokens) and completions through :func:`sdpg_train.core.rollout.trim_completion`, so an evaluated completion is cut
exactly as a training rollout would be. Unlike the rollout sampler this also decodes greedily
(``temperature == 0``), the usual setting for pass@1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from sdpg_train.core.rollout import encode_prompt, eos_token_ids, left_pad, pad_token_id, trim_completion
from sdpg_train.core.sampler import sample, unsupported_reason


@dataclass(frozen=True)
class Generation:
    """One sampled completion."""

    text: str
    """Decoded completion (special tokens skipped), as given to the verifier."""
    num_tokens: int
    """Generated tokens, counting the final EOS when there is one (as the trainer counts them)."""
    truncated: bool
    """True when generation hit ``max_new_tokens`` without EOS or a stop string."""


@torch.no_grad()
def generate_batch(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    stop: Sequence[str] = (),
    chat_template_kwargs: dict | None = None,
    backend: str = "fast",
) -> list[Generation]:
    """One completion per prompt (the user turn's text) in a single batch.

    ``temperature == 0`` decodes greedily; otherwise plain temperature/top-p sampling (no top-k) from torch's
    global RNG, so the caller controls determinism with ``torch.manual_seed``. ``backend`` "fast" is
    :func:`sdpg_train.core.sampler.sample` (the tokens ``generate`` gives for the same RNG state; it defers to
    ``generate`` when the model's ``generation_config`` adds processors it does not apply), "hf" ``generate``.
    """
    if not prompts:
        return []
    encoded = [encode_prompt(tokenizer, p, chat_template_kwargs) for p in prompts]
    return [Generation(tokenizer.decode(kept, skip_special_tokens=True), len(kept), clipped)
            for kept, clipped in generate_ids(model, tokenizer, encoded, temperature=temperature, top_p=top_p,
                                              max_new_tokens=max_new_tokens, stop=stop, backend=backend)]


@torch.no_grad()
def generate_ids(model, tokenizer, prefixes: Sequence[Sequence[int]], *, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 256, stop: Sequence[str] = (), backend: str = "fast"
                 ) -> list[tuple[list[int], bool]]:
    """One completion per token prefix (one batch) -> ``[(completion ids, truncated)]``, trimmed as the trainer
    trims them; greedy at ``temperature == 0`` (multi-turn evaluation feeds whole transcripts). ``backend`` as in
    :func:`generate_batch`."""
    if not prefixes:
        return []
    if backend not in ("fast", "hf"):
        raise ValueError(f"generation backend must be 'fast' or 'hf', got {backend!r}")
    pad = pad_token_id(tokenizer)
    eos = eos_token_ids(model, tokenizer)
    ids, mask = left_pad(prefixes, pad)  # (N, P)
    if backend == "fast" and unsupported_reason(model) is None:
        rows = sample(model, ids, mask, max_new_tokens=max_new_tokens, pad_id=pad, eos_ids=sorted(eos),
                      do_sample=temperature > 0, temperature=temperature or 1.0, top_p=top_p, stop_strings=stop,
                      tokenizer=tokenizer).tolist()  # (N, T)
    else:
        kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=pad,
                                      eos_token_id=sorted(eos) or None)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        device = next(model.parameters()).device
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)  # (N, P + T)
        rows = out[:, ids.shape[1] :].tolist()
    return [trim_completion(row, eos, tokenizer, stop) for row in rows]


def generate_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    stop: Sequence[str] = (),
    batch_size: int = 16,
    seed: int = 0,
) -> list[list[str]]:
    """``n`` completions for each prompt, deterministic given ``seed``; the caller's RNG state is untouched."""
    flat = [p for p in prompts for _ in range(n)]
    texts: list[str] = []
    with seeded(seed):
        for start in range(0, len(flat), batch_size):
            gens = generate_batch(
                model, tokenizer, flat[start : start + batch_size], temperature=temperature, top_p=top_p,
                max_new_tokens=max_new_tokens, stop=stop,
            )
            texts.extend(g.text for g in gens)
    return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Fork torch's RNG (CPU and the current CUDA device), seed it, and restore the caller's state on exit."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
