"""Benchmark: the fast sampler (sdpg_train.core.sampler) vs HF ``generate``, same model, prompts, seed and settings.

Both sample the rollout way (temperature/top-p/top-k from the flags, the trainer's neutral processors, EOS and
max_new_tokens as the trainer sets them) from the same left-padded batch: ``--prompts`` Arith prompts (byte
tokenizer, chat template) × ``--group`` samples each. Repeats are interleaved (hf, fast, hf, fast, ...) after one
warm-up each, every repeat from the same seed for both, so the run also checks that the two draw identical tokens.
Tokens/s counts the completion tokens kept (up to and including EOS). Prints one JSON line per preset: both
rates (median, min, max over repeats), the per-repeat ratio fast/hf (median, min, max) and ``identical_tokens``.

Presets (``--preset``, several allowed):
  demo       the CPU learning demo: byte vocabulary (259), hidden 128, 2 layers, 64 prompts × 4, 16 tokens
  vs_trl     benchmarks/vs_trl.py: head of 151,936 rows, hidden 64, 2 layers, 1 prompt × 8, 256 tokens
  train_step benchmarks/train_step.py's default size: vocab 32,768, hidden 256, 4 layers, 4 × 4, 128 tokens
  varied     demo-sized model whose EOS logit is raised so completions end at varied lengths (rows finish early)
  qwen2.5-0.5b  Qwen2.5-0.5B's shape from a config (random weights), 4 × 8, 256 tokens (for a GPU)

    python benchmarks/sampler.py                                   # demo, vs_trl, train_step, varied; 1 thread
    python benchmarks/sampler.py --preset demo --repeats 5
    python benchmarks/sampler.py --device cuda --preset qwen2.5-0.5b --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sdpg_train.core.rollout import NEUTRAL_SAMPLING, encode_prompt, left_pad  # noqa: E402
from sdpg_train.core.sampler import sample  # noqa: E402
from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm  # noqa: E402

PRESETS = {
    "demo": dict(vocab=259, hidden=128, layers=2, heads=4, prompts=64, group=4, tokens=16),
    "vs_trl": dict(vocab=151_936, hidden=64, layers=2, heads=4, prompts=1, group=8, tokens=256),
    "train_step": dict(vocab=32_768, hidden=256, layers=4, heads=4, prompts=4, group=4, tokens=128),
    "varied": dict(vocab=259, hidden=128, layers=2, heads=4, prompts=16, group=4, tokens=64, eos_boost=0.6),
    "qwen2.5-0.5b": dict(vocab=151_936, hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, prompts=4,
                         group=8, tokens=256),
}


def build(p: dict, device: str, dtype: torch.dtype):
    if "kv_heads" in p:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        torch.manual_seed(0)
        model = Qwen2ForCausalLM(Qwen2Config(
            vocab_size=p["vocab"], hidden_size=p["hidden"], intermediate_size=p["intermediate"],
            num_hidden_layers=p["layers"], num_attention_heads=p["heads"], num_key_value_heads=p["kv_heads"],
            max_position_embeddings=32768, tie_word_embeddings=True, pad_token_id=0, eos_token_id=1))
    else:
        model = tiny_causal_lm(vocab_size=p["vocab"], hidden_size=p["hidden"], num_layers=p["layers"],
                               num_heads=p["heads"])
    model = model.to(device, dtype).eval()
    if p.get("eos_boost"):  # point the EOS row along the mean final hidden state: completions end early, unevenly
        with torch.no_grad():
            h = model.model(input_ids=torch.randint(3, 259, (8, 32), device=device)).last_hidden_state.mean((0, 1))
            model.lm_head.weight[1] = (h / h.norm() * p["eos_boost"]).to(model.lm_head.weight.dtype)
    return model


def prompts(n: int, group: int, tok) -> list[list[int]]:
    import gymnasium as gym

    import sdpg_envs  # noqa: F401

    env = gym.make("sdpg/Arith-v0").unwrapped
    out = []
    for i in range(n):
        env.reset(seed=i)
        out += [encode_prompt(tok, env.prompt_for(env.problem))] * group
    return out


def kept_tokens(rows: torch.Tensor, eos: int) -> int:
    """Completion tokens up to and including the first EOS (pad after it is not generated work)."""
    hit = rows == eos
    first = torch.where(hit.any(1), hit.float().argmax(1) + 1, torch.full_like(rows[:, 0], rows.shape[1]))
    return int(first.sum())


def run(name: str, a: argparse.Namespace) -> dict:
    p = PRESETS[name]
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[a.dtype]
    model = build(p, a.device, dtype)
    tok = byte_tokenizer()
    ids, mask = left_pad(prompts(p["prompts"], p["group"], tok), 0)
    ids, mask = ids.to(a.device), mask.to(a.device)
    settings = dict(temperature=a.temperature, top_p=a.top_p, top_k=a.top_k)

    def hf():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=p["tokens"], do_sample=True,
                             pad_token_id=0, eos_token_id=[1], use_cache=True, **settings, **NEUTRAL_SAMPLING)
        return out[:, ids.shape[1]:]

    def fast():
        return sample(model, ids, mask, max_new_tokens=p["tokens"], pad_id=0, eos_ids=[1], **settings)

    def timed(fn, seed: int) -> tuple[float, torch.Tensor]:
        torch.manual_seed(seed)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    rates: dict[str, list[float]] = {"hf": [], "fast": []}
    identical, tokens = True, 0
    for rep in range(a.repeats + 1):  # the first round is warm-up
        (t_hf, out_hf), (t_fast, out_fast) = timed(hf, rep), timed(fast, rep)
        identical &= out_hf.shape == out_fast.shape and bool(torch.equal(out_hf, out_fast))
        if rep:
            tokens = kept_tokens(out_hf.cpu(), 1)
            rates["hf"].append(tokens / t_hf)
            rates["fast"].append(kept_tokens(out_fast.cpu(), 1) / t_fast)
    ratios = [f / h for f, h in zip(rates["fast"], rates["hf"])]
    row = {"preset": name, "device": a.device, "dtype": a.dtype, "threads": torch.get_num_threads(),
           "rows": ids.shape[0], "prompt_len": ids.shape[1], "max_new_tokens": p["tokens"], "vocab": p["vocab"],
           "tokens_per_run": tokens, "repeats": a.repeats, **settings}
    for k, v in rates.items():
        row.update({f"{k}_tok_s": round(statistics.median(v), 1), f"{k}_tok_s_min": round(min(v), 1),
                    f"{k}_tok_s_max": round(max(v), 1)})
    row.update(ratio=round(statistics.median(ratios), 3), ratio_min=round(min(ratios), 3),
               ratio_max=round(max(ratios), 3), identical_tokens=identical)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", nargs="+", choices=sorted(PRESETS), default=["demo", "vs_trl", "train_step", "varied"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    for name in a.preset:
        print(json.dumps(run(name, a)), flush=True)


if __name__ == "__main__":
    main()
