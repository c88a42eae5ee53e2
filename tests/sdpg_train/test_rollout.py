"""Rollouts with the tiny model on sdpg/Arith-v0: shapes, masks, group layout, exact ids, stop/EOS handling."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import sdpg_envs  # noqa: F401  (registers sdpg/*)
from sdpg_train.core.rollout import (
    EnvSource,
    choose_sources,
    collect_rollouts,
    encode_prompt,
    generate,
    left_pad,
    make_sources,
    problem_seed,
    right_pad,
    trim_completion,
)

GEN = {"max_completion_length": 12, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "stop_strings": []}


def _collect(model, tok, sources, *, step=1, b=3, g=4, gen=GEN, gbs=5, weights=None, seed=0):
    return collect_rollouts(model, tok, sources, weights or [1.0] * len(sources), step=step, num_prompts=b,
                            group_size=g, gen=gen, generation_batch_size=gbs, max_prompt_length=256, seed=seed)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def arith():
    return [EnvSource(gym.make("sdpg/Arith-v0"), name="sdpg/Arith-v0")]


@pytest.mark.timeout(120)
def test_rollout_shapes_masks_and_group_layout(tiny_model, tokenizer, arith):
    batch = _collect(tiny_model, tokenizer, arith)
    n = 3 * 4
    assert len(batch) == n and batch.rewards.shape == (n,) and batch.clipped.shape == (n,)
    assert batch.group_index.tolist() == [i // 4 for i in range(n)]
    for i in range(n):  # a group shares its problem and prompt ids; groups differ
        g0 = (i // 4) * 4
        assert batch.problems[i].id == batch.problems[g0].id and batch.prompt_ids[i] == batch.prompt_ids[g0]
    assert len({batch.problems[i * 4].id for i in range(3)}) == 3
    ids, mask = batch.padded_completions(pad_id=0)
    assert ids.shape[0] == n and mask.sum(1).tolist() == batch.completion_lengths.tolist()
    for i, c in enumerate(batch.completion_ids):
        assert 1 <= len(c) <= 12
        eos_at = [k for k, t in enumerate(c) if t == tokenizer.eos_token_id]
        assert eos_at in ([], [len(c) - 1])  # EOS only as the last kept token
        assert bool(batch.clipped[i]) == (not eos_at and len(c) == 12)
        assert batch.completions[i] == tokenizer.decode(c, skip_special_tokens=True)  # verifier saw these ids
        assert batch.statuses[i] == batch.results[i].status and batch.rewards[i] == batch.results[i].score
        assert "Reference" in batch.contexts[i]  # the env's context (reference + feedback)
    assert batch.prompt_ids[0] == encode_prompt(tokenizer, batch.prompts[0])


@pytest.mark.timeout(120)
def test_same_seed_and_step_give_same_problems_and_samples(tiny_model, tokenizer, arith):
    torch.manual_seed(1)
    a = _collect(tiny_model, tokenizer, arith, step=5)
    torch.manual_seed(1)
    b = _collect(tiny_model, tokenizer, arith, step=5)
    c = _collect(tiny_model, tokenizer, arith, step=6)
    assert [p.id for p in a.problems] == [p.id for p in b.problems] and a.completion_ids == b.completion_ids
    assert [p.id for p in a.problems] != [p.id for p in c.problems]
    assert problem_seed(0, 0, 5, 1) != problem_seed(0, 1, 5, 1)  # ranks draw different problems


def test_trim_completion_eos_stop_and_clipping(tokenizer):
    eos = {tokenizer.eos_token_id}
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    row = enc("ab") + [1] + [0, 0]
    assert trim_completion(row, eos, tokenizer, []) == (enc("ab") + [1], False)
    row = enc("x = 4\n###tail") + [0, 0]
    ids, clipped = trim_completion(row, eos, tokenizer, ["###"])
    assert tokenizer.decode(ids) == "x = 4\n###" and not clipped
    ids, clipped = trim_completion(enc("abc"), eos, tokenizer, ["###"])
    assert ids == enc("abc") and clipped
    # a pad id sampled mid-completion is a real token and is kept
    row = enc("a") + [0] + enc("b")
    assert trim_completion(row, eos, tokenizer, []) == (row, True)


def test_explicit_padding_ignores_tokenizer_padding_side():
    ids, mask = left_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
    ids, mask = right_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [7, 0]] and mask.tolist() == [[True, True], [True, False]]


@pytest.mark.timeout(120)
def test_stop_strings_in_generation(tiny_model, tokenizer, arith):
    # the random tiny model emits bytes uniformly-ish; a one-byte stop string set is hit quickly
    gen = {**GEN, "max_completion_length": 24, "stop_strings": ["a", "e", "i", "o", "u"]}
    batch = _collect(tiny_model, tokenizer, arith, gen=gen, b=2, g=4)
    for c, clipped in zip(batch.completion_ids, batch.clipped):
        raw = tokenizer.decode(c, skip_special_tokens=False)
        hits = [s for s in "aeiou" if s in raw]
        if hits:  # cut right after the first stop string
            assert raw[-1] in "aeiou" and not any(s in raw[:-1] for s in "aeiou") and not clipped


def test_make_sources_and_weighted_choice():
    sources, weights = make_sources(["sdpg/Arith-v0", gym.make("sdpg/Arith-v0")], [], {}, [3.0, 1.0])
    assert [s.name for s in sources] == ["sdpg/Arith-v0", "sdpg/Arith-v0"] and weights == [3.0, 1.0]
    picks = choose_sources(4000, weights, seed=0, rank=0, step=1)
    assert 0.70 < picks.count(0) / 4000 < 0.80
    with pytest.raises(ValueError, match="cannot make env"):
        make_sources("sdpg/NoSuchEnv-v0", [], {}, None)
    with pytest.raises(TypeError, match="ReasoningEnv"):
        make_sources(object(), [], {}, None)


def test_model_generation_config_processors_are_switched_off(tiny_model, tokenizer):
    """Samples come from pi_theta: a repetition penalty / min_p in the model's generation_config is ignored."""
    prompts = [encode_prompt(tokenizer, "abcabc")] * 3
    torch.manual_seed(3)
    plain = generate(tiny_model, tokenizer, prompts, GEN)
    tiny_model.generation_config.repetition_penalty = 5.0
    tiny_model.generation_config.no_repeat_ngram_size = 1
    torch.manual_seed(3)
    assert generate(tiny_model, tokenizer, prompts, GEN) == plain


@pytest.mark.timeout(120)
def test_verification_of_a_chunk_overlaps_generation_of_the_next(tiny_model, tokenizer, monkeypatch):
    import threading
    import time

    from sdpg_envs.types import Problem, VerifierResult
    from sdpg_train.core import rollout

    generated = []  # number of generate() calls finished, seen from the verifier thread
    original = rollout.generate

    def counting_generate(*args, **kwargs):
        out = original(*args, **kwargs)
        generated.append(1)
        return out

    class SlowTask:
        name = "test/Slow-v0"
        seen: list = []

        def sample(self, seed):
            return Problem(f"s{seed % 10}", "hello")

        def prompt(self, problem):
            return problem.prompt

        def score(self, problems, completions):
            before = len(generated)
            time.sleep(0.4)
            self.seen.append((threading.current_thread().name, before, len(generated)))
            return [VerifierResult(0.0, "incorrect") for _ in completions]

        def context(self, problem, result):
            return ""

    monkeypatch.setattr(rollout, "generate", counting_generate)
    task = SlowTask()
    batch = _collect(tiny_model, tokenizer, [task], b=3, g=2, gbs=2)  # 3 generation chunks
    assert len(batch) == 6 and len(task.seen) == 3
    assert all(name.startswith("sdpg-verify") for name, _, _ in task.seen)
    assert task.seen[0][2] >= 2  # chunk 1 was generated while chunk 0 was being verified


@pytest.mark.timeout(120)
def test_lm_head_wider_than_the_tokenizer(tokenizer, arith):
    """Qwen-style: the LM head has more rows than the tokenizer has tokens; unknown ids stay in the completion
    ids (trained on) but are dropped from the verifier's text instead of crashing the decode."""
    from sdpg_train.tiny import tiny_causal_lm

    wide = tiny_causal_lm(vocab_size=2048)  # byte tokenizer: 259 tokens
    batch = _collect(wide, tokenizer, arith, b=2, g=4, gen={**GEN, "max_completion_length": 16})
    assert any(t >= len(tokenizer) for c in batch.completion_ids for t in c)
    assert all(isinstance(t, str) for t in batch.completions)
