"""Benchmark: memory saved by gradient checkpointing and by LoRA (with the adapter-free reference policy).

``checkpointing``: one student forward + chunked head + backward of a Qwen2-style model on ``n × length`` tokens,
with and without ``gradient_checkpointing``. Exact figure: bytes of tensors autograd keeps for backward outside
checkpointed regions (``saved_tensors_hooks``, the activation memory); on CUDA also the allocator peak above the
weights. ``lora``: one SDPG ``learn`` step (β and α on, so a reference policy is needed) with full fine-tuning
vs LoRA; exact figure: bytes of the distinct tensors held by the trainer (parameters, gradients, AdamW state,
frozen reference); on CUDA also the allocator peak. Ratios are LoRA / full and on / off, from the same run.

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


def _peak_reset(device: str) -> int:
    if not device.startswith("cuda"):
        return 0
    _sync(device)
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def _peak(device: str, base: int) -> float | None:
    return round((torch.cuda.max_memory_allocated() - base) / 2**20, 1) if device.startswith("cuda") else None


def checkpointing(a) -> dict:
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(3, a.vocab, (a.length,), generator=g).tolist() for _ in range(a.n)]
    view = build_view([[2] * 16] * a.n, seqs, pad_id=0).to(a.device)
    out = {}
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    for gc in (False, True):
        lm = qwen2(a)
        lm.train()
        if gc:
            enable_gradient_checkpointing(lm)
        model = CompletionModel(lm, torch.bfloat16 if a.dtype == "bfloat16" else None).to(a.device)
        for _ in range(2):  # the first is warm-up
            saved[0] = 0
            base = _peak_reset(a.device)
            t0 = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                h = model(**view.inputs())
            # the head keeps only row statistics, so its saves (outside the hook) do not mask the decoder's
            res = sdpg_head(h, model.head_weight(), view.targets, chunk_size=1024)
            (res.logp.sum() + res.entropy.sum()).backward()
            _sync(a.device)
            dt = time.perf_counter() - t0
            model.zero_grad(set_to_none=True)
        out[gc] = dict(saved_mb=round(saved[0] / 2**20, 1), peak_mb=_peak(a.device, base), s=round(dt, 3))
        del model, lm
    off, on = out[False], out[True]
    res = {"bench": "gradient_checkpointing", "device": a.device, "dtype": a.dtype, "hidden": a.hidden,
           "layers": a.layers, "vocab": a.vocab, "tokens": a.n * (a.length + 16),
           "activations_saved_mb_off": off["saved_mb"], "activations_saved_mb_on": on["saved_mb"],
           "activation_ratio_on_vs_off": round(on["saved_mb"] / max(off["saved_mb"], 1e-9), 4),
           "fwd_bwd_s_off": off["s"], "fwd_bwd_s_on": on["s"], "time_ratio_on_vs_off": round(on["s"] / off["s"], 3)}
    if a.device.startswith("cuda"):
        res.update(peak_mb_off=off["peak_mb"], peak_mb_on=on["peak_mb"],
                   peak_ratio_on_vs_off=round(on["peak_mb"] / off["peak_mb"], 4))
    return res


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


def lora(a) -> dict:
    from sdpg_train.training.trainer import SDPGTrainer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sdpg_train"))
    from learner_fixtures import fixed_batch  # the tests' fixed rollout batch (random completions, real prompts)

    tok = byte_tokenizer()
    batch = fixed_batch(tok, [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.5, 0.0]], length=a.length)
    out = {}
    for name, extra in (("full", {}), ("lora", {"lora_r": 16})):
        cfg = SDPGConfig(device=a.device, num_prompts_per_step=2, num_generations=4, beta=1e-3, alpha=1e-3,
                         teacher_model_kind="base", torch_dtype=a.dtype, output_dir="/tmp/sdpg-bench-memory",
                         disable_tqdm=True, save_final=False, log_completions=False, **extra)
        trainer = SDPGTrainer(qwen2(a), env=["sdpg/Arith-v0"], args=cfg, processing_class=tok)
        base = _peak_reset(a.device)
        trainer.learn(batch, step=1)
        held = _held_bytes(trainer)
        out[name] = {**{k: round(v / 2**20, 1) for k, v in held.items()},
                     "total_mb": round(sum(held.values()) / 2**20, 1), "peak_mb": _peak(a.device, base)}
        del trainer
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    f, lo = out["full"], out["lora"]
    res = {"bench": "lora", "device": a.device, "dtype": a.dtype, "hidden": a.hidden, "layers": a.layers,
           "vocab": a.vocab, "lora_r": 16, "full_mb": f, "lora_mb": lo,
           "held_ratio_lora_vs_full": round(lo["total_mb"] / f["total_mb"], 4)}
    if a.device.startswith("cuda"):
        res["peak_with_weights_note"] = "peak_mb = allocator peak during learn() above what was allocated before"
    return res


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
    a = ap.parse_args()
    if a.preset:
        for k, v in PRESETS[a.preset].items():
            setattr(a, k, v)
    if a.what in ("checkpointing", "both"):
        print(json.dumps(checkpointing(a)), flush=True)
    if a.what in ("lora", "both"):
        print(json.dumps(lora(a)), flush=True)


if __name__ == "__main__":
    main()
