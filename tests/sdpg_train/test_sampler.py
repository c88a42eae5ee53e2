"""The fast sampler draws exactly HF ``generate``'s tokens for the same seed, and from the right distribution."""

from __future__ import annotations

import math

import pytest
import torch

from sdpg_train.core.rollout import NEUTRAL_SAMPLING, encode_prompt, generate, left_pad
from sdpg_train.core.sampler import BufferLayer, sample, unsupported_reason
from sdpg_train.evaluation.generation import generate_batch
from sdpg_train.tiny import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _eos_likely(model, boost: float = 1.0):
    """Point the EOS row of the (tied) head along the mean final hidden state: rows end at varied steps."""
    with torch.no_grad():
        h = model.model(input_ids=torch.randint(3, 259, (8, 30))).last_hidden_state.mean((0, 1))
        model.lm_head.weight[1] = h / h.norm() * boost
    return model.eval()


def _batch(seed: int, groups: int = 4, g: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts of varied lengths, each repeated g times (a GRPO group)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 25, (groups,), generator=gen).tolist()
    base = [torch.randint(3, 259, (n,), generator=gen).tolist() for n in lengths]
    return left_pad([p for p in base for _ in range(g)], 0)


def _hf(model, tok, ids, mask, steps, temperature, top_k, top_p, stop):
    kw = dict(max_new_tokens=steps, do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k, pad_token_id=0,
              eos_token_id=[1], use_cache=True, **NEUTRAL_SAMPLING)
    if stop:
        kw.update(stop_strings=stop, tokenizer=tok)
    return model.generate(input_ids=ids, attention_mask=mask, **kw)[:, ids.shape[1]:]


SETTINGS = [(1.0, 0, 1.0, []), (0.7, 20, 1.0, []), (1.3, 0, 0.9, []), (1.0, 50, 0.8, ["a", "e"])]


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_same_tokens_and_rng_state_as_hf_generate(arch, tokenizer):
    """Left padding, shared prompts, rows ending at different steps (EOS, stop strings), temperature/top-k/top-p:
    the same tokens as ``generate`` (pad after a row ends, same number of steps) and the generator left alike."""
    model = _eos_likely(tiny_causal_lm(hidden_size=64, arch=arch))
    ended_early = 0
    for trial, (temperature, top_k, top_p, stop) in enumerate(SETTINGS):
        ids, mask = _batch(trial)
        torch.manual_seed(trial)
        want, after_hf = _hf(model, tokenizer, ids, mask, 24, temperature, top_k, top_p, stop), torch.rand(3)
        torch.manual_seed(trial)
        got = sample(model, ids, mask, max_new_tokens=24, pad_id=0, eos_ids=[1], temperature=temperature,
                     top_k=top_k, top_p=top_p, stop_strings=stop, tokenizer=tokenizer)
        assert got.shape == want.shape and torch.equal(got, want), (arch, temperature, top_k, top_p, stop)
        assert torch.equal(torch.rand(3), after_hf)  # the next draw (next chunk) is the same too
        ended_early += int(((got == 1).any(1) & (got[:, -1] == 0)).sum())
    assert ended_early >= 6  # the drop-finished-rows path ran


def test_all_rows_ending_early_and_greedy(tokenizer):
    model = _eos_likely(tiny_causal_lm(hidden_size=64), boost=4.0)
    ids, mask = _batch(7, groups=3, g=2)
    torch.manual_seed(1)
    want = _hf(model, tokenizer, ids, mask, 40, 1.0, 0, 1.0, [])
    torch.manual_seed(1)
    got = sample(model, ids, mask, max_new_tokens=40, pad_id=0, eos_ids=[1])
    assert want.shape[1] < 40 and torch.equal(got, want)  # every row hit EOS before the limit
    greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0,
                            eos_token_id=[1])[:, ids.shape[1]:]
    assert torch.equal(sample(model, ids, mask, max_new_tokens=12, pad_id=0, eos_ids=[1], do_sample=False), greedy)


def test_rollout_and_eval_backends_agree(tiny_model, tokenizer):
    """The trainer's ``generate`` and evaluation's ``generate_batch``: backend fast == backend hf, same seed."""
    prompts = [encode_prompt(tokenizer, t) for t in ("1+1=", "what is 12*3?", "x")] * 2
    gen = {"max_completion_length": 10, "temperature": 0.8, "top_p": 0.95, "top_k": 30, "stop_strings": ["e"]}
    outs = {}
    for backend in ("fast", "hf"):
        torch.manual_seed(5)
        outs[backend] = generate(tiny_model, tokenizer, prompts, {**gen, "backend": backend})
    assert outs["fast"] == outs["hf"] and tiny_model.training  # training mode restored
    for temperature in (0.0, 1.0):
        texts = {}
        for backend in ("fast", "hf"):
            torch.manual_seed(2)
            texts[backend] = generate_batch(tiny_model, tokenizer, ["2+2=", "hello there"], temperature=temperature,
                                            max_new_tokens=8, backend=backend)
        assert texts["fast"] == texts["hf"]
    with pytest.raises(ValueError, match="backend"):
        generate(tiny_model, tokenizer, prompts, {**gen, "backend": "vllm"})


def test_processors_it_does_not_apply_send_evaluation_back_to_hf(tiny_model, tokenizer):
    tiny_model.generation_config.repetition_penalty = 5.0
    assert "repetition_penalty" in unsupported_reason(tiny_model)
    assert unsupported_reason(tiny_model, NEUTRAL_SAMPLING) is None  # the trainer neutralises it
    texts = {}
    for backend in ("fast", "hf"):  # fast defers to generate, so the penalty applies in both
        torch.manual_seed(0)
        texts[backend] = generate_batch(tiny_model, tokenizer, ["abcabc"], temperature=1.0, max_new_tokens=10,
                                        backend=backend)
    assert texts["fast"] == texts["hf"]


def test_buffer_layer_refuses_to_overflow():
    layer = BufferLayer(capacity=4)
    layer.update(torch.zeros(1, 2, 3, 8), torch.zeros(1, 2, 3, 8))
    with pytest.raises(RuntimeError, match="overflowed"):
        layer.update(torch.zeros(1, 2, 2, 8), torch.zeros(1, 2, 2, 8))


def _chi2_p_value(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Upper-tail p-value of Pearson's chi-square (Wilson-Hilferty normal approximation, fine for df ≥ 3)."""
    keep = probs > 0
    n = counts.sum().item()
    expected = probs[keep].double() * n
    stat = (((counts[keep].double() - expected) ** 2) / expected).sum().item()
    df = int(keep.sum()) - 1
    z = ((stat / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])])
def test_sampled_distribution_matches_the_warped_softmax(tokenizer, device):
    """4,000 first tokens of one prompt follow softmax(logits / T) cut to top-k then top-p (chi-square), and the
    same test rejects the distribution without top-p or at another temperature (it has the power to fail).
    On CUDA, where the tokens need not equal ``generate``'s bit for bit, this is the guarantee."""
    model = tiny_causal_lm(hidden_size=64).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(2.0)  # a peaked next-token distribution (top token ~15%)
    model.to(device)
    prompt = encode_prompt(tokenizer, "sample me")
    ids, mask = left_pad([prompt] * 4000, 0)
    temperature, top_k, top_p = 0.7, 40, 0.9
    torch.manual_seed(0)
    first = sample(model, ids, mask, max_new_tokens=1, pad_id=0, eos_ids=[1], temperature=temperature,
                   top_k=top_k, top_p=top_p)[:, 0].cpu()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt], device=device)).logits[0, -1].double().cpu()

    def warped(t: float, k: int, p: float) -> torch.Tensor:
        z = logits / t
        z[z < z.topk(k).values[-1]] = -math.inf
        probs = z.softmax(-1)
        order = probs.argsort(descending=True)
        before = probs[order].cumsum(0) - probs[order]  # mass ranked above each token
        probs[order[before >= p]] = 0.0
        return probs / probs.sum()

    counts = torch.bincount(first, minlength=logits.shape[0])
    right = warped(temperature, top_k, top_p)
    assert counts[right == 0].sum() == 0  # never a token outside top-k ∩ top-p
    assert _chi2_p_value(counts, right) > 1e-3
    wrong_t = warped(1.0, top_k, top_p)
    no_top_p = warped(temperature, top_k, 1.0)
    assert _chi2_p_value(counts, wrong_t) < 1e-6 and _chi2_p_value(counts, no_top_p) < 1e-6
