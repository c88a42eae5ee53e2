"""``sdpg verify --task code`` end to end through a subprocess (the stable contract in DESIGN.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROWS = [
    {"id": "ok", "program": "def f(x):\n    return x + 1\n", "tests": "assert f(1) == 2\n", "timeout_s": 5},
    {"id": "ce", "program": "def f(x) return x", "tests": "assert f(1) == 2\n", "timeout_s": 5},
    {"id": "wa", "program": "def f(x):\n    return x\n", "tests": "assert f(1) == 2\n", "timeout_s": 5},
    {"id": "c", "language": "c", "program": "#include <stdio.h>\nint main(){int a; scanf(\"%d\", &a); "
     "printf(\"%d\\n\", a * 2); return 0;}\n", "tests": [["2\n", "4\n"], ["5", "10"]], "timeout_s": 2},
    {"id": "hostile", "program": "import os\nos._exit(0)\n", "tests": "assert f(1) == 2\n", "timeout_s": 5},
]


def _run(tmp_path: Path, lines: list[str]) -> tuple[subprocess.CompletedProcess, list[dict]]:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out" / "out.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "sdpg_train.cli", "verify", "--task", "code", "--input", str(src),
                           "--output", str(dst), "--no-progress"], capture_output=True, text=True, timeout=240,
                          cwd=Path(__file__).resolve().parents[2])
    rows = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()] if dst.exists() else []
    return proc, rows


@pytest.mark.timeout(240)
def test_verify_code_cli_end_to_end(tmp_path):
    proc, rows = _run(tmp_path, [json.dumps(r) for r in ROWS])
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in rows] == [r["id"] for r in ROWS]
    assert [r["status"] for r in rows] == ["passed", "compile_error", "wrong_answer", "passed", "runtime_error"]
    assert [r["score"] for r in rows] == [1, 0, 0, 1, 0]
    assert "SyntaxError" in rows[1]["feedback"] and "Expected: 2" in rows[2]["feedback"]
    assert rows[0]["program"] == ROWS[0]["program"]  # the input fields are kept
    assert "5 lines" in proc.stderr


@pytest.mark.timeout(120)
def test_verify_code_cli_keeps_unjudgeable_lines(tmp_path):
    bad = [json.dumps(ROWS[0]), "{not json", json.dumps({"id": "no-tests", "program": "x = 1"}),
           json.dumps({"id": "bad-tests", "program": "x = 1", "tests": "assert (", "timeout_s": 5})]
    proc, rows = _run(tmp_path, bad)
    assert proc.returncode == 1
    assert [r["status"] for r in rows] == ["passed", "error", "error", "error"]
    assert "does not compile" in rows[3]["feedback"]
