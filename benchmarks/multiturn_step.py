"""Step cost of multi-turn training: ``sdpg/PyFuncRepair-v0`` (2 attempts) against single-turn ``sdpg/PyFunc-v0``,
same tiny model, config and run. Prints one JSON line: mean step seconds and trained (model) tokens per step of
each, and ``ratio_per_token`` (multi-turn seconds per trained token / single-turn's; 1.0 = no overhead per token
beyond the extra turns' own tokens).

    python benchmarks/multiturn_step.py [--steps 4] [--prompts 8] [--generations 4] [--tokens 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch

from sdpg_train.config import SDPGConfig
from sdpg_train.training.trainer import SDPGTrainer

ENVS = {"single": ("sdpg/PyFunc-v0", {"prompt_template": "compact"}),
        "repair": ("sdpg/PyFuncRepair-v0", {"prompt_template": "compact", "max_attempts": 2})}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4, help="steps per env; the first is dropped as warm-up")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--tokens", type=int, default=32, help="max new tokens per turn")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out: dict[str, dict[str, float]] = {}
    for label, (env, kwargs) in ENVS.items():
        with tempfile.TemporaryDirectory() as tmp:
            cfg = SDPGConfig(model_name_or_path="tiny", env_ids=[env], env_kwargs={env: kwargs}, loss="sdpg", beta=0.1,
                             device="cpu", num_prompts_per_step=a.prompts, num_generations=a.generations,
                             max_completion_length=a.tokens, max_steps=a.steps, output_dir=tmp, disable_tqdm=True,
                             save_final=False, log_completions=False)
            trainer = SDPGTrainer(args=cfg)
            rows = [trainer.step(k) for k in range(1, a.steps + 1)][1:]
        n = len(rows)
        out[label] = {"env": env, "step_s": sum(r["perf/step_s"] for r in rows) / n,
                      "tokens": sum(r["train/num_tokens"] for r in rows) / n,
                      "turns": sum(r.get("episode/turns", 1.0) for r in rows) / n}
    s, m = out["single"], out["repair"]
    per_token = (m["step_s"] / m["tokens"]) / (s["step_s"] / s["tokens"])
    print(json.dumps({**out, "ratio_step_s": m["step_s"] / s["step_s"], "ratio_per_token": per_token}))


if __name__ == "__main__":
    main()
