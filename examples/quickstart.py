"""Quick start: SDPG on the offline arithmetic env with the built-in tiny random model (CPU, ~1 minute).

    python examples/quickstart.py
Swap ``model_name_or_path`` for a hub id (e.g. "Qwen/Qwen2.5-0.5B-Instruct") and the env for "sdpg/GSM8K-v0"
for a real run on a GPU.
"""

import gymnasium as gym

import sdpg_envs  # noqa: F401  (registers the sdpg/* env ids)
from sdpg_train import SDPGConfig, SDPGTrainer

config = SDPGConfig(
    model_name_or_path="tiny", num_prompts_per_step=4, num_generations=4, max_completion_length=32,
    max_steps=10, learning_rate=5e-4, beta=0.01, alpha=1e-3, output_dir="runs/quickstart",
)
trainer = SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=config)
metrics = trainer.train()
print({k: round(metrics[k], 5) for k in ("reward", "distill/kl", "loss/total", "entropy")})
print("metrics:", trainer.output_dir / "metrics.jsonl", "| checkpoint:", trainer.output_dir / "checkpoint-10")
