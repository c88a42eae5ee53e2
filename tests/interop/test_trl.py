"""Real TRL 1.16 runs on CPU: sdpg envs as GRPO rewards (math and code) and as an SDPO dataset with feedback.

Each test trains a tiny random model (saved with ``save_pretrained``) for 2 steps, records every call TRL makes to
our reward function, then replays TRL's exact keyword arguments with planted correct and wrong completions.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sdpg_envs import as_reward_func, to_dataset
from sdpg_train.tiny import load_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ARITH = {"split": "train", "digits": 1, "prompt_template": "terse"}
PYFUNC = {"split": "train", "prompt_template": "compact"}
SPEED = {"max_completion_length": 8, "num_generations": 2, "per_device_train_batch_size": 2, "max_steps": 2,
         "report_to": "none", "use_cpu": True, "save_strategy": "no", "logging_steps": 1}


def recording(fn):
    """Wrap a reward function so every TRL call (kwargs and returned rewards) is kept in ``.calls``."""
    calls: list[tuple[dict[str, Any], list[float | None]]] = []

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> list[float | None]:
        assert not args, "TRL passes everything by keyword"
        out = fn(**kwargs)
        calls.append((kwargs, out))
        return out

    wrapper.calls = calls
    return wrapper


def replay(fn, kwargs: dict[str, Any], completions: list[Any]) -> tuple[list[float | None], dict[str, list]]:
    """Call ``fn`` with TRL's recorded kwargs, ``completions`` swapped in and a local ``log_extra``."""
    extra: dict[str, list] = {}
    kw = {**kwargs, "completions": completions, "log_extra": lambda col, vals: extra.setdefault(col, vals),
          "log_metric": lambda name, value: None}
    return fn(**kw), extra


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def logged_reward_means(trainer, key: str) -> list[float]:
    return [h[key] for h in trainer.state.log_history if key in h]


def grpo_train(model_dir: Path, out: Path, dataset, reward) -> Any:
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(output_dir=str(out), **SPEED)
    # no processing_class: TRL loads the saved byte tokenizer through AutoTokenizer (the round trip users hit)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[reward], args=args, train_dataset=dataset)
    assert len(trainer.processing_class) == 259 and trainer.processing_class.eos_token_id == 1
    trainer.train()
    assert trainer.state.global_step == 2
    return trainer


def check_trl_used_our_rewards(trainer, reward, n_rows: int) -> dict[str, Any]:
    """Two calls of one group batch each; TRL's logged reward means are the means of what we returned."""
    name = reward.__name__
    assert len(reward.calls) == 2
    kwargs, _ = reward.calls[-1]
    assert {"prompts", "completions", "problem_index", "problem_id", "privileged_context"} <= set(kwargs)
    assert callable(kwargs["log_extra"]) and callable(kwargs["log_metric"])
    assert len(kwargs["completions"]) == 2 and all(0 <= i < n_rows for i in kwargs["problem_index"])
    ours = [sum(out) / len(out) for _, out in reward.calls]
    assert logged_reward_means(trainer, f"rewards/{name}/mean") == pytest.approx(ours)
    assert len(logged_reward_means(trainer, f"{name}/pass_rate")) == 2, "log_metric reached TRL's logs"
    _, last = reward.calls[-1]
    assert list(trainer._logs["rewards"][name])[-2:] == pytest.approx(last)
    statuses = list(trainer._logs["extra"]["status"])[-2:]
    feedback = list(trainer._logs["extra"]["feedback"])[-2:]
    assert all(s and s != "skipped" for s in statuses), "log_extra reached TRL's completions table"
    assert all(f for r, f in zip(last, feedback) if r < 1.0), "a failed completion always gets feedback"
    return kwargs


def test_grpo_arith_reward_chat(tiny_model_dir, tmp_path):
    dataset = to_dataset("sdpg/Arith-v0", n=8, chat=True, **ARITH)
    reward = recording(as_reward_func("sdpg/Arith-v0", **ARITH))
    assert reward.__name__ == "sdpg_arith_v0"
    trainer = grpo_train(tiny_model_dir, tmp_path / "out", dataset, reward)
    kwargs = check_trl_used_our_rewards(trainer, reward, len(dataset))
    assert all(isinstance(c, list) and c[0]["role"] == "assistant" for c in kwargs["completions"])

    env = reward.env
    problems = [env.problem_at(i) for i in kwargs["problem_index"]]
    gold, _ = replay(reward, kwargs, [chat(env.gold_completion(p)) for p in problems])
    wrong, extra = replay(reward, kwargs, [chat(f" {int(p.answer) + 1}") for p in problems])
    assert gold == [1.0, 1.0] and wrong == [0.0, 0.0]
    assert extra["status"] == ["incorrect", "incorrect"] and all("not equal" in f for f in extra["feedback"])


def test_grpo_code_reward_plain(tiny_model_dir, tmp_path):
    dataset = to_dataset("sdpg/PyFunc-v0", n=4, **PYFUNC)
    reward = recording(as_reward_func("sdpg/PyFunc-v0", **PYFUNC))
    trainer = grpo_train(tiny_model_dir, tmp_path / "out", dataset, reward)
    kwargs = check_trl_used_our_rewards(trainer, reward, len(dataset))
    assert all(isinstance(c, str) for c in kwargs["completions"])

    env = reward.env
    problems = [env.problem_at(i) for i in kwargs["problem_index"]]
    gold, _ = replay(reward, kwargs, [env.gold_completion(p) for p in problems])
    planted = ["def f(x):\n    return 10**6\n", "def f(x) return x\n"]
    wrong, extra = replay(reward, kwargs, planted)
    assert gold == [1.0, 1.0] and wrong == [0.0, 0.0]
    assert extra["status"][1] == "compile_error" and "SyntaxError" in extra["feedback"][1]
    assert extra["status"][0] == "wrong_answer" and extra["feedback"][0]


def test_sdpo_feedback_reaches_teacher(tiny_model_dir, tmp_path):
    from transformers import TrainerCallback
    from trl.experimental.sdpo import SDPOConfig, SDPOTrainer

    class TeacherInputs(TrainerCallback):
        def __init__(self) -> None:
            self.texts: list[str] = []
            self.masks: list[list[float]] = []

        def on_teacher_context_built(self, processing_class=None, teacher_input_ids=None,
                                     self_distillation_mask=None, **_: Any) -> None:
            self.texts += processing_class.batch_decode(teacher_input_ids, skip_special_tokens=True)
            self.masks.append(self_distillation_mask.tolist())

    dataset = to_dataset("sdpg/Arith-v0", n=8, chat=True, **ARITH)
    reward = recording(as_reward_func("sdpg/Arith-v0", **ARITH))
    teacher = TeacherInputs()
    args = SDPOConfig(output_dir=str(tmp_path / "out"), include_environment_feedback=True,
                      feedback_template="\n{feedback_raw}\n\n", **SPEED)
    trainer = SDPOTrainer(model=str(tiny_model_dir), reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=load_tokenizer(str(tiny_model_dir)), callbacks=[teacher])
    trainer.train()
    assert trainer.state.global_step == 2 and len(reward.calls) == 2

    # every teacher prompt carries its own row's question and privileged context; every sample is reprompted
    assert len(teacher.texts) == 4 and all(m == [1.0, 1.0] for m in teacher.masks)
    for text in teacher.texts:
        row = next(r for r in dataset if r["prompt"][0]["content"] in text)
        assert row["privileged_context"] in text and "Reference answer: " + row["answer"] in text
    used = logged_reward_means(trainer, "self_distillation/feedback_used_fraction")
    assert used == [1.0, 1.0]
    ours = [sum(out) / len(out) for _, out in reward.calls]
    assert logged_reward_means(trainer, "self_distillation/rewards/sdpg_arith_v0") == pytest.approx(ours)

    kwargs, _ = reward.calls[-1]
    assert "log_extra" not in kwargs, "SDPO 1.16 does not pass log_extra; the reward must not need it"
    env = reward.env
    problems = [env.problem_at(i) for i in kwargs["problem_index"]]
    gold, _ = replay(reward, kwargs, [chat(f" {p.answer}") for p in problems])
    wrong, _ = replay(reward, kwargs, [chat("no idea") for _ in problems])
    assert gold == [1.0, 1.0] and wrong == [0.0, 0.0]
    # what SDPO would pass with remove_unused_columns=True: a clear error instead of silently skipped rows
    with pytest.raises(ValueError, match="remove_unused_columns"):
        reward(prompts=kwargs["prompts"], completions=[chat("x"), chat("y")], trainer_state=None,
               completion_ids=[[3], [4]], privileged_context=kwargs["privileged_context"])
    assert all(math.isfinite(h.get("loss", 0.0)) for h in trainer.state.log_history)


def test_trl_style_reward_in_sdpg_trainer(tiny_model_dir, tmp_path):
    """The other direction: the same TRL-style reward function and dataset drive our own trainer."""
    from sdpg_train import SDPGConfig, SDPGTrainer

    dataset = to_dataset("sdpg/Arith-v0", n=8, **ARITH)
    reward = recording(as_reward_func("sdpg/Arith-v0", **ARITH))
    args = SDPGConfig(device="cpu", num_prompts_per_step=2, num_generations=2, max_completion_length=8, max_steps=2,
                      max_context_length=48, output_dir=str(tmp_path / "out"), disable_tqdm=True, save_final=False)
    trainer = SDPGTrainer(str(tiny_model_dir), reward_funcs=[reward], train_dataset=dataset, args=args,
                          processing_class=load_tokenizer(str(tiny_model_dir)))
    metrics = trainer.train()
    assert trainer.global_step == 2 and len(reward.calls) >= 2
    kwargs, last = reward.calls[-1]
    assert {"prompts", "completions", "answer", "problem_index", "problem_id", "privileged_context"} <= set(kwargs)
    assert all(isinstance(c, str) for c in kwargs["completions"]) and len(kwargs["completions"]) == 4
    assert metrics["rewards/sdpg_arith_v0/mean"] == pytest.approx(sum(last) / len(last))

    env = reward.env
    problems = [env.problem_at(i) for i in kwargs["problem_index"]]
    gold, _ = replay(reward, kwargs, [env.gold_completion(p) for p in problems])
    wrong, _ = replay(reward, kwargs, [f" {int(p.answer) - 1}" for p in problems])
    assert gold == [1.0] * 4 and wrong == [0.0] * 4


def test_example_script_runs(tmp_path):
    script = Path(__file__).resolve().parents[2] / "examples" / "trl_reward.py"
    proc = subprocess.run([sys.executable, str(script), "--steps", "1", "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert any(line.startswith("[grpo]") and "sdpg_arith_v0" in line for line in lines), proc.stdout
    assert any(line.startswith("[sdpo]") and "feedback_used_fraction=1.0" in line for line in lines), proc.stdout
