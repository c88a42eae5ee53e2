"""Where one training step's time goes, against the plain work it cannot avoid (issue 12, item 6).

At the demo's model size and batch (benchmarks/learning.py: hidden 128, 2 layers, 64 prompts × 4 completions,
16 new tokens), it times one ``SDPGTrainer.step`` for each method, broken down as the trainer logs it
(``perf/rollout_s``, ``perf/teacher_view_s``, ``perf/logprob_pass_s``, ``perf/update_s``; ``rollout_share`` =
rollout / step). Side by side it times the floor: a plain HF ``generate`` (backend "hf", whatever the trainer
uses) of the same prompts with the same settings, then one forward/backward
(cross-entropy on the completion tokens) and an AdamW step over the same sequences. Prints one JSON line per method:
``{"method", "step_s", "floor_s", "ratio_step_to_floor", ...}`` (medians over ``--repeats`` steps, after one warm-up
step). The target is ratio ≤ 2.

    python benchmarks/step_profile.py                      # grpo, sdpg, ppo; 1 torch thread
    python benchmarks/step_profile.py --methods sdpg --generation-backend hf fast   # generation's share, both
    python benchmarks/step_profile.py --generation-batch-size 0 64   # one chunk vs four (verification overlapped)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch


def floor_seconds(trainer, batch) -> tuple[float, float]:
    """(generate seconds, forward/backward + optimiser seconds) for the batch's prompts and completions."""
    from sdpg_train.core.rollout import generate, right_pad

    a = trainer.args
    gen = {"max_completion_length": a.max_completion_length, "temperature": a.temperature, "top_p": 1.0,
           "top_k": 0, "stop_strings": None, "backend": "hf"}
    t0 = time.perf_counter()
    for s in range(0, len(batch), a.generation_batch_size):
        generate(trainer.model, trainer.tokenizer, batch.prompt_ids[s : s + a.generation_batch_size], gen)
    t_gen = time.perf_counter() - t0
    rows = [p + c for p, c in zip(batch.prompt_ids, batch.completion_ids)]
    ids, mask = right_pad(rows, trainer.pad_id)  # (N, L)
    labels = ids.clone()
    for i, p in enumerate(batch.prompt_ids):
        labels[i, : len(p)] = -100
    labels[~mask] = -100
    model = trainer.model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
    model.train()
    t1 = time.perf_counter()
    logits = model(input_ids=ids, attention_mask=mask.long()).logits  # (N, L, V)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten())
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return t_gen, time.perf_counter() - t1


def profile(method: dict, repeats: int, backend: str = "fast", generation_batch_size: int | None = None) -> dict:
    from sdpg_train.config import SDPGConfig
    from sdpg_train.demo.learning import ARITH_ID, LearningConfig, make_env, rl_config
    from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm
    from sdpg_train.training.trainer import SDPGTrainer

    cfg = LearningConfig(output_dir="/tmp/sdpg-step-profile", methods={"m": method})
    fields = rl_config(cfg, "m", 0, Path("/tmp/sdpg-step-profile/run")).to_dict()
    fields.update(report_to=[], overwrite_output_dir=True, max_steps=repeats + 1, generation_backend=backend)
    # an untrained model earns no reward, so every group has A = 0: without this GRPO would skip its whole update
    fields["skip_zero_advantage"] = False
    if generation_batch_size:  # chunks: chunk k is verified while chunk k + 1 generates
        fields["generation_batch_size"] = generation_batch_size
    model = tiny_causal_lm(hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads)
    trainer = SDPGTrainer(model, env=make_env(ARITH_ID, cfg.envs[ARITH_ID], "train"), args=SDPGConfig(**fields),
                          processing_class=byte_tokenizer())
    steps, floors, parts = [], [], []
    for k in range(1, repeats + 2):
        t0 = time.perf_counter()
        batch = trainer._rollout(k)
        m = trainer.learn(batch, k, t0=t0)
        if k == 1:
            continue  # warm-up step
        steps.append(m["perf/step_s"])
        parts.append({key: m[key] for key in m if key.startswith("perf/") and key.endswith("_s")})
        g, fb = floor_seconds(trainer, batch)
        floors.append((g, fb))
    med = statistics.median
    step_s = med(steps)
    gen_s, fb_s = med(f[0] for f in floors), med(f[1] for f in floors)
    out = {"method": method["loss"], "step_s": round(step_s, 3), "floor_s": round(gen_s + fb_s, 3),
           "floor_generate_s": round(gen_s, 3), "floor_fwd_bwd_s": round(fb_s, 3),
           "ratio_step_to_floor": round(step_s / (gen_s + fb_s), 3), "repeats": repeats,
           "threads": torch.get_num_threads(), "completions": len(batch), "generation_backend": backend,
           "generation_batch_size": trainer.args.generation_batch_size,
           "rollout_share": round(med(p["perf/rollout_s"] for p in parts) / step_s, 3)}
    for key in parts[0]:
        out[key] = round(med(p[key] for p in parts), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="grpo,sdpg,ppo")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--generation-backend", nargs="+", choices=("fast", "hf"), default=["fast"],
                   help="the trainer's generation_backend (several: one line each)")
    p.add_argument("--generation-batch-size", type=int, nargs="+", default=[0],
                   help="generation chunk sizes to time (0: the learning benchmark's 256, one chunk)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from sdpg_train.demo.learning import SDPG_RECIPE

    for name in a.methods.split(","):
        method = dict(SDPG_RECIPE) if name == "sdpg" else {"loss": name}
        for backend in a.generation_backend:
            for chunk in a.generation_batch_size:
                print(json.dumps(profile(method, a.repeats, backend, chunk or None)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
