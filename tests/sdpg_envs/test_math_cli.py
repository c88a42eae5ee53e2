"""``sdpg verify --task math`` end to end, through a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sdpg_envs.verifiers.math_batch import verify_rows

ROOT = Path(__file__).resolve().parents[2]
SDPG = Path(sys.executable).with_name("sdpg")


@pytest.mark.timeout(180)
def test_cli_verify_math_end_to_end(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "gold": "\\frac{1}{2}", "prediction": "so \\boxed{2/4}"},
        {"id": "b", "gold": "72", "prediction": "She sold 48 + 24 = 72 clips.\n#### 72"},
        {"id": "c", "gold": "50", "prediction": "0.5"},
        {"id": "d", "gold": "3", "prediction": "I cannot solve this problem, sorry about that."},
        {"id": "e", "gold": "28\\%", "prediction": "0.28", "options": {"percent_mode": "strict"}},
        {"id": "f", "gold": "1", "prediction": "1", "options": {"bogus": True}},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n{\"id\": \"g\", \"gold\": \"1\"}\n")
    out = tmp_path / "out" / "verdicts.jsonl"
    cmd = [str(SDPG), "verify", "--task", "math", "--input", str(src), "--output", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr  # lines that could not be judged -> exit 1
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 8
    assert [x["status"] for x in lines] == [
        "correct", "correct", "incorrect", "unparsable", "incorrect", "error", "error", "error",
    ]  # fmt: skip
    assert [x["score"] for x in lines[:3]] == [1.0, 1.0, 0.0]
    assert lines[0]["id"] == "a" and lines[0]["reason"] == "final answer 2/4 is equal to the reference"
    assert "unknown math option" in lines[5]["reason"]
    assert "summary" not in proc.stdout and "mean score" in proc.stderr

    ok = tmp_path / "ok.jsonl"
    ok.write_text("\n".join(json.dumps(r) for r in rows[:4]) + "\n")
    proc = subprocess.run([*cmd[:5], str(ok), *cmd[6:]], capture_output=True, text=True, timeout=170, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(120)
def test_verify_rows_keeps_order_and_reports_progress() -> None:
    rows = [{"gold": str(i), "prediction": f"\\boxed{{{i % 3}}}"} for i in range(12)]
    ticks: list[int] = []
    out = verify_rows(rows, progress=ticks.append)
    assert sum(ticks) == 12
    assert [r["score"] for r in out] == [1.0 if i % 3 == i else 0.0 for i in range(12)]
    assert all(set(r) == {"score", "status", "reason"} for r in out)
