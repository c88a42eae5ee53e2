"""sdpg environments from TRL (CPU, about a minute): GRPO with an env's verifier as the reward, then SDPO with the
env's privileged context as the teacher's feedback.

    python examples/trl_reward.py [--steps 2] [--output-dir DIR]

Needs ``pip install -e ".[trl]"``. A tiny random model is saved to a temporary folder so the script runs offline;
for a real run pass a hub id (e.g. "Qwen/Qwen2.5-0.5B-Instruct") as ``model=`` and drop ``use_cpu``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from trl import GRPOConfig, GRPOTrainer  # noqa: E402
from trl.experimental.sdpo import SDPOConfig, SDPOTrainer  # noqa: E402

from sdpg_envs import as_reward_func, to_dataset  # noqa: E402
from sdpg_train.tiny import byte_tokenizer, load_tokenizer, tiny_causal_lm  # noqa: E402

ENV_ID = "sdpg/Arith-v0"
ENV_KWARGS = {"split": "train", "digits": 1, "prompt_template": "terse"}  # same kwargs for dataset and reward


def save_tiny_model(folder: Path) -> str:
    """A random ~90k-parameter Qwen2-style model + byte tokenizer, saved like any hub checkpoint."""
    tiny_causal_lm().save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return str(folder)


def common(output_dir: Path, steps: int) -> dict:
    return {"output_dir": str(output_dir), "max_steps": steps, "per_device_train_batch_size": 2,
            "num_generations": 2, "max_completion_length": 16, "logging_steps": 1, "report_to": "none",
            "use_cpu": True, "save_strategy": "no"}


def run_grpo(model: str, output_dir: Path, steps: int) -> dict:
    """GRPO: the env's verifier is the reward; status and feedback land in TRL's completions table."""
    dataset = to_dataset(ENV_ID, n=64, chat=True, **ENV_KWARGS)
    reward = as_reward_func(ENV_ID, **ENV_KWARGS)  # named "sdpg_arith_v0" in TRL's metrics
    row = dataset[0]  # the call TRL makes, by hand: dataset columns as keyword lists
    scores = reward(prompts=[row["prompt"]] * 2, completions=[f" {row['answer']}", " -1"],
                    problem_index=[row["problem_index"]] * 2, problem_id=[row["problem_id"]] * 2)
    print(f"[check] {row['prompt'][0]['content']!r}: gold -> {scores[0]}, wrong -> {scores[1]}")
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], train_dataset=dataset,
                          args=GRPOConfig(**common(output_dir, steps)), processing_class=load_tokenizer(model))
    trainer.train()
    return trainer.state.log_history[-2]


def run_sdpo(model: str, output_dir: Path, steps: int) -> dict:
    """SDPO: ``privileged_context`` (reference solution and answer) is the feedback the self-teacher sees."""
    dataset = to_dataset(ENV_ID, n=64, chat=True, **ENV_KWARGS)
    reward = as_reward_func(ENV_ID, **ENV_KWARGS)
    args = SDPOConfig(**common(output_dir, steps), include_environment_feedback=True,
                      feedback_template="\n{feedback_raw}\n\n")  # TRL's default says "feedback on your attempt"
    trainer = SDPOTrainer(model=model, reward_funcs=[reward], train_dataset=dataset, args=args,
                          processing_class=load_tokenizer(model))
    trainer.train()
    return trainer.state.log_history[-2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--output-dir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.output_dir or Path(tmp)
        model = save_tiny_model(root / "tiny-model")
        grpo = run_grpo(model, root / "grpo", args.steps)
        print(f"[grpo] sdpg_arith_v0 reward={grpo['rewards/sdpg_arith_v0/mean']:.3f} "
              f"pass_rate={grpo['sdpg_arith_v0/pass_rate']:.3f} loss={grpo['loss']:.4f}")
        sdpo = run_sdpo(model, root / "sdpo", args.steps)
        print(f"[sdpo] feedback_used_fraction={sdpo['self_distillation/feedback_used_fraction']} "
              f"reward={sdpo['self_distillation/rewards/sdpg_arith_v0']:.3f} loss={sdpo['loss']:.4f}")


if __name__ == "__main__":
    main()
