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


def _main_error(capsys, *argv: str) -> str:
    from sdpg_train.cli import main

    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err, err
    assert err[-1].startswith("sdpg ") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_bad_inputs_give_one_line_errors(tmp_path, capsys, monkeypatch):
    import importlib.util

    import torch

    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: grpo\nmax_steps: [1\n")
    assert "bad.yaml is not valid YAML (line 3" in _main_error(capsys, "train", "--config", str(bad))
    base = ["train", "--model_name_or_path", "tiny", "--output_dir", str(tmp_path / "o")]
    if not torch.cuda.is_available():
        assert "CUDA is not available" in _main_error(capsys, *base, "--device", "cuda")
    if importlib.util.find_spec("wandb") is None:
        assert "pip install wandb" in _main_error(capsys, *base, "--report_to", "wandb")
    line = _main_error(capsys, "train", "--model_name_or_path", str(tmp_path / "no" / "model"), "--device", "cpu")
    assert "does not exist" in line and "Repo id" not in line
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"program": "def f():\\n    return 1", "tests": "assert f() == 1"}\n')
    (tmp_path / "file").write_text("")
    under_a_file = str(tmp_path / "file" / "x")
    line = _main_error(capsys, "verify", "--task", "code", "--input", str(rows), "--output", under_a_file)
    assert "cannot write --output" in line
    monkeypatch.setenv("SDPG_SANDBOX", "docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    out = tmp_path / "out.jsonl"
    line = _main_error(capsys, "verify", "--task", "code", "--input", str(rows), "--output", str(out), "--no-progress")
    assert "docker" in line and not out.exists()


def _interrupt(cmd: list[str], ready, cwd: Path, settle_s: float = 0.0) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session, wait until ``ready(stderr_so_far)`` (then ``settle_s``), then Ctrl-C the
    whole group."""
    import signal
    import threading

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # a CI runner may start us with SIGINT ignored (a background job); the child must see Ctrl-C as a user would
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read1(4096), b"")), daemon=True)
    reader.start()
    while proc.poll() is None and not ready(b"".join(chunks).decode(errors="replace")):
        threading.Event().wait(0.2)
    threading.Event().wait(settle_s)
    os.killpg(proc.pid, signal.SIGINT)
    stdout = proc.stdout.read().decode()
    proc.wait(timeout=60)  # Ctrl-C must not wait for the programs in flight (they sleep 120 s)
    reader.join(timeout=30)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, b"".join(chunks).decode(errors="replace"))


@pytest.mark.timeout(400)
def test_ctrl_c_in_train_says_where_it_stopped_and_how_to_resume(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sdpg_train.cli", "train", "--max_steps", "500", "--save_steps", "1",
           "--output_dir", str(out), *TINY]
    proc = _interrupt(cmd, lambda err: (out / "checkpoint-1").is_dir(), tmp_path)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = [x for x in proc.stderr.splitlines() if x.startswith("sdpg train: interrupted")][-1]
    assert "last checkpoint" in line and str(out) in line
    resume = line.split("Resume with: ", 1)[1]
    assert resume.startswith("sdpg train ") and resume.endswith(f"--output_dir {out} --resume_from_checkpoint last")
    step = int(line.split("after step ")[1].split(";")[0])
    done = sdpg(*resume.split()[1:], "--max_steps", str(step + 1), cwd=tmp_path)  # the printed command works
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == step + 1


@pytest.mark.timeout(300)
def test_ctrl_c_in_verify_is_one_line_and_writes_nothing(tmp_path):
    rows = tmp_path / "slow.jsonl"
    row = {"program": "import time\ntime.sleep(120)", "tests": "assert True", "timeout_s": 120}
    rows.write_text("\n".join(json.dumps(row) for _ in range(3)) + "\n")
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "sdpg_train.cli", "verify", "--task", "code", "--input", str(rows), "--output",
           str(out)]
    proc = _interrupt(cmd, lambda err: "verify code" in err, tmp_path, settle_s=4.0)  # the runs are in flight
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "sdpg verify: interrupted after 0 of 3 rows; nothing was written" in proc.stderr and not out.exists()
