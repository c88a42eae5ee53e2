"""Teacher view: context sources, truncation that never cuts the chat header, exact alignment with the student."""

from __future__ import annotations

import pytest
import torch

from sdpg_envs.types import Problem, VerifierResult
from sdpg_train.core.head import sdpg_head
from sdpg_train.core.model_io import CompletionModel, build_view
from sdpg_train.core.rollout import RolloutBatch, encode_prompt
from sdpg_train.core.teacher import (
    TRUNCATION_MARK,
    build_contexts,
    build_teacher_view,
    ema_update_,
    generation_prompt_len,
    make_teacher_and_ref,
    sibling_solution,
    teacher_prompt_ids,
)
from sdpg_train.tiny import byte_tokenizer

TEMPLATE = "{prompt}\n\n[Hint]\n{context}"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_batch(tok, prompts, completions, rewards, contexts, group_size):
    """A real RolloutBatch built by hand (no model): what collect_rollouts would return for these texts."""
    n = len(completions)
    probs = [Problem(f"p{i // group_size}", prompts[i // group_size], answer=str(i // group_size),
                     solution=f"solution {i // group_size}") for i in range(n)]
    results = [VerifierResult(float(r), "correct" if r >= 1 else "incorrect", f"feedback {i}")
               for i, r in enumerate(rewards)]
    return RolloutBatch(
        prompt_ids=[encode_prompt(tok, p.prompt) for p in probs],
        completion_ids=[tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in completions],
        prompts=[p.prompt for p in probs], completions=list(completions),
        rewards=torch.tensor(rewards, dtype=torch.float32), statuses=[r.status for r in results],
        contexts=list(contexts), answers=[p.answer for p in probs],
        group_index=torch.arange(n) // group_size, sources=["test"] * n,
        clipped=torch.zeros(n, dtype=torch.bool), group_size=group_size, problems=probs, results=results)


def direct_logprobs(model, prefix, completion):
    """Reference: one unpadded forward of prefix ++ completion, full logits, fp64 log-softmax."""
    ids = torch.tensor([list(prefix) + list(completion)])
    logits = model(ids).logits[0].double()  # (L, V)
    lp = torch.log_softmax(logits, -1)
    return torch.stack([lp[len(prefix) - 1 + j, t] for j, t in enumerate(completion)])


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_teacher_logprobs_equal_direct_forward_of_concatenation(tiny_model, padding_side):
    tok = byte_tokenizer(padding_side=padding_side)
    long_ctx = "reference solution step. " * 40  # teacher prompt much longer than the student prompt
    batch = make_batch(tok, ["What is 2+3?", "A much longer question about 17 * 23 - 4?"],
                       ["5", "it is 387", "x", "387 done"], [1, 0, 0, 1], ["short ctx", "", long_ctx, "mid " * 9],
                       group_size=2)
    view = build_teacher_view(tok, batch, sources=["env"], template=TEMPLATE, max_context_length=10_000)
    assert view.prompt_ids[1] == batch.prompt_ids[1]  # empty context -> the student prompt exactly
    assert len(view.prompt_ids[2]) > 3 * len(batch.prompt_ids[2])
    model = CompletionModel(tiny_model)
    s_view = build_view(batch.prompt_ids, batch.completion_ids, pad_id=0)
    t_view = build_view(view.prompt_ids, batch.completion_ids, pad_id=0)
    assert torch.equal(s_view.targets, t_view.targets)
    with torch.no_grad():
        out = sdpg_head(model(**s_view.inputs()), model.lm_head_weight, s_view.targets,
                        teacher_hidden=model(**t_view.inputs()))
    want_t = torch.cat([direct_logprobs(tiny_model, p, c) for p, c in zip(view.prompt_ids, batch.completion_ids)])
    want_s = torch.cat([direct_logprobs(tiny_model, p, c) for p, c in zip(batch.prompt_ids, batch.completion_ids)])
    torch.testing.assert_close(out.teacher_logp.double(), want_t, atol=2e-5, rtol=0)
    torch.testing.assert_close(out.logp.double(), want_s, atol=2e-5, rtol=0)
    # per-token KL is ~0 exactly where the teacher saw no context, and clearly not elsewhere
    lens = batch.completion_lengths.tolist()
    kl = out.kl_teacher.split(lens)
    assert kl[1].abs().max() < 1e-6
    assert kl[2].max() > 1e-4


def test_kl_is_zero_when_context_is_empty(tiny_model, tokenizer):
    batch = make_batch(tokenizer, ["1+1?"], ["2", "3"], [1, 0], ["", ""], group_size=2)
    view = build_teacher_view(tokenizer, batch, sources=["env"], template=TEMPLATE, max_context_length=64)
    assert view.prompt_ids == batch.prompt_ids and view.contexts == ["", ""]
    model = CompletionModel(tiny_model)
    s = build_view(batch.prompt_ids, batch.completion_ids, 0)
    t = build_view(view.prompt_ids, batch.completion_ids, 0)
    with torch.no_grad():
        out = sdpg_head(model(**s.inputs()), model.lm_head_weight, s.targets, teacher_hidden=model(**t.inputs()))
    assert out.kl_teacher.abs().max() < 1e-6


def test_context_truncated_never_the_header(tokenizer):
    batch = make_batch(tokenizer, ["Q?"], ["a"], [0], ["x" * 500], group_size=1)
    view = build_teacher_view(tokenizer, batch, sources=["env"], template=TEMPLATE, max_context_length=50)
    assert view.truncated == [True] and view.context_tokens == [500]
    assert view.contexts[0] == "x" * 50 + TRUNCATION_MARK
    text = tokenizer.decode(view.prompt_ids[0])
    assert text.startswith("<|user|>\nQ?") and text.endswith("\n<|assistant|>\n")  # header and gen prompt intact
    k = generation_prompt_len(tokenizer)
    assert k > 0 and view.prompt_ids[0][-k:] == batch.prompt_ids[0][-k:]


def test_teacher_prompt_must_end_with_generation_prompt(tokenizer):
    student = encode_prompt(tokenizer, "Q?")
    ids = teacher_prompt_ids(tokenizer, "Q?", "ctx", student, template=TEMPLATE)
    assert ids[-3:] == student[-3:]
    with pytest.raises(ValueError, match="generation prompt"):
        teacher_prompt_ids(tokenizer, "Q?", "ctx", student[:-1] + [99], template=TEMPLATE)


def test_context_sources_combine_and_sibling_is_never_self(tokenizer):
    batch = make_batch(tokenizer, ["P0", "P1"], ["good A", "bad B", "bad C", "bad D"], [1, 0, 0, 0],
                       ["env0", "env1", "env2", "env3"], group_size=2)
    assert sibling_solution(batch, 1, 0.5) == "Correct solution:\ngood A"
    assert sibling_solution(batch, 0, 0.5) == ""  # the only success is the sample itself
    assert sibling_solution(batch, 3, 0.5) == ""  # no success in group 1
    ctx = build_contexts(batch, ["env", "sibling"], 0.5)
    assert ctx[1] == "env1\n\nCorrect solution:\ngood A" and ctx[0] == "env0"
    ctx = build_contexts(batch, ["reference", "feedback"], 0.5)
    assert "Reference solution:\nsolution 0" in ctx[1] and "Reference answer: 0" in ctx[1]
    assert "feedback 1" in ctx[1] and "feedback 0" not in ctx[1]
    with pytest.raises(ValueError, match="unknown context source"):
        build_contexts(batch, ["oracle"], 0.5)


def test_teacher_kinds_and_ema(tiny_model):
    policy = CompletionModel(tiny_model)
    teacher, ref = make_teacher_and_ref(policy, "live", needs_ref=False)
    assert teacher is None and ref is None
    teacher, ref = make_teacher_and_ref(policy, "base", needs_ref=True)
    assert teacher is ref and not any(p.requires_grad for p in teacher.parameters())
    teacher, _ = make_teacher_and_ref(policy, "ema", needs_ref=False)
    before = [p.clone() for p in teacher.parameters()]
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(1.0)
    ema_update_(teacher, policy, 0.25)
    for b, t, s in zip(before, teacher.parameters(), policy.parameters()):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)
