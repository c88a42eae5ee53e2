"""``sdpg train`` through the console script, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _sdpg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("sdpg")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "sdpg_train.cli"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_train_smoke_run_and_resume(tmp_path):
    out = tmp_path / "run"
    cfg = str(REPO / "examples" / "configs" / "tiny_cpu.yaml")
    proc = _sdpg("train", "--config", cfg, "--max_steps", "2", "--output_dir", str(out), "--save_steps", "0",
                 "--max_completion_length", "8", cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["output_dir"] == str(out)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert (out / "checkpoint-2" / "model.safetensors").is_file()
    proc = _sdpg("train", "--config", cfg, "--max_steps", "3", "--output_dir", str(out), "--save_steps", "0",
                 "--max_completion_length", "8", "--resume_from_checkpoint", "last", cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_bad_config_values_give_a_clear_error(tmp_path):
    proc = _sdpg("train", "--model_name_or_path", "tiny", "--num_generations", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "num_generations must be ≥ 1" in proc.stderr
    proc = _sdpg("train", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert proc.returncode == 2 and "config file not found" in proc.stderr
    proc = _sdpg("train", "--model_name_or_path", "tiny", "--output_dir", str(tmp_path / "empty"),
                 "--resume_from_checkpoint", "last", cwd=tmp_path)
    assert proc.returncode == 2 and "has no checkpoint-N" in proc.stderr
