"""What a user sees on the command line when something is wrong: one line saying what and how to fix it, never a
traceback; and ``--import`` for a user's own env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sdpg_train

ROOT = Path(sdpg_train.__file__).resolve().parents[1]
TINY = ["--model_name_or_path", "tiny", "--device", "cpu", "--num_prompts_per_step", "2", "--num_generations", "2",
        "--max_completion_length", "4", "--disable_tqdm", "--save_final", "false"]


def sdpg(*args: str, cwd: Path, timeout: int = 200) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sdpg_train.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = [x for x in proc.stderr.splitlines() if x.startswith("sdpg ")][-1]
    for needle in needles:
        assert needle in line, line
    return line


@pytest.mark.timeout(300)
def test_import_flag_reaches_a_users_env_and_the_error_says_so(tmp_path):
    (tmp_path / "my_envs.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('myns/MyArith-v0', entry_point='sdpg_envs.envs.math_env:arith_env')\n")
    out = tmp_path / "run"
    missing = sdpg("train", "--env_ids", "myns/MyArith-v0", "--output_dir", str(out), *TINY, cwd=tmp_path)
    one_line_error(missing, "Namespace myns not found", "--import YOUR_MODULE", "sdpg/Arith-v0")
    proc = sdpg("train", "--import", "my_envs", "--env_ids", "myns/MyArith-v0", "--max_steps", "1",
                "--output_dir", str(out), *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["step"] == 1
