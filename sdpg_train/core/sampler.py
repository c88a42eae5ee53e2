"""A faster sampler that draws exactly the tokens HF ``generate`` draws for the same seed (issue 18, item 4).

HF ``generate`` (sampling, KV cache) spends most of a small model's decode step outside the model: a
``torch.multinomial`` over the whole (rows, vocabulary) matrix every step, a cache grown by concatenation, the
mask and position bookkeeping of every row, finished or not. This loop keeps HF's arithmetic and its random
stream, and removes the rest:

* **same draws:** ``torch.multinomial(p, 1)`` is ``argmax(p / q)`` with ``q = empty_like(p).exponential_()``
  over the *full* batch. We draw ``q`` for every row of the batch (dead rows too, so the generator advances
  exactly as in HF) but divide and reduce only the live rows. On CPU, ``exponential_`` is a scalar loop over
  64-bit uniforms; ``-log1p(-rand(float64))`` reads the same uniforms and rounds to the same float32 values at a
  third of the cost (checked once per process against ``exponential_``; used only when they agree bit for bit);
* **same logits:** the model is called with the inputs HF builds (left-padded ids, 2D mask, positions from the
  mask, ``logits_to_keep=1``) and the warpers are HF's own classes (temperature, top-k, top-p, in HF's order);
* **pre-allocated KV cache:** one buffer per layer sized for prompt + completion, written in place; attention
  reads the filled prefix (the same keys, so the same sums);
* **finished rows dropped:** a row that hit EOS or a stop string leaves the batch (its cache rows are compacted
  away); rows are independent in every op, so the others' logits do not change;
* **shared prompts prefilled once:** the G identical prompts of a group are prefilled as one row and their
  cache copied G times.

Exactness rests on each row's logits being bitwise independent of the other rows of the batch (true for the
CPU kernels here: tests/sdpg_train/test_sampler.py checks the tokens against HF ``generate``). Where it is not
(GPU kernels chosen by batch size), a logit can differ in its last bit, the first near-tie can then go the other
way, and the samples are still drawn from the same distribution (the statistical test checks that).
Set ``SDPGConfig.generation_backend = "hf"`` to use ``generate`` itself.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from transformers.cache_utils import Cache, DynamicLayer

# Generation-config fields that add logits processors HF would apply and this sampler does not; the trainer
# neutralises them (rollout.NEUTRAL_SAMPLING), evaluation may not: any non-neutral value sends us back to HF.
_NEUTRAL = {
    "repetition_penalty": (None, 1.0), "encoder_repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0),
    "min_p": (None,), "typical_p": (None, 1.0), "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0),
    "bad_words_ids": (None,), "suppress_tokens": (None,), "begin_suppress_tokens": (None,), "sequence_bias": (None,),
    "min_length": (None, 0), "min_new_tokens": (None, 0), "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,), "renormalize_logits": (None, False), "top_h": (None,),
    "guidance_scale": (None, 1.0), "watermarking_config": (None,), "exponential_decay_length_penalty": (None,),
    "remove_invalid_values": (None, False),
    "num_beams": (None, 1), "prefill_chunk_size": (None,),
}


class BufferLayer(DynamicLayer):
    """One layer's KV cache in a buffer allocated once for prompt + completion; ``update`` writes in place and
    returns the filled prefix (a view), so attention sees the same keys as with a concatenated cache."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
        b, h, _, d = key_states.shape
        self.device = key_states.device
        self.k_buf = key_states.new_empty(b, h, self.capacity, d)  # (B, Hkv, capacity, D)
        self.v_buf = value_states.new_empty(b, value_states.shape[1], self.capacity, value_states.shape[3])
        self.is_initialized = True

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV buffer of {self.capacity} positions overflowed ({end})")
        self.k_buf[:, :, self.length : end] = key_states
        self.v_buf[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self.k_buf[:, :, :end], self.v_buf[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def take_rows(self, index: Tensor) -> None:
        """Keep (or repeat) batch rows ``index`` of the filled part, in a fresh buffer of ``len(index)`` rows."""
        if not self.is_initialized:
            return
        for name in ("k_buf", "v_buf"):
            old = getattr(self, name)
            new = old.new_empty(len(index), *old.shape[1:])
            new[:, :, : self.length] = old[:, :, : self.length].index_select(0, index)
            setattr(self, name, new)
        self.keys, self.values = self.k_buf[:, :, : self.length], self.v_buf[:, :, : self.length]


@functools.cache
def _cpu_uniforms_match_exponential() -> bool:
    """True when ``-log1p(-rand(float64))`` rounds to exactly ``exponential_``'s float32 values on CPU and
    advances the generator alike (how torch's CPU kernel draws them; checked, not assumed)."""
    g1, g2 = torch.Generator().manual_seed(20251204), torch.Generator().manual_seed(20251204)
    a = torch.empty(4, 4099).exponential_(generator=g1)
    b = (-torch.log1p(-torch.rand(4, 4099, dtype=torch.float64, generator=g2))).float()
    return torch.equal(a, b) and torch.equal(g1.get_state(), g2.get_state())


def _exponentials(n_rows: int, width: int, rows: Tensor, device: torch.device) -> Tensor:
    """Rows ``rows`` of the (n_rows, width) fp32 Exp(1) matrix ``torch.multinomial`` would draw now; the global
    generator advances by the whole matrix."""
    if device.type == "cpu" and _cpu_uniforms_match_exponential():
        u = torch.rand(n_rows, width, dtype=torch.float64)  # (n_rows, V)
        u = u if len(rows) == n_rows else u.index_select(0, rows)
        return u.neg_().log1p_().neg_().float()
    q = torch.empty(n_rows, width, dtype=torch.float32, device=device).exponential_()
    return q if len(rows) == n_rows else q.index_select(0, rows)


def _warpers(temperature: float, top_k: int, top_p: float) -> list:
    """HF's sampling warpers for these settings, in HF's order (none for greedy decoding)."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out: list = []
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k:
        out.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
    if top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    return out


def _forward_params(model) -> set[str]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def unsupported_reason(model, overrides: dict[str, Any] | None = None) -> str | None:
    """Why this sampler cannot reproduce ``model.generate`` here (None when it can)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return "not a decoder-only HF model"
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    kinds = set(getattr(text, "layer_types", None) or ["full_attention"])
    if kinds != {"full_attention"}:
        return f"layer types {sorted(kinds)} (sliding or linear attention)"
    if "cache" not in _forward_params(model):
        return "forward() takes no `cache` argument"
    gc = getattr(model, "generation_config", None)
    for name, neutral in _NEUTRAL.items():
        value = (overrides or {}).get(name, getattr(gc, name, None))
        if value not in neutral:
            return f"generation_config.{name}={value!r} adds a logits processor"
    return None


@torch.no_grad()
def sample(
    model,
    ids: Tensor,
    mask: Tensor,
    *,
    max_new_tokens: int,
    pad_id: int,
    eos_ids: Sequence[int],
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    stop_strings: Sequence[str] = (),
    tokenizer=None,
    share_prompts: bool = True,
) -> Tensor:
    """(n, steps) new tokens for left-padded prompts ``ids``/``mask`` (n, P): what ``model.generate(input_ids=ids,
    attention_mask=mask, max_new_tokens=..., do_sample=..., ...)[:, P:]`` returns for the same RNG state,
    pad after a row's EOS or stop string, ``steps`` = the step at which the last row finished (≤ max_new_tokens).
    """
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device).long()
    n, plen = ids.shape
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # (n, P), HF's positions for left padding
    padded = not bool((mask == 1).all())  # HF drops an all-ones mask before the first forward
    warpers = _warpers(temperature, top_k, top_p) if do_sample else []
    eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
    stop = None
    if stop_strings:
        from transformers.generation.stopping_criteria import StopStringCriteria

        stop = StopStringCriteria(tokenizer=tokenizer, stop_strings=list(stop_strings))
    extra = {"logits_to_keep": 1} if "logits_to_keep" in _forward_params(model) else {}
    layers = model.config.get_text_config(decoder=True).num_hidden_layers
    cache = Cache(layers=[BufferLayer(plen + max_new_tokens) for _ in range(layers)])

    # prefill: identical (ids, mask) rows (a group's G samples) once, then their cache rows repeated
    pre, inverse = torch.arange(n, device=device), None
    if share_prompts:
        uniq, inv = torch.unique(torch.cat([ids, mask], 1), dim=0, return_inverse=True)  # (U, 2P), (n,)
        if len(uniq) < n:
            pre = torch.full((len(uniq),), n, dtype=torch.long, device=device).scatter_reduce(
                0, inv, torch.arange(n, device=device), "amin")  # (U,) first sample of each distinct prompt
            inverse = inv
    out = model(input_ids=ids[pre], attention_mask=mask[pre] if padded else None, position_ids=positions[pre],
                cache=cache, use_cache=True, return_dict=True, **extra)
    logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)  # (U or n, V)
    del out
    if inverse is not None:
        for layer in cache.layers:
            layer.take_rows(inverse)
        logits = logits.index_select(0, inverse)

    seq = torch.full((n, plen + max_new_tokens), pad_id, dtype=torch.long, device=device)  # HF's input_ids
    seq[:, :plen] = ids
    full_mask = torch.ones(n, plen + max_new_tokens, dtype=torch.long, device=device)
    full_mask[:, :plen] = mask
    live = torch.arange(n, device=device)  # batch rows still generating, in cache order
    last_pos = positions[:, -1]  # (n,)
    steps = 0
    for t in range(max_new_tokens):
        scores = logits
        for w in warpers:
            scores = w(None, scores)
        if do_sample:
            probs = torch.softmax(scores, dim=-1)  # (m, V)
            if not torch.isfinite(probs.sum(-1)).all():
                raise RuntimeError("probability tensor contains inf or nan (the model's logits are not finite)")
            q = _exponentials(n, probs.shape[-1], live, device)  # (m, V), the full batch's draw advanced
            tok = (probs / q).argmax(-1)  # (m,), torch.multinomial(probs, 1) row by row
        else:
            tok = scores.argmax(-1)
        cur = plen + t + 1
        seq[live, cur - 1] = tok
        steps = t + 1
        done = torch.isin(tok, eos)
        if stop is not None:
            done |= stop(seq[live, :cur], None)
        if t + 1 == max_new_tokens:
            break
        keep = (~done).nonzero().squeeze(1)
        if len(keep) == 0:
            break
        if len(keep) < len(live):  # drop finished rows from the batch and the cache
            live, tok = live[keep], tok[keep]
            for layer in cache.layers:
                layer.take_rows(keep)
        last_pos = last_pos + 1
        out = model(input_ids=tok[:, None], attention_mask=full_mask[live, :cur] if padded else None,
                    position_ids=last_pos[live, None], cache=cache, use_cache=True, return_dict=True, **extra)
        logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)  # (m, V)
        del out
    return seq[:, plen : plen + steps]
