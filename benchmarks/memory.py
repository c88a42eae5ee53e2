"""Benchmark: memory saved by gradient checkpointing and by LoRA (with the adapter-free reference policy).

``checkpointing``: one student forward + chunked head + backward of a Qwen2-style model on ``n × length`` tokens,
with and without ``gradient_checkpointing``. Exact figure: bytes of tensors autograd keeps for backward outside
checkpointed regions (``saved_tensors_hooks``, the activation memory); also the allocator's peak above the
weights (``peak_mb``). ``lora``: one SDPG ``learn`` step (β and α on, so a reference policy is needed) with full
fine-tuning vs LoRA; exact figure: bytes of the distinct tensors held by the trainer (parameters, gradients, AdamW
state, frozen reference); also the allocator's peak during ``learn``. Ratios are LoRA / full and on / off, from the
same run. Every variant runs in ``--procs`` fresh processes (default 3); peaks are the median over them with
``*_spread_pct`` = (max - min) / median; peak = CUDA ``max_memory_allocated`` or, on CPU, the peak of tensor bytes
from the profiler's allocation events, in an untimed pass (benchmarks/peak_memory.py).

    python benchmarks/memory.py                                  # CPU, hidden 256, 4 layers, vocab 32k
    python benchmarks/memory.py --device cuda --preset qwen2.5-0.5b --length 1024
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peak_memory import PeakMemory, repeat_fresh, spread  # noqa: E402

from sdpg_train.config import SDPGConfig  # noqa: E402
from sdpg_train.core.head import sdpg_head  # noqa: E402
from sdpg_train.core.model_io import CompletionModel, build_view, enable_gradient_checkpointing  # noqa: E402
from sdpg_train.tiny import byte_tokenizer  # noqa: E402

PRESETS = {"qwen2.5-0.5b": dict(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, vocab=151_936)}


def qwen2(a) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      max_position_embeddings=32768, tie_word_embeddings=True, pad_token_id=0, eos_token_id=1)
    return Qwen2ForCausalLM(cfg)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def checkpointing_one(a, gc: bool) -> dict:
    """One variant in this process: activation bytes saved, fwd+bwd seconds, allocator peak (its own pass)."""
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(3, a.vocab, (a.length,), generator=g).tolist() for _ in range(a.n)]
    view = build_view([[2] * 16] * a.n, seqs, pad_id=0).to(a.device)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    lm = qwen2(a)
    lm.train()
    if gc:
        enable_gradient_checkpointing(lm)
    model = CompletionModel(lm, torch.bfloat16 if a.dtype == "bfloat16" else None).to(a.device)

    def fwd_bwd() -> None:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            h = model(**view.inputs())
        # the head keeps only row statistics, so its saves (outside the hook) do not mask the decoder's
        res = sdpg_head(h, model.head_weight(), view.targets, chunk_size=1024)
        (res.logp.sum() + res.entropy.sum()).backward()
        _sync(a.device)
        model.zero_grad(set_to_none=True)

    fwd_bwd()  # warm-up
    saved[0] = 0
    t0 = time.perf_counter()
    fwd_bwd()
    dt = time.perf_counter() - t0
    saved_mb = saved[0] / 2**20
    with PeakMemory(a.device) as peak:
        fwd_bwd()
    return dict(saved_mb=round(saved_mb, 1), peak_mb=round(peak.mb, 1), s=round(dt, 3))


def checkpointing(a) -> dict:
    out = {gc: _fresh(a, "checkpointing", str(gc)) for gc in (False, True)}
    off, on = out[False], out[True]
    res = {"bench": "gradient_checkpointing", "device": a.device, "dtype": a.dtype, "hidden": a.hidden,
           "layers": a.layers, "vocab": a.vocab, "tokens": a.n * (a.length + 16), "procs": a.procs,
           "activations_saved_mb_off": off["saved_mb"], "activations_saved_mb_on": on["saved_mb"],
           "activation_ratio_on_vs_off": round(on["saved_mb"] / max(off["saved_mb"], 1e-9), 4),
           "fwd_bwd_s_off": off["s"], "fwd_bwd_s_on": on["s"], "time_ratio_on_vs_off": round(on["s"] / off["s"], 3),
           "peak_mb_off": off["peak_mb"], "peak_mb_on": on["peak_mb"],
           "peak_ratio_on_vs_off": round(on["peak_mb"] / max(off["peak_mb"], 1e-9), 4),
           "peak_spread_pct_off": off["peak_spread_pct"], "peak_spread_pct_on": on["peak_spread_pct"]}
    return res


def _fresh(a, what: str, variant: str) -> dict:
    """``--procs`` fresh processes of one variant: exact figures (must agree), median time, peak spread."""
    cmd = [sys.executable, __file__, "--one", what, variant]
    for k in ("device", "hidden", "layers", "heads", "kv_heads", "intermediate", "vocab", "n", "length", "dtype"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
    rows = repeat_fresh(cmd, a.procs)
    out = dict(rows[0])
    for k in rows[0]:
        if k not in ("peak_mb", "s") and any(r[k] != rows[0][k] for r in rows):
            out[k] = [r[k] for r in rows]  # an exact figure that moved: show every value
    peak = spread([r["peak_mb"] for r in rows])
    out.update(peak_mb=peak["median"], peak_spread_pct=peak["spread_pct"], peak_min_max=[peak["min"], peak["max"]])
    if "s" in rows[0]:
        out["s"] = round(sorted(r["s"] for r in rows)[len(rows) // 2], 3)
    return out


def _held_bytes(trainer) -> dict[str, int]:
    """Bytes of distinct tensor storages: parameters, gradients, optimiser state, frozen reference/teacher."""
    seen: set[int] = set()

    def count(tensors) -> int:
        total = 0
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
                seen.add(t.untyped_storage().data_ptr())
                total += t.untyped_storage().nbytes()
        return total

    params = list(trainer.policy.parameters())
    # gradients are freed after the optimiser step; during backward there is one per trainable parameter
    out = {"params": count(params), "grads": sum(p.numel() * p.element_size() for p in params if p.requires_grad),
           "optimizer": count(v for st in trainer.optimizer.state.values() for v in st.values())}
    frozen = [m for m in (trainer.ref, trainer.teacher) if m is not None]
    out["frozen_copies"] = count(p for m in frozen for p in m.parameters())
    return out


def lora_one(a, name: str) -> dict:
    """One variant (full | lora) in this process: held bytes by kind and the allocator peak of ``learn``."""
    from sdpg_train.training.trainer import SDPGTrainer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sdpg_train"))
    from learner_fixtures import fixed_batch  # the tests' fixed rollout batch (random completions, real prompts)

    tok = byte_tokenizer()
    batch = fixed_batch(tok, [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.5, 0.0]], length=a.length)
    extra = {"lora_r": 16} if name == "lora" else {}
    cfg = SDPGConfig(device=a.device, num_prompts_per_step=2, num_generations=4, beta=1e-3, alpha=1e-3,
                     teacher_model_kind="base", torch_dtype=a.dtype, output_dir="/tmp/sdpg-bench-memory",
                     disable_tqdm=True, save_final=False, log_completions=False, **extra)
    trainer = SDPGTrainer(qwen2(a), env=["sdpg/Arith-v0"], args=cfg, processing_class=tok)
    with PeakMemory(a.device) as peak:
        trainer.learn(batch, step=1)
    held = _held_bytes(trainer)
    return {**{k: round(v / 2**20, 1) for k, v in held.items()}, "total_mb": round(sum(held.values()) / 2**20, 1),
            "peak_mb": round(peak.mb, 1)}


def lora(a) -> dict:
    out = {name: _fresh(a, "lora", name) for name in ("full", "lora")}
    f, lo = out["full"], out["lora"]
    return {"bench": "lora", "device": a.device, "dtype": a.dtype, "hidden": a.hidden, "layers": a.layers,
            "vocab": a.vocab, "lora_r": 16, "procs": a.procs, "full_mb": f, "lora_mb": lo,
            "held_ratio_lora_vs_full": round(lo["total_mb"] / f["total_mb"], 4),
            "peak_ratio_lora_vs_full": round(lo["peak_mb"] / max(f["peak_mb"], 1e-9), 4),
            "peak_note": "peak_mb = allocator peak during learn() above what was allocated before it"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--what", choices=("checkpointing", "lora", "both"), default="both")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--n", type=int, default=4, help="sequences (checkpointing)")
    ap.add_argument("--length", type=int, default=256, help="completion tokens per sequence")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                    help="compute dtype (bfloat16 = mixed precision, fp32 master weights)")
    ap.add_argument("--procs", type=int, default=3, help="fresh processes per variant (peak median and spread)")
    ap.add_argument("--one", nargs=2, metavar=("WHAT", "VARIANT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.preset:
        for k, v in PRESETS[a.preset].items():
            setattr(a, k, v)
    if a.one:  # internal: one variant in this fresh process
        what, variant = a.one
        row = checkpointing_one(a, variant == "True") if what == "checkpointing" else lora_one(a, variant)
        print(json.dumps(row))
        return
    if a.what in ("checkpointing", "both"):
        print(json.dumps(checkpointing(a)), flush=True)
    if a.what in ("lora", "both"):
        print(json.dumps(lora(a)), flush=True)


if __name__ == "__main__":
    main()
