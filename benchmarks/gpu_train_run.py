"""A short real training run with mixed precision and gradient checkpointing; prints one JSON line.

SDPG (β and α on, gated, 2 mini-batches) on a Qwen2-style model with Qwen2.5-0.5B's decoder (hidden 896, 24
layers, 14/2 heads, MLP 4864) over the byte vocabulary, random init (nothing downloaded), rewarded for
completions of even length (a TRL-style reward function, so advantages are non-zero from the first step).
Checks that the run is what it claims: parameters stay fp32, forwards run in bf16, checkpointing is active,
every logged loss and gradient norm is finite, the final checkpoint loads.

    python benchmarks/gpu_train_run.py                       # CUDA, 30 steps, bf16 mixed, checkpointing
    python benchmarks/gpu_train_run.py --device cpu --hidden 64 --layers 2 --heads 4 --kv-heads 2 \\
        --intermediate 128 --steps 2 --completion 8          # CPU smoke run of the same code path
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sdpg_train.config import SDPGConfig  # noqa: E402
from sdpg_train.core.model_io import is_checkpointing  # noqa: E402
from sdpg_train.tiny import byte_tokenizer  # noqa: E402
from sdpg_train.training.trainer import SDPGTrainer  # noqa: E402


def even_length(prompts, completions, **_):
    return [float(len(c) % 2 == 0) for c in completions]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=896)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=4864)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--completion", type=int, default=64)
    a = ap.parse_args()
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=259, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, max_position_embeddings=4096,
        tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=None))
    out = Path(tempfile.mkdtemp(prefix="sdpg-gpu-run-"))
    cfg = SDPGConfig(device=a.device, torch_dtype=a.dtype, gradient_checkpointing=True, max_steps=a.steps,
                     num_prompts_per_step=a.prompts, num_generations=a.group, max_completion_length=a.completion,
                     num_mini_batches=2, learning_rate=1e-5, beta=1e-3, alpha=1e-3, gate_positive=True,
                     beta_warmup_steps=max(a.steps // 3, 1), warmup_steps=2, lr_scheduler_type="cosine",
                     output_dir=str(out), disable_tqdm=True, save_final=True, log_completions=False)
    dataset = [{"prompt": f"Write something of even length, number {i}."} for i in range(64)]
    trainer = SDPGTrainer(lm, args=cfg, processing_class=byte_tokenizer(), reward_funcs=[even_length],
                          train_dataset=dataset)
    seen: list[torch.dtype] = []
    proj = trainer.policy.lm.model.layers[0].self_attn.q_proj
    handle = proj.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    handle.remove()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    finite = all(math.isfinite(r["loss/total"]) and math.isfinite(r["train/grad_norm"]) for r in rows)
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out / f"checkpoint-{a.steps}")
    k = max(len(rows) // 3, 1)
    print(json.dumps({
        "bench": "gpu_train_run", "device": a.device, "dtype": a.dtype, "gradient_checkpointing": True,
        "params_m": round(sum(p.numel() for p in trainer.model.parameters()) / 1e6, 1), "steps": len(rows),
        "sequences_per_step": a.prompts * a.group, "completion_len_max": a.completion,
        "wall_s": round(wall, 1), "step_s_median": round(sorted(r["perf/step_s"] for r in rows)[len(rows) // 2], 3),
        "peak_mem_mb": round(max(r["perf/peak_mem_mb"] for r in rows), 1),
        "reward_first_third": round(sum(r["reward"] for r in rows[:k]) / k, 3),
        "reward_last_third": round(sum(r["reward"] for r in rows[-k:]) / k, 3),
        "skipped_updates": sum(r.get("train/skipped_updates", 0) for r in rows),
        "all_finite": finite, "params_fp32": all(p.dtype == torch.float32 for p in trainer.model.parameters()),
        "forward_dtype": str(seen[-1]).removeprefix("torch.") if seen else None,
        "checkpointing_active": is_checkpointing(trainer.model),
        "checkpoint_reloads": sum(p.numel() for p in reloaded.parameters()) == sum(
            p.numel() for p in trainer.model.parameters()),
    }), flush=True)


if __name__ == "__main__":
    main()
