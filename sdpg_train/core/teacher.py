"""The teacher view: template(privileged context, prompt) followed by the student's exact completion ids.

Context sources (combinable, joined by a blank line in the configured order):

* ``env``       the environment's own context for this rollout (by default its reference + verifier feedback);
* ``reference`` the problem's reference solution/answer;
* ``feedback``  this rollout's verifier feedback;
* ``sibling``   a successful completion of another sample of the same group (never the sample itself);
* ``sibling_else_feedback`` the sibling when one exists, else this rollout's feedback (SDPO's default).

The context is truncated to a token budget before it enters the template, so the chat header (and the
generation prompt the completion follows) is never cut (spec pitfall 1); :func:`teacher_prompt_ids` asserts
the teacher prompt ends with the same generation-prompt tokens as the student prompt. An empty context gives
the student prompt exactly (KL = 0). Teacher kinds: ``live`` (the current weights, no grad), ``ema`` (an
exponential moving average of the student) and ``base`` (the frozen initial model).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sdpg_envs.privileged import render_context
from sdpg_train.core.rollout import RolloutBatch, encode_prompt

_THINK = re.compile(r"<think>.*?</think>", flags=re.DOTALL)
TRUNCATION_MARK = " … [context truncated]"


@dataclass
class TeacherView:
    """Teacher prompts for every sample of a batch (the completion ids are the batch's, unchanged)."""

    prompt_ids: list[list[int] | None]
    """Teacher prompt ids per sample (chat-templated, no padding); equals the student prompt when no context;
    None for samples that need no teacher (gated out)."""
    contexts: list[str]
    """The privileged context each teacher saw (after truncation)."""
    context_tokens: list[int]
    """Context length in tokens (before truncation) per sample."""
    truncated: list[bool]
    active: list[bool]
    """Whether each sample gets a teacher forward (False: gated out, its distillation weight is 0)."""


def sibling_solution(batch: RolloutBatch, i: int, threshold: float) -> str:
    """A successful sibling of sample ``i`` (lowest index in its group, never ``i``), ``<think>`` removed."""
    g = int(batch.group_index[i])
    for j in range(len(batch)):
        if j != i and int(batch.group_index[j]) == g and float(batch.rewards[j]) >= threshold:
            return "Correct solution:\n" + _THINK.sub("", batch.completions[j]).strip()
    return ""


def build_contexts(batch: RolloutBatch, sources: Sequence[str], success_threshold: float = 0.5) -> list[str]:
    """Privileged context text per sample from the configured ``sources``."""
    out = []
    for i in range(len(batch)):
        parts = []
        for src in sources:
            if src == "env":
                parts.append(batch.contexts[i])
            elif src == "reference":
                parts.append(render_context("reference", batch.problems[i], None))
            elif src == "feedback":
                parts.append(render_context("feedback", batch.problems[i], batch.results[i]))
            elif src == "sibling":
                parts.append(sibling_solution(batch, i, success_threshold))
            elif src == "sibling_else_feedback":  # SDPO's default: feedback only when no sibling succeeded
                parts.append(sibling_solution(batch, i, success_threshold)
                             or render_context("feedback", batch.problems[i], batch.results[i]))
            else:
                raise ValueError(f"unknown context source {src!r}")
        out.append("\n\n".join(p.strip() for p in parts if p and p.strip()))
    return out


def truncate_context(tokenizer, context: str, max_tokens: int) -> tuple[str, int, bool]:
    """Keep the first ``max_tokens`` context tokens -> (text, original token count, truncated?)."""
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return context, len(ids), False
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True) + TRUNCATION_MARK, len(ids), True


def generation_prompt_len(tokenizer, chat_template_kwargs: dict | None = None) -> int:
    """Number of trailing tokens the chat template's generation prompt adds (0 without a chat template)."""
    if not getattr(tokenizer, "chat_template", None):
        return 0
    msgs = [{"role": "user", "content": "x"}]
    kw = chat_template_kwargs or {}
    with_gen = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kw)
    without = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False, **kw)
    if not with_gen.startswith(without):
        return 0
    return len(tokenizer(with_gen[len(without) :], add_special_tokens=False)["input_ids"])


def teacher_prompt_ids(
    tokenizer,
    prompt: str,
    context: str,
    student_prompt_ids: Sequence[int],
    *,
    template: str,
    chat_template_kwargs: dict | None = None,
    gen_prompt_len: int | None = None,
) -> list[int]:
    """Token ids of the teacher prompt (already-truncated ``context``) with the same chat template/flags.

    Raises:
        ValueError: if the teacher prompt does not end with the student's generation prompt.
    """
    if not context:
        return list(student_prompt_ids)
    ids = encode_prompt(tokenizer, template.format(prompt=prompt, context=context), chat_template_kwargs)
    k = generation_prompt_len(tokenizer, chat_template_kwargs) if gen_prompt_len is None else gen_prompt_len
    if k and list(ids[-k:]) != list(student_prompt_ids[-k:]):
        raise ValueError(
            "teacher prompt does not end with the student's generation prompt "
            f"(teacher tail {list(ids[-k:])} vs student tail {list(student_prompt_ids[-k:])}); check the chat "
            "template and teacher_template"
        )
    return ids


def build_teacher_view(
    tokenizer,
    batch: RolloutBatch,
    *,
    sources: Sequence[str],
    template: str,
    max_context_length: int,
    success_threshold: float = 0.5,
    chat_template_kwargs: dict | None = None,
    active: Sequence[bool] | None = None,
) -> TeacherView:
    """Teacher prompts for the samples of ``batch`` marked ``active`` (all when None)."""
    k = generation_prompt_len(tokenizer, chat_template_kwargs)
    active = [True] * len(batch) if active is None else [bool(a) for a in active]
    ids: list[list[int] | None] = []
    ctxs, ntok, trunc = [], [], []
    for i, raw in enumerate(build_contexts(batch, sources, success_threshold)):
        if not active[i]:
            ids.append(None)
            ctxs.append("")
            ntok.append(0)
            trunc.append(False)
            continue
        ctx, n, cut = truncate_context(tokenizer, raw, max_context_length) if raw else ("", 0, False)
        ids.append(teacher_prompt_ids(tokenizer, batch.prompts[i], ctx, batch.prompt_ids[i], template=template,
                                      chat_template_kwargs=chat_template_kwargs, gen_prompt_len=k))
        ctxs.append(ctx)
        ntok.append(n)
        trunc.append(cut)
    return TeacherView(prompt_ids=ids, contexts=ctxs, context_tokens=ntok, truncated=trunc, active=active)


# ---------------------------------------------------------------------------- teacher weights
def frozen_copy(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy with gradients off, in eval mode (the base teacher, the reference model, the EMA start);
    ``dtype`` stores it in the compute dtype under mixed precision (it never trains)."""
    twin = copy.deepcopy(model)
    if dtype is not None:
        twin.to(dtype)
    twin.requires_grad_(False)
    return twin.eval()


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, rate: float) -> None:
    """teacher ← (1 − rate)·teacher + rate·student, parameter by parameter (buffers copied)."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.lerp_(s.detach().to(t.dtype), rate)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)


def make_teacher_and_ref(policy: nn.Module, kind: str, needs_ref: bool, frozen_dtype: torch.dtype | None = None,
                         ) -> tuple[nn.Module | None, nn.Module | None]:
    """(teacher, reference) modules: teacher None means live (the policy itself under no_grad).

    A ``base`` teacher and the reference are both the frozen initial model, so they share one copy. With LoRA
    that copy is the policy itself with its adapters disabled (:class:`sdpg_train.core.lora.AdapterDisabled`), so no
    second set of weights is held. ``frozen_dtype`` stores frozen copies in the compute dtype (mixed precision).
    """
    from sdpg_train.core.lora import AdapterDisabled, is_peft

    lora = is_peft(getattr(policy, "lm", policy))
    initial = (lambda: AdapterDisabled(policy)) if lora else (lambda: frozen_copy(policy, frozen_dtype))  # noqa: E731
    ref = initial() if needs_ref else None
    if kind in ("live", "encoder"):  # encoder: the live weights plus the trainable conditioning pathway
        return None, ref
    if kind == "base":
        return (ref if ref is not None else initial()), ref
    return frozen_copy(policy), ref  # ema: starts at the initial weights, updated after every step (kept fp32)
