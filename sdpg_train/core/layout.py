"""How a view of a micro-batch is laid out for the forward: padded, shared-prefix or packed (issue 18).

* **padded** (:func:`build_view`): ``left_pad(prefix) ++ right_pad(completion)``.
* **shared prefix** (:func:`build_shared_view`): the G completions of a group share their prompt (and, in the
  teacher view, the privileged context up to where it differs per sample). Each group's longest common prefix
  is forwarded once; its KV cache is expanded over the group's sequences, which then run only their own suffix
  and completion. Under grad the prefix's gradient accumulates over the group through the expansion.
* **packed** (:func:`build_packed_view`): whole sequences side by side in rows of the longest sequence's width
  (first-fit decreasing), ``position_ids`` restarting at 0 for each and no attention mask, so transformers'
  packed-sequence detection keeps them apart (a block-diagonal causal mask for sdpa/eager, varlen kernels for
  flash attention).

All three give the same hidden states at the completion positions to fp32 rounding; :class:`ViewLayout` picks
one per view from the token counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from sdpg_train.core.rollout import left_pad, right_pad

__all__ = ["View", "ViewLayout", "build_packed_view", "build_shared_view", "build_view", "common_prefixes",
           "pack_rows"]


@dataclass
class View:
    """Model inputs of one view of a micro-batch (n sequences): padded (n, L = P + T) by default.

    Two other layouts (:mod:`sdpg_train.core.layout`) fill the optional fields:

    * shared prefix: ``prefix_ids``/``prefix_mask`` (u, C) hold each group's common prefix once, ``prefix_rows``
      (n,) maps a sequence to its prefix; ``input_ids``/``position_ids`` (n, S + T) are the rest (suffix ++
      completion) and ``attention_mask`` (n, C + S + T) covers prefix and rest;
    * packed: ``input_ids``/``position_ids`` (r, W) hold several sequences per row (positions restart at 0 for
      each), ``attention_mask`` is None and ``token_index`` (Ntok,) indexes the flattened (r · W) hidden states.
    """

    input_ids: Tensor  # (n, L) long
    attention_mask: Tensor | None  # (n, L) long
    position_ids: Tensor  # (n, L) long
    gather_index: Tensor  # (n, T) long: column of the hidden state that predicts completion token j
    token_mask: Tensor  # (n, T) bool: real completion tokens
    targets: Tensor  # (Ntok,) long: the completion ids in row-major mask order
    prefix_ids: Tensor | None = None  # (u, C) long: shared prefixes (left-padded)
    prefix_mask: Tensor | None = None  # (u, C) long
    prefix_rows: Tensor | None = None  # (n,) long: prefix of each sequence
    token_index: Tensor | None = None  # (Ntok,) long: packed layout's flat hidden-state index per token

    @property
    def num_tokens(self) -> int:
        return int(self.token_mask.sum())

    @property
    def layout(self) -> str:
        return "shared" if self.prefix_ids is not None else "packed" if self.token_index is not None else "padded"

    @property
    def padded_tokens(self) -> int:
        """Token positions the forward computes (real and padding)."""
        return self.input_ids.numel() + (0 if self.prefix_ids is None else self.prefix_ids.numel())

    def to(self, device: torch.device | str) -> View:
        return View(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                       for f in fields(self)})

    def inputs(self) -> dict[str, Tensor]:
        """Keyword arguments for :meth:`CompletionModel.forward`."""
        out = dict(input_ids=self.input_ids, attention_mask=self.attention_mask, position_ids=self.position_ids,
                   gather_index=self.gather_index, token_mask=self.token_mask)
        out.update({k: getattr(self, k) for k in ("prefix_ids", "prefix_mask", "prefix_rows", "token_index")
                    if getattr(self, k) is not None})
        return out


def build_view(prefixes: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int) -> View:
    """``left_pad(prefix) ++ right_pad(completion)`` with per-sequence offsets and cumulative positions."""
    if len(prefixes) != len(completions):
        raise ValueError(f"{len(prefixes)} prefixes but {len(completions)} completions")
    if any(len(p) == 0 for p in prefixes):
        raise ValueError("every prefix needs at least one token (the token before the first completion token)")
    p_ids, p_mask = left_pad(prefixes, pad_id)  # (n, P)
    c_ids, c_mask = right_pad(completions, pad_id)  # (n, T)
    input_ids = torch.cat([p_ids, c_ids], dim=1)  # (n, P + T)
    attention_mask = torch.cat([p_mask, c_mask.long()], dim=1)  # (n, P + T)
    position_ids = (attention_mask.cumsum(1) - 1).clamp_min(0)  # (n, P + T)
    offsets = torch.full((len(prefixes),), p_ids.shape[1] - 1, dtype=torch.long)  # (n,) per-sequence offset
    gather_index = offsets[:, None] + torch.arange(c_ids.shape[1])[None, :]  # (n, T)
    return View(input_ids, attention_mask, position_ids, gather_index, c_mask, c_ids[c_mask])




def _lcp(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of ``rows``."""
    first, n = rows[0], min(len(r) for r in rows)
    for k in range(n):
        if any(r[k] != first[k] for r in rows[1:]):
            return k
    return n


def common_prefixes(prefixes: Sequence[Sequence[int]], groups: Sequence[int]) -> tuple[list[int], list[int]]:
    """Per sequence: its group's slot in order of first appearance, and per group the shared length — the
    longest common prefix of the group's prefixes, at most the shortest one minus 1 (every sequence keeps at
    least the token that predicts its first completion token)."""
    slot: dict[int, int] = {}
    members: list[list[int]] = []
    rows = []
    for i, g in enumerate(groups):
        if g not in slot:
            slot[g] = len(members)
            members.append([])
        members[slot[g]].append(i)
        rows.append(slot[g])
    shared = [min(_lcp([prefixes[i] for i in m]), min(len(prefixes[i]) for i in m) - 1) for m in members]
    return rows, shared


def build_shared_view(prefixes: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                      groups: Sequence[int], pad_id: int) -> View:
    """The shared-prefix layout: prefixes (u, C) left-padded, rest = left-padded suffix ++ right-padded completion."""
    if any(len(p) == 0 for p in prefixes):
        raise ValueError("every prefix needs at least one token (the token before the first completion token)")
    rows, shared = common_prefixes(prefixes, groups)
    first = {r: i for i, r in reversed(list(enumerate(rows)))}
    pre_ids, pre_mask = left_pad([prefixes[first[u]][: shared[u]] for u in range(len(shared))], pad_id)  # (u, C)
    suf_ids, suf_mask = left_pad([p[shared[r]:] for p, r in zip(prefixes, rows)], pad_id)  # (n, S)
    c_ids, c_mask = right_pad(completions, pad_id)  # (n, T)
    row_index = torch.tensor(rows, dtype=torch.long)  # (n,)
    rest_mask = torch.cat([suf_mask, c_mask.long()], dim=1)  # (n, S + T)
    full_mask = torch.cat([pre_mask[row_index], rest_mask], dim=1)  # (n, C + S + T)
    position_ids = (full_mask.cumsum(1) - 1).clamp_min(0)[:, pre_ids.shape[1]:]  # (n, S + T)
    gather = (suf_ids.shape[1] - 1) + torch.arange(c_ids.shape[1])[None, :].expand(len(prefixes), -1)  # (n, T)
    return View(torch.cat([suf_ids, c_ids], dim=1), full_mask, position_ids, gather.contiguous(), c_mask,
                c_ids[c_mask], prefix_ids=pre_ids, prefix_mask=pre_mask, prefix_rows=row_index)


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """First-fit decreasing: sequence indices per row, each row's lengths summing to at most ``width``."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        for r, space in enumerate(free):
            if lengths[i] <= space:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(width - lengths[i])
    return rows


def build_packed_view(prefixes: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int) -> View:
    """The packed layout: rows of the longest sequence's width, positions restarting per sequence, no mask."""
    if any(len(p) == 0 for p in prefixes):
        raise ValueError("every prefix needs at least one token (the token before the first completion token)")
    seqs = [list(p) + list(c) for p, c in zip(prefixes, completions)]
    width = max(map(len, seqs))
    rows = pack_rows([len(s) for s in seqs], width)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (r, W)
    pos = torch.zeros((len(rows), width), dtype=torch.long)  # (r, W)
    start = [0] * len(seqs)
    for r, members in enumerate(rows):
        col = 0
        for i in members:
            ids[r, col : col + len(seqs[i])] = torch.tensor(seqs[i])
            pos[r, col : col + len(seqs[i])] = torch.arange(len(seqs[i]))
            start[i] = r * width + col
            col += len(seqs[i])
        pos[r, col:] = torch.arange(width - col)  # the padding tail is a sequence of its own
    c_ids, c_mask = right_pad(completions, pad_id)  # (n, T)
    index = torch.cat([start[i] + len(p) - 1 + torch.arange(len(c)) for i, (p, c) in
                       enumerate(zip(prefixes, completions))])  # (Ntok,) row-major like c_ids[c_mask]
    gather = torch.zeros_like(c_ids)
    return View(ids, None, pos, gather, c_mask, c_ids[c_mask], token_index=index)


@dataclass
class ViewLayout:
    """Which layout :func:`sdpg_train.core.model_io.plan_step` builds for each view.

    Args:
        share_prefix: use the shared-prefix layout when it computes at most ``min_saving`` of the padded tokens.
        share_grad: also for the student view (the forward with grad); off under activation checkpointing, which
            cannot replay a layer that reads a KV cache.
        pack: pack the views that do not share a prefix, when that removes padding.
        min_saving: the shared layout must compute ≤ (1 − min_saving) × the padded layout's positions.
    """

    share_prefix: bool = False
    share_grad: bool = True
    pack: bool = False
    min_saving: float = 0.2

    def build(self, prefixes: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
              groups: Sequence[int], pad_id: int, *, grad: bool = False) -> View:
        padded_cost = len(prefixes) * (max(map(len, prefixes)) + max(map(len, completions)))
        if self.share_prefix and (self.share_grad or not grad):
            view = build_shared_view(prefixes, completions, groups, pad_id)
            if view.padded_tokens <= (1.0 - self.min_saving) * padded_cost:
                return view
        if self.pack and len(prefixes) > 1:
            view = build_packed_view(prefixes, completions, pad_id)
            if view.padded_tokens < padded_cost:
                return view
        return build_view(prefixes, completions, pad_id)
