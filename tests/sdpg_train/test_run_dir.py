"""``output_dir`` safety: no fresh run over an earlier one, logs cut back on resume, config changes warned about,
and every start recorded (config, command line, versions)."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import sdpg_envs  # noqa: F401
from sdpg_train.config import SDPGConfig
from sdpg_train.training.trainer import SDPGTrainer


def cfg(out, **changes) -> SDPGConfig:
    base = dict(model_name_or_path="tiny", device="cpu", loss="sdpg", beta=0.5, alpha=0.0, num_prompts_per_step=2,
                num_generations=2, max_completion_length=4, max_steps=2, output_dir=str(out), disable_tqdm=True,
                log_completions=True, num_completions_to_log=1, max_context_length=16)
    return SDPGConfig(**{**base, **changes})


def steps(path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


@pytest.mark.timeout(240)
def test_fresh_run_refuses_a_used_folder_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    old = out / "checkpoint-50"
    old.mkdir()
    (old / "trainer_state.json").write_text('{"global_step": 50}')
    trainer = SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=cfg(out, max_steps=1, save_total_limit=1))
    with pytest.raises(FileExistsError, match="already holds a run.*resume_from_checkpoint last.*overwrite"):
        trainer.train()
    assert old.is_dir() and steps(out / "metrics.jsonl") == [1, 2]  # nothing touched
    trainer = SDPGTrainer(env=gym.make("sdpg/Arith-v0"),
                          args=cfg(out, max_steps=1, save_total_limit=1, overwrite_output_dir=True))
    trainer.train()
    assert not old.exists() and (out / "checkpoint-1").is_dir()  # the new final checkpoint survives rotation
    assert steps(out / "metrics.jsonl") == [1]
    info = [json.loads(line) for line in (out / "run_info.jsonl").read_text().splitlines()]
    assert len(info) == 1 and info[0]["resumed_from"] is None and info[0]["versions"]["torch"]
    assert "command" in info[0] and json.loads((out / "run_config.json").read_text())["max_steps"] == 1


@pytest.mark.timeout(240)
def test_resume_cuts_logs_back_and_warns_about_config_changes(tmp_path):
    out = tmp_path / "run"
    SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=cfg(out, save_steps=1)).train()
    assert steps(out / "metrics.jsonl") == [1, 2] and steps(out / "samples.jsonl") == [1, 2]
    resumed = SDPGTrainer(env=gym.make("sdpg/Arith-v0"), args=cfg(out, loss="grpo", max_steps=3))
    with pytest.warns(UserWarning, match=r"different config: loss: 'sdpg' -> 'grpo'"):
        resumed.train(resume_from_checkpoint=out / "checkpoint-1")
    assert steps(out / "metrics.jsonl") == [1, 2, 3]  # steps 2 was redone, not logged twice
    assert steps(out / "samples.jsonl") == [1, 2, 3]
    info = [json.loads(line) for line in (out / "run_info.jsonl").read_text().splitlines()]
    assert [i["start_step"] for i in info] == [0, 1] and info[1]["resumed_from"].endswith("checkpoint-1")
    assert json.loads((out / "run_config.json").read_text())["loss"] == "grpo"
