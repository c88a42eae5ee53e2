"""The `sdpg` dispatcher, `sdpg doctor` and `sdpg envs`, run as a user would (subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from sdpg_train.cli import COMMANDS


def _sdpg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdpg_train", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_every_command():
    out = _sdpg("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


def test_unknown_command_is_a_clear_error():
    out = _sdpg("no-such-command")
    assert out.returncode == 2
    assert "unknown command 'no-such-command'" in out.stderr


@pytest.mark.timeout(120)
def test_doctor_reports_this_machine():
    out = _sdpg("doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["python"] == sys.version.split()[0]
    import torch

    assert report["torch"] == torch.__version__
    assert report["cuda_available"] == torch.cuda.is_available()
    assert set(report["sandboxes"]) >= {"bwrap", "process", "docker"}
    assert report["sandboxes"]["bwrap"]["works"] == (shutil.which("bwrap") is not None)
    assert report["sandboxes"]["process"]["works"] is True
    assert report["docker_engine"]  # a plain statement, reachable or not and why


def test_envs_lists_builtin_ids():
    out = _sdpg("envs", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    ids = {row["id"] for row in rows}
    assert {"sdpg/Arith-v0", "sdpg/GSM8K-v0", "sdpg/MATH500-v0", "sdpg/PyFunc-v0", "sdpg/HumanEval-v0"} <= ids
    assert all(row["entry_point"] for row in rows)
