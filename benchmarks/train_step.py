"""Benchmark: one optimizer step of SDPG vs GRPO on the same model and the same rollout batch.

Both trainers start from the same random Qwen2-style model and learn from one fixed batch (B prompts of
``sdpg/Arith-v0`` × G completions of ``--length`` random byte tokens, rewards from the env's verifier mixed with
random 0/1 so advantages are non-zero, privileged context = the env's reference solution + verifier
feedback). Timed: :meth:`SDPGTrainer.learn` = advantages + teacher view + reference log-probs + teacher
forward (no grad) + student forward/backward through the chunked head + AdamW step; generation is excluded
(it is identical for both methods). Methods:

* ``sdpg``     β = 1e-3 (full-vocabulary KL to the live teacher), α = 1e-3 URKL (frozen reference model);
* ``grpo``     β = 0, α = 0 (plain GRPO: no teacher, no reference model) — the baseline of ``ratio``;
* ``grpo_ref`` β = 0, α = 1e-3 (GRPO with the same reference term as SDPG);
* ``sdpg_noref`` β = 1e-3, α = 0 (SDPG's teacher KL alone: the like-for-like comparison with ``grpo``).

``ratio`` = sdpg / grpo (the issue's headline figure, although sdpg also pays for the reference model),
``ratio_vs_grpo_ref`` = sdpg / grpo_ref and ``ratio_noref_vs_grpo`` = sdpg_noref / grpo compare equal
reference settings. All trainers use ``fused_head`` (the head's gradient formed in its forward pass) unless
``--no-fused-head`` is given.

Issue 18's optimisations are on in every variant above (``share_prefix``, ``skip_zero_advantage``; packing is
off by default). ``--ablate`` adds variants with them off: ``*_plain`` (all off), ``*_noshare`` (no shared
prefixes), ``*_packed`` (packing instead of sharing), ``grpo_noskip`` (zero-advantage samples forwarded), and the
ratios ``ratio_plain``, ``*_speedup_*`` and ``teacher_forward_speedup_from_sharing`` (median teacher-forward
time without / with shared prefixes). ``--long-prompt`` uses MATH problems with their reference solution as
the privileged context (prompt + context ≥ 4 × ``--length``). ``--zero-groups K`` gives the first K groups equal
rewards (A = 0). ``--memory`` adds each variant's step peak, measured in a fresh process per variant
(CUDA allocator peak, or the resident high-water mark reset before the step on CPU). ``--variants a,b`` runs
only those.

Repeats are interleaved (sdpg, grpo, grpo_ref, sdpg, ...) and the median is reported, so load on a shared
machine hits all methods alike. ``*_cpu_s`` and ``ratio_cpu`` are the same for the process's CPU time (all its
threads): with ``--threads 1`` the step's compute, which other processes' load moves far less than wall time.
Prints one JSON line.

    python benchmarks/train_step.py                 # hidden 256, 4 layers, vocab 32k, 4×4 completions of 128
    python benchmarks/train_step.py --quick         # small, < 1 minute on CPU
    python benchmarks/train_step.py --no-fused-head # the two-pass head (recomputes logits in backward)
    python benchmarks/train_step.py --device cuda --preset qwen2.5-0.5b --dtype bfloat16 --length 512
    python benchmarks/train_step.py --ablate --memory                # each optimisation off, peak memory
    python benchmarks/train_step.py --ablate --long-prompt --length 128  # MATH + reference solution

``--dtype bfloat16`` is mixed precision (fp32 master weights, bf16 autocast compute: ``torch_dtype``);
``--preset qwen2.5-0.5b`` builds Qwen2.5-0.5B's exact shape (hidden 896, 24 layers, 14/2 heads, MLP 4864, vocab
151,936, tied embeddings) from a config with random weights: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import gymnasium as gym  # noqa: E402

import sdpg_envs  # noqa: E402,F401
from sdpg_train.config import SDPGConfig  # noqa: E402
from sdpg_train.core.rollout import EnvSource, RolloutBatch, encode_prompt, problem_seed  # noqa: E402
from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm  # noqa: E402
from sdpg_train.training.trainer import SDPGTrainer  # noqa: E402

METHODS = {"sdpg": dict(loss="sdpg", beta=1e-3, alpha=1e-3), "grpo": dict(loss="grpo", alpha=0.0),
           "grpo_ref": dict(loss="grpo", alpha=1e-3), "sdpg_noref": dict(loss="sdpg", beta=1e-3, alpha=0.0)}
OFF = dict(share_prefix=False, pack_sequences=False, skip_zero_advantage=False)
"""Every issue-18 optimisation off: the ``*_plain`` variants (``--ablate``)."""
ABLATIONS = {
    "sdpg_plain": dict(METHODS["sdpg"], **OFF), "grpo_plain": dict(METHODS["grpo"], **OFF),
    "sdpg_noshare": dict(METHODS["sdpg"], share_prefix=False),
    "grpo_noshare": dict(METHODS["grpo"], share_prefix=False),
    "sdpg_packed": dict(METHODS["sdpg"], share_prefix=False, pack_sequences=True),
    "grpo_packed": dict(METHODS["grpo"], share_prefix=False, pack_sequences=True),
    "grpo_noskip": dict(METHODS["grpo"], skip_zero_advantage=False),
}
VARIANTS = {**METHODS, **ABLATIONS}


def long_prompt_batch(tok, prompts: int, group: int, length: int, data: Path, seed: int = 0) -> RolloutBatch:
    """MATH problems whose problem + reference solution has ≥ 4 × ``length`` tokens; the privileged context is
    the reference solution (as ``context_sources=["reference"]`` gives), completions random bytes. Without the
    data folder, synthetic problems with step-by-step references of the same length."""
    path = data / "math" / "test.jsonl"
    if not path.is_file():  # no data on this machine (a GPU box): synthetic long references, same lengths
        rows = [{"problem": f"Problem {b}: compute the sum of the first {b + 20} odd numbers and explain.",
                 "solution": " ".join(f"Step {k}: the running total after {k} odd numbers is {k * k}." for k in
                                      range(1, 2 + 4 * length // 50)), "answer": str((b + 20) ** 2)}
                for b in range(prompts)]
    else:
        rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows = [r for r in rows if len(tok(r["problem"] + r["solution"], add_special_tokens=False)["input_ids"])
            >= 4 * length and len(r["solution"]) < 6 * length][:prompts]
    if len(rows) < prompts:
        raise SystemExit(f"only {len(rows)} MATH problems are long enough for --length {length}")
    gen = torch.Generator().manual_seed(seed)
    probs = [r for r in rows for _ in range(group)]
    comps = [torch.randint(3, 259, (length - 1,), generator=gen).tolist() + [tok.eos_token_id] for _ in probs]
    rewards = torch.randint(0, 2, (len(probs),), generator=gen).float()
    return RolloutBatch(
        prompt_ids=[encode_prompt(tok, r["problem"]) for r in probs], completion_ids=comps,
        prompts=[r["problem"] for r in probs], completions=[tok.decode(c, skip_special_tokens=True) for c in comps],
        rewards=rewards, statuses=["scored"] * len(probs),
        contexts=[f"Reference solution:\n{r['solution']}" for r in probs], answers=[r["answer"] for r in probs],
        group_index=torch.arange(len(probs)) // group, sources=["math"] * len(probs),
        clipped=torch.zeros(len(probs), dtype=torch.bool), group_size=group)


def make_batch(tok, prompts: int, group: int, length: int, seed: int = 0, zero_groups: int = 0) -> RolloutBatch:
    """A fixed rollout batch: real Arith problems, random completions, verifier results and contexts."""
    src = EnvSource(gym.make("sdpg/Arith-v0"), name="sdpg/Arith-v0")
    gen = torch.Generator().manual_seed(seed)
    probs = [src.sample(problem_seed(seed, 0, 1, b)) for b in range(prompts) for _ in range(group)]
    comps = [torch.randint(3, 259, (length - 1,), generator=gen).tolist() + [tok.eos_token_id] for _ in probs]
    texts = [tok.decode(c, skip_special_tokens=True) for c in comps]
    results = src.score(probs, texts)
    noise = torch.randint(0, 2, (len(probs),), generator=gen).float()
    noise[: zero_groups * group] = 0.0  # the first groups: equal rewards (A = 0), as when all fail or all succeed
    return RolloutBatch(
        prompt_ids=[encode_prompt(tok, src.prompt(p)) for p in probs], completion_ids=comps,
        prompts=[src.prompt(p) for p in probs], completions=texts,
        rewards=torch.tensor([r.score for r in results]) + noise, statuses=[r.status for r in results],
        contexts=[src.context(p, r) for p, r in zip(probs, results)], answers=[p.answer for p in probs],
        group_index=torch.arange(len(probs)) // group, sources=[src.name] * len(probs),
        clipped=torch.zeros(len(probs), dtype=torch.bool), group_size=group, problems=probs, results=results)


def build_base(a):
    if a.preset:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        a.hidden, a.layers, a.vocab = 896, 24, 151_936
        torch.manual_seed(0)
        return Qwen2ForCausalLM(Qwen2Config(
            vocab_size=a.vocab, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
            num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True, pad_token_id=0,
            eos_token_id=1))
    return tiny_causal_lm(vocab_size=a.vocab, hidden_size=a.hidden, num_layers=a.layers,
                          num_heads=max(a.hidden // 64, 2), intermediate_size=a.hidden * 3)


def make_trainer(a, base, tok, changes: dict) -> SDPGTrainer:
    cfg = SDPGConfig(model_name_or_path=None, device=a.device, num_prompts_per_step=a.prompts,
                     num_generations=a.group, max_steps=100, learning_rate=1e-6, max_context_length=4096,
                     max_tokens_per_micro_batch=a.micro_tokens, output_dir="/tmp/sdpg-bench-train-step",
                     disable_tqdm=True, save_final=False, log_completions=False, head_chunk_size=a.head_chunk,
                     fused_head=a.fused_head, torch_dtype=a.dtype,
                     gradient_checkpointing=a.gradient_checkpointing, **changes)
    return SDPGTrainer(copy.deepcopy(base), env=["sdpg/Arith-v0"], args=cfg, processing_class=tok)


def peak_memory_mb(name: str, procs: int) -> dict:
    """Peak memory of one step of ``name``, each of ``procs`` measurements in a fresh process (:func:`only`):
    median, min, max and spread (benchmarks/peak_memory.py)."""
    from peak_memory import repeat_fresh, spread

    rows = repeat_fresh([sys.executable, __file__, "--only", name, *sys.argv[1:]], procs)
    return spread([r["peak_mb"] for r in rows])


def only(a, base, tok, batch) -> None:
    """One variant's step peak (the second step: the optimizer state exists) above what was allocated before it:
    the allocator's own peak (CUDA ``max_memory_allocated``; on CPU the tensor bytes from the profiler's allocation
    events), so model construction does not hide it and the heap's layout does not move it."""
    from peak_memory import PeakMemory

    trainer = make_trainer(a, base, tok, VARIANTS[a.only])
    del base
    trainer.learn(batch, step=1)
    gc.collect()
    with PeakMemory(a.device) as peak:
        trainer.learn(batch, step=2)
    print(json.dumps({"variant": a.only, "peak_mb": round(peak.mb, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="hidden 128, 2 layers, vocab 4096, 4×4 × 64 tokens")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--length", type=int, default=128, help="completion tokens per sample")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--micro-tokens", type=int, default=16384, help="max_tokens_per_micro_batch")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="compute dtype (bfloat16: mixed precision, fp32 master weights)")
    ap.add_argument("--preset", choices=["qwen2.5-0.5b"], default=None)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--head-chunk", type=int, default=0, help="head_chunk_size (0 = auto)")
    ap.add_argument("--fused-head", action=argparse.BooleanOptionalAction, default=True,
                    help="SDPGConfig.fused_head (default on)")
    ap.add_argument("--long-prompt", action="store_true",
                    help="MATH problems + reference solution as context, prompt + context ≥ 4 × --length")
    ap.add_argument("--data", default=str(Path(os.environ.get("SDPG_SHARED_DIR", ROOT.parent / "shared")) / "data"))
    ap.add_argument("--ablate", action="store_true", help="also time each optimisation off (*_plain, *_noshare...)")
    ap.add_argument("--variants", default="", help="comma-separated variants to run (default: the four methods)")
    ap.add_argument("--zero-groups", type=int, default=0, help="groups with equal rewards (A = 0)")
    ap.add_argument("--memory", action="store_true", help="peak memory per variant, each in a fresh process")
    ap.add_argument("--mem-procs", type=int, default=3, help="fresh processes per variant for --memory (spread)")
    ap.add_argument("--only", default=None, help=argparse.SUPPRESS)  # internal: one variant's peak memory
    a = ap.parse_args()
    if a.quick:
        a.hidden, a.layers, a.vocab, a.prompts, a.group, a.length, a.repeats = 128, 2, 4096, 4, 4, 64, 3
    if a.threads:
        torch.set_num_threads(a.threads)
    tok = byte_tokenizer()
    base = build_base(a)
    batch = (long_prompt_batch(tok, a.prompts, a.group, a.length, Path(a.data)) if a.long_prompt
             else make_batch(tok, a.prompts, a.group, a.length, zero_groups=a.zero_groups))
    if a.only:
        only(a, base, tok, batch)
        return
    names = a.variants.split(",") if a.variants else list(METHODS) + (list(ABLATIONS) if a.ablate else [])
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    trainers = {name: make_trainer(a, base, tok, VARIANTS[name]) for name in names} if a.repeats else {}
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    teacher: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, dict] = {}
    for rep in range(a.repeats + 1 if a.repeats else 0):  # the first round is warm-up; --repeats 0: memory only
        for name, trainer in trainers.items():
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            last[name] = trainer.learn(batch, step=rep + 1)
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            if rep:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                teacher[name].append(last[name]["perf/teacher_forward_s"])
    med = {n: statistics.median(t) for n, t in times.items() if t}
    tmed = {n: statistics.median(t) for n, t in teacher.items() if t}
    cmed = {n: statistics.median(t) for n, t in cpu.items() if t}
    s = last.get(names[0], {})
    out = {
        "device": a.device, "threads": torch.get_num_threads(), "dtype": a.dtype, "preset": a.preset,
        "gradient_checkpointing": a.gradient_checkpointing, "hidden": a.hidden,
        "layers": a.layers, "vocab": a.vocab, "fused_head": a.fused_head, "long_prompt": a.long_prompt,
        "n_sequences": len(batch), "completion_len": a.length, "zero_adv_groups": a.zero_groups,
        "student_prompt_len": sum(map(len, batch.prompt_ids)) / len(batch),
        "context_tokens_mean": round(s.get("distill/context_len", 0.0), 1), "repeats": a.repeats,
        **{f"{n}_step_s": round(med[n], 4) for n in med}, **{f"{n}_cpu_s": round(cmed[n], 4) for n in cmed},
    }

    def ratio(key: str, num: str, den: str, table: dict = med) -> None:
        if num in table and den in table:
            out[key] = round(table[num] / table[den], 3)

    ratio("ratio", "sdpg", "grpo")  # the headline figure
    ratio("ratio_cpu", "sdpg", "grpo", cmed)
    ratio("ratio_vs_grpo_ref", "sdpg", "grpo_ref")
    ratio("ratio_noref_vs_grpo", "sdpg_noref", "grpo")
    ratio("ratio_plain", "sdpg_plain", "grpo_plain")  # both with every optimisation off
    ratio("ratio_packed", "sdpg_packed", "grpo_packed")
    ratio("sdpg_speedup_vs_plain", "sdpg_plain", "sdpg")
    ratio("grpo_speedup_vs_plain", "grpo_plain", "grpo")
    ratio("sdpg_speedup_from_sharing", "sdpg_noshare", "sdpg")
    ratio("grpo_speedup_from_sharing", "grpo_noshare", "grpo")
    ratio("grpo_speedup_from_skip", "grpo_noskip", "grpo")
    ratio("teacher_forward_speedup_from_sharing", "sdpg_noshare", "sdpg", tmed)
    for n in tmed:
        if "sdpg" in n:
            out[f"{n}_teacher_forward_s"] = round(tmed[n], 4)
    if "sdpg" in last:
        m = last["sdpg"]
        out.update({"sdpg_teacher_view_s": round(m["perf/teacher_view_s"], 4),
                    "sdpg_logprob_pass_s": round(m["perf/logprob_pass_s"], 4),
                    "sdpg_student_fwd_bwd_s": round(m["perf/student_fwd_bwd_s"], 4),
                    "sdpg_layout_shared_frac": round(m["layout/shared_frac"], 3)})
    if "grpo" in last:
        out["grpo_student_fwd_bwd_s"] = round(last["grpo"]["perf/student_fwd_bwd_s"], 4)
        out["grpo_skipped_student_frac"] = round(last["grpo"]["skipped/student_forward"], 3)
    if a.memory:
        spreads = {n: peak_memory_mb(n, a.mem_procs) for n in names}
        mem = {n: m["median"] for n, m in spreads.items()}
        out.update({f"{n}_peak_mb": m for n, m in mem.items()})
        out.update({f"{n}_peak_spread_pct": m["spread_pct"] for n, m in spreads.items()})
        out["mem_procs"] = a.mem_procs
        ratio("peak_ratio", "sdpg", "grpo", mem)
        ratio("peak_ratio_plain", "sdpg_plain", "grpo_plain", mem)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
