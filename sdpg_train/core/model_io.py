"""Hidden-state forwards at completion positions, for both views, and the one sampled-token log-prob path.

A *view* of a micro-batch is ``prefix ++ completion`` per sample: the student view uses the student prompt,
the teacher view the teacher prompt, and both carry the identical completion ids. Prefixes are left-padded
and completions right-padded, so row ``i`` has an explicit per-sequence offset (``gather_index``): hidden state
at column ``offset_i + j`` predicts completion token ``j`` (offset = prefix width − 1). Position ids are the
cumulative attention mask, so padding never shifts positions (spec pitfall 3). Hidden states are sliced to
completion tokens *before* the LM head; logits are only ever formed chunk-wise inside :func:`sdpg_head`.

Every sampled-token log-prob the trainer uses (old, reference, current) goes through
:func:`CompletionModel.forward` + :func:`sdpg_head` with the same micro-batch layout (spec pitfall 4).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sdpg_train.core.head import HeadOutput, sdpg_head
from sdpg_train.core.layout import View, ViewLayout, build_view, common_prefixes
from sdpg_train.core.rollout import RolloutBatch

__all__ = ["CompletionModel", "MicroBatch", "MiniBatch", "View", "build_view", "layout_cost",
           "plan_group_micro_batches", "plan_micro_batches", "plan_step", "sampled_logprobs"]


def _cache_kwarg(backbone: nn.Module) -> str:
    """The decoder's KV-cache argument: ``cache`` (transformers >= 5.2x) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(backbone.forward).parameters else "past_key_values"


class CompletionModel(nn.Module):
    """Wraps an ``AutoModelForCausalLM``: forward returns final hidden states at completion tokens (Ntok, H).

    Being an ``nn.Module`` whose forward is the whole trainable computation, it can be wrapped in DDP or FSDP2.
    ``compute_dtype`` (bf16/fp16, or None for fp32) runs the decoder under ``torch.autocast`` in that dtype
    (:mod:`sdpg_train.core.precision`); a PEFT (LoRA) model is run through its backbone with the adapters in place.
    """

    def __init__(self, lm: nn.Module, compute_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.compute_dtype = compute_dtype
        if lm.get_output_embeddings() is None:
            raise TypeError(f"{type(lm).__name__} has no output embeddings (LM head); need an AutoModelForCausalLM")

    @property
    def lm_head_weight(self) -> Tensor:
        """(V, H) LM-head weight."""
        return self.lm.get_output_embeddings().weight

    @property
    def lm_head_bias(self) -> Tensor | None:
        """(V,) LM-head bias or None."""
        return getattr(self.lm.get_output_embeddings(), "bias", None)

    def head_weight(self) -> Tensor:
        """The LM-head weight as the head's GEMM operand: cast to the compute dtype on CUDA under mixed precision
        (as autocast casts every other linear layer; gradients flow back to the fp32 master), else as stored."""
        w = self.lm_head_weight
        if self.compute_dtype is not None and w.is_cuda and w.dtype != self.compute_dtype:
            return w.to(self.compute_dtype)
        return w

    def backbone(self) -> nn.Module:
        """The decoder stack without the LM head (``lm.base_model``; for a PEFT model, its wrapped model's)."""
        inner = self.lm.get_base_model() if hasattr(self.lm, "peft_config") else self.lm
        return inner.base_model

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None, position_ids: Tensor, gather_index: Tensor,
                token_mask: Tensor, prefix_ids: Tensor | None = None, prefix_mask: Tensor | None = None,
                prefix_rows: Tensor | None = None, token_index: Tensor | None = None) -> Tensor:
        ctx = (torch.autocast(input_ids.device.type, dtype=self.compute_dtype) if self.compute_dtype is not None
               else contextlib.nullcontext())
        backbone = self.backbone()
        with ctx:
            cache = None
            if prefix_ids is not None:  # each shared prefix once, its KV cache expanded over its sequences
                pre = backbone(input_ids=prefix_ids, attention_mask=prefix_mask,
                               position_ids=(prefix_mask.cumsum(1) - 1).clamp_min(0), use_cache=True)
                cache = pre.cache if hasattr(pre, "cache") else pre.past_key_values
                cache.batch_select_indices(prefix_rows)  # (u, ...) -> (n, ...); differentiable under grad
            kw = {} if cache is None else {_cache_kwarg(backbone): cache}
            out = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=cache is not None, **kw)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]  # (n, L, H)
        if token_index is not None:  # packed rows: one flat index per completion token
            picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, token_index)  # (Ntok, H)
        else:
            idx = gather_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])  # (n, T, H)
            picked = hidden.gather(1, idx)[token_mask]  # (Ntok, H), slice before the LM head
        if self.compute_dtype is not None and picked.is_cuda:  # the head's GEMM operands, as autocast would cast
            picked = picked.to(self.compute_dtype)  # them (fp32 accumulation inside sdpg_head)
        return picked


@torch.no_grad()
def sampled_logprobs(model: CompletionModel, view: View, *, temperature: float, chunk_size: int) -> HeadOutput:
    """No-grad per-token log-prob and entropy of ``view``'s completion tokens (old / reference log-probs)."""
    hidden = model(**view.inputs())  # (Ntok, H)
    return sdpg_head(hidden, model.head_weight(), view.targets, lm_bias=model.lm_head_bias,
                     temperature=temperature, chunk_size=chunk_size)


def plan_micro_batches(
    student_prefix_lens: Sequence[int],
    teacher_prefix_lens: Sequence[int],
    completion_lens: Sequence[int],
    max_tokens: int,
    indices: Sequence[int] | None = None,
) -> list[list[int]]:
    """Split samples (in order) into micro-batches whose padded size of the LONGER view fits ``max_tokens``.

    The teacher view is longer by its context (spec pitfall 16), so the budget counts
    ``n × (max prefix over both views + max completion)``. A single over-budget sample gets its own batch.
    """
    order = list(range(len(completion_lens))) if indices is None else list(indices)
    batches: list[list[int]] = []
    cur: list[int] = []
    pre = comp = 0
    for i in order:
        p = max(student_prefix_lens[i], teacher_prefix_lens[i])
        new_pre, new_comp = max(pre, p), max(comp, completion_lens[i])
        if cur and (len(cur) + 1) * (new_pre + new_comp) > max_tokens:
            batches.append(cur)
            cur, new_pre, new_comp = [], p, completion_lens[i]
        cur.append(i)
        pre, comp = new_pre, new_comp
    if cur:
        batches.append(cur)
    return batches


def layout_cost(layout: ViewLayout, views: Sequence[tuple[Sequence[Sequence[int] | None], bool]],
                completion_lens: Sequence[int], groups: Sequence[int],
                indices: Sequence[int]) -> Callable[[Sequence[int]], int]:
    """The cost of a micro-batch ``mb`` (sample indices): the positions the decoder computes for its costlier view,
    in the layout :meth:`ViewLayout.build` will pick for that view (padding included).

    ``views`` holds per view its prefixes (None: the sample has no such view) and whether it is forwarded with
    grad. Shared-prefix layout: distinct groups × the longest common prefix + samples × (longest unshared prefix
    part + longest completion), each group's common prefix taken over its samples among ``indices`` (a part of a
    group may share more). Otherwise, or when sharing saves less than ``layout.min_saving``, the padded size
    samples × (longest prefix + longest completion); a packed view is budgeted at its padded size.
    """
    prepared = []
    for prefixes, grad in views:
        lens = {i: len(prefixes[i]) for i in indices if prefixes[i] is not None}
        rows = list(lens)
        slots, shared = common_prefixes([prefixes[i] for i in rows], [groups[i] for i in rows]) if rows else ([], [])
        common = {i: shared[s] for i, s in zip(rows, slots)}
        prepared.append((lens, common, layout.share_prefix and (layout.share_grad or not grad)))

    def view_cost(mb: Sequence[int], lens: dict[int, int], common: dict[int, int], share: bool) -> int:
        rows = [i for i in mb if i in lens]
        if not rows:
            return 0
        longest = max(completion_lens[i] for i in rows)
        padded = len(rows) * (max(lens[i] for i in rows) + longest)
        if share:  # (u, C) prefixes + (n, S + T) rest, as build_shared_view lays them out
            cost = (len({groups[i] for i in rows}) * max(common[i] for i in rows)
                    + len(rows) * (max(lens[i] - common[i] for i in rows) + longest))
            if cost <= (1.0 - layout.min_saving) * padded:
                return cost
        return padded

    return lambda mb: max(view_cost(mb, *p) for p in prepared)


def plan_group_micro_batches(order: Sequence[int], groups: Sequence[int], cost: Callable[[Sequence[int]], int],
                             max_tokens: int) -> list[list[int]]:
    """Split samples (in ``order``) into micro-batches of whole groups whose ``cost`` fits ``max_tokens``.

    A group is a run of consecutive samples with one group id; groups join the current micro-batch while it fits,
    so a group that fits the budget is never split. A group over the budget on its own is split into the fewest
    contiguous parts of equal size (± 1) that each fit: a single sample over budget is the only lone one.
    """
    runs: list[list[int]] = []
    for i in order:
        if runs and groups[runs[-1][-1]] == groups[i]:
            runs[-1].append(i)
        else:
            runs.append([i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for run in runs:
        if cur and cost(cur + run) <= max_tokens:
            cur += run
            continue
        if cur:
            batches.append(cur)
        cur = list(run)
        if cost(run) > max_tokens:
            batches.extend(_balanced_parts(run, cost, max_tokens))
            cur = []
    if cur:
        batches.append(cur)
    return batches


def _balanced_parts(run: list[int], cost: Callable[[Sequence[int]], int], max_tokens: int) -> list[list[int]]:
    """The fewest contiguous parts of ``run`` with sizes differing by at most 1 that each fit ``max_tokens``."""
    for k in range(2, len(run)):
        size, extra = divmod(len(run), k)
        bounds = [0]
        for p in range(k):
            bounds.append(bounds[-1] + size + (p < extra))
        parts = [run[a:b] for a, b in zip(bounds, bounds[1:])]
        if all(cost(part) <= max_tokens for part in parts):
            return parts
    return [[i] for i in run]


@dataclass
class MicroBatch:
    """One micro-batch: both views of some samples plus per-token advantages and old/ref log-probs."""

    index: list[int]
    """Sample indices into the rollout batch."""
    student: View
    teacher: View | None
    advantages: Tensor  # (Ntok,) A_i broadcast to the tokens of completion i
    mask: Tensor  # (Ntok,) bool, True on every (real) completion token
    old_logp: Tensor | None = None  # (Ntok,) filled once per step
    ref_logp: Tensor | None = None  # (Ntok,) filled once per step when a reference model is used
    teacher_tokens: Tensor | None = None  # (Ntok,) bool: tokens the teacher view covers (None: all, if any)
    extra: dict = field(default_factory=dict)  # method-specific per-token tensors (PPO values, returns…)

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())


class MiniBatch(list):
    """The micro-batches of one optimizer step (a list) and the step's completion-token count ``num_tokens``,
    which includes the tokens of skipped samples (the loss denominator does not depend on what was skipped)."""

    def __init__(self, micro: Sequence[MicroBatch] = (), num_tokens: int | None = None) -> None:
        super().__init__(micro)
        self.num_tokens = sum(mb.num_tokens for mb in micro) if num_tokens is None else int(num_tokens)


def plan_step(batch: RolloutBatch, teacher_prompts: Sequence[Sequence[int] | None] | None, advantages: Tensor, *,
              num_mini_batches: int, max_tokens: int, pad_id: int, device: torch.device | str,
              skip: Sequence[bool] | None = None, layout: ViewLayout | None = None) -> list[MiniBatch]:
    """Split a step's samples into mini-batches (whole groups) of token-budgeted micro-batches.

    The same layout serves the old/ref log-prob pass and the update, so all log-probs share one numeric path.
    Samples whose teacher prompt is None get no teacher view (their tokens are False in ``teacher_tokens``).
    Samples marked in ``skip`` get no micro-batch; their tokens still count in :attr:`MiniBatch.num_tokens`.
    ``layout`` chooses how each view is laid out (padded by default; shared prefixes, packing). With shared
    prefixes, micro-batches are whole groups budgeted by what their forwards compute (:func:`layout_cost`,
    :func:`plan_group_micro_batches`); otherwise by padded size (:func:`plan_micro_batches`).
    """
    n, per_mini = len(batch), len(batch) // num_mini_batches
    lengths = batch.completion_lengths
    s_lens = [len(p) for p in batch.prompt_ids]
    t_lens = s_lens if teacher_prompts is None else [len(t or p) for t, p in zip(teacher_prompts, batch.prompt_ids)]
    layout = layout or ViewLayout()
    groups = batch.group_index.tolist()
    minis = []
    for m in range(num_mini_batches):
        idx = range(m * per_mini, min(n, (m + 1) * per_mini))
        skipped = sum(int(lengths[i]) for i in idx if skip is not None and skip[i])
        idx = [i for i in idx if skip is None or not skip[i]]
        if layout.share_prefix:  # budget what the shared-prefix forwards compute; keep groups together
            views = [(batch.prompt_ids, True)] + ([] if teacher_prompts is None else [(teacher_prompts, False)])
            cost = layout_cost(layout, views, lengths.tolist(), groups, idx)
            plan = plan_group_micro_batches(idx, groups, cost, max_tokens)
        else:
            plan = plan_micro_batches(s_lens, t_lens, lengths.tolist(), max_tokens, indices=idx)
        micro = []
        for mb in plan:
            comps = [batch.completion_ids[i] for i in mb]
            student = layout.build([batch.prompt_ids[i] for i in mb], comps, [groups[i] for i in mb], pad_id,
                                   grad=True).to(device)
            active = [teacher_prompts is not None and teacher_prompts[i] is not None for i in mb]
            teacher = tokens = None
            if any(active):
                rows = [i for i, a in zip(mb, active) if a]
                teacher = layout.build([teacher_prompts[i] for i in rows], [batch.completion_ids[i] for i in rows],
                                       [groups[i] for i in rows], pad_id).to(device)
                if not all(active):
                    tokens = torch.repeat_interleave(torch.tensor(active), lengths[mb]).to(device)  # (Ntok,)
            adv = torch.repeat_interleave(advantages[mb], lengths[mb]).to(device)  # (Ntok,)
            micro.append(MicroBatch(list(mb), student, teacher, adv, torch.ones_like(adv, dtype=torch.bool),
                                    teacher_tokens=tokens))
        minis.append(MiniBatch(micro, sum(mb.num_tokens for mb in micro) + skipped))
    return minis


def check_model_name(name: str) -> None:
    """Refuse a model name that is neither an existing local folder nor a possible hub id (``org/name``), with a
    message that says so (instead of the hub client's "Repo id must be in the form ...")."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"model path {name} has no config.json: expected a folder saved by save_pretrained "
                             "(or a checkpoint-N folder)")
        return
    looks_local = name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or "\\" in name
    if looks_local:
        raise ValueError(f"model path {name} does not exist (a local folder, a hub id such as "
                         "Qwen/Qwen2.5-0.5B-Instruct, or 'tiny')")


def load_model_and_tokenizer(model: Any, processing_class: Any, *, name_or_path: str | None, dtype: str,
                             seed: int, gradient_checkpointing: bool, low_precision_params: bool = False,
                             disable_dropout: bool = True) -> tuple[nn.Module, Any]:
    """Resolve the trainer's ``model`` argument (instance, hub id, path or ``"tiny"``) and its tokenizer.

    Models loaded by name come in fp32 (master weights) unless ``low_precision_params`` (then in ``dtype``);
    ``dtype="auto"`` keeps the checkpoint's dtype for :func:`sdpg_train.core.precision.setup_precision` to read.
    The model is put in train mode (Hugging Face activation checkpointing only runs in train mode; models from
    ``from_pretrained`` start in eval mode) with dropout off unless ``disable_dropout=False``.
    """
    from sdpg_train.core.precision import load_dtype
    from sdpg_train.tiny import byte_tokenizer, load_tokenizer, tiny_causal_lm

    name = str(model) if isinstance(model, (str, Path)) else (name_or_path if model is None else None)
    if model is None and name is None:
        raise ValueError("no model given: pass model=... to SDPGTrainer or set model_name_or_path")
    if name == "tiny":
        lm, tok = tiny_causal_lm(seed=seed), processing_class or byte_tokenizer()
    elif name is not None:
        from transformers import AutoModelForCausalLM

        check_model_name(name)
        lm = AutoModelForCausalLM.from_pretrained(name, dtype=load_dtype(dtype, low_precision_params))
        tok = processing_class or load_tokenizer(name)
    else:
        lm, tok = model, processing_class
        if tok is None:
            path = getattr(model, "name_or_path", "")
            if not path or not Path(path).is_dir():
                raise ValueError("model instance given without processing_class, and its name_or_path is not a "
                                 "local folder with a tokenizer; pass processing_class=tokenizer")
            tok = load_tokenizer(path)
    lm.train()
    if disable_dropout:
        for module in lm.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
    if gradient_checkpointing:
        enable_gradient_checkpointing(lm)
    return lm, tok


def enable_gradient_checkpointing(lm: nn.Module) -> None:
    """Non-reentrant activation checkpointing of every decoder layer, KV cache off during training forwards."""
    if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.x name
        lm.activation_checkpointing_enable()
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if getattr(lm, "config", None) is not None:
        lm.config.use_cache = False  # generation passes use_cache explicitly; training forwards never cache


def is_checkpointing(lm: nn.Module) -> bool:
    """True when at least one layer will recompute its activations in backward (train mode + flag set)."""
    return lm.training and any(getattr(m, "gradient_checkpointing", False) for m in lm.modules())
