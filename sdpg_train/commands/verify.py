"""``sdpg verify --task math|code --input IN.jsonl --output OUT.jsonl``: the stable batch-verification contract.

Each task module exposes ``verify_rows(rows: list[dict], *, progress) -> list[dict]`` returning, in input
order, the fields to add to each row (``score``, ``status`` and ``reason`` or ``feedback``). Lines that are
not JSON objects or lack required keys get ``status: "error"`` with a reason; no line is ever dropped.
The output is written atomically (temp file + rename).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tqdm import tqdm

TASKS = {
    "math": ("sdpg_envs.verifiers.math_batch", ("gold", "prediction"), "reason"),
    "code": ("sdpg_envs.verifiers.code_batch", ("program", "tests"), "feedback"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--input", required=True, type=Path, help="JSONL, one object per line")
    parser.add_argument("--output", required=True, type=Path, help="JSONL written atomically")
    parser.add_argument("--no-progress", action="store_true", help="disable the progress bar")


def _read_rows(path: Path, required: tuple[str, ...], text_key: str) -> tuple[list[dict], dict[int, dict]]:
    """Parse lines; return (rows, errors) where errors maps line index -> the error row to write."""
    rows: list[dict] = []
    errors: dict[int, dict] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                row, problem = {"raw": line.rstrip("\n")}, f"line {i + 1} is not valid JSON: {exc.msg}"
            else:
                if not isinstance(row, dict):
                    row, problem = {"raw": row}, f"line {i + 1} is not a JSON object"
                else:
                    missing = [k for k in required if k not in row]
                    problem = f"line {i + 1} lacks required keys {missing}" if missing else ""
            if problem:
                errors[len(rows)] = {**row, "score": 0.0, "status": "error", text_key: problem}
            rows.append(row)
    return rows, errors


def _json_line(row: dict) -> str:
    """One output line; text that UTF-8 cannot hold (a lone surrogate) is written as a JSON ``\\u`` escape."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row, ensure_ascii=True)
    return line + "\n"


def _write_atomic(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(_json_line(row))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_writable(path: Path) -> str | None:
    """Why ``path`` cannot be written (None when it can), tested before any work is done."""
    if path.is_dir():
        return "it is a folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def run(args: argparse.Namespace) -> int:
    module_name, required, text_key = TASKS[args.task]
    if not args.input.is_file():
        print(f"sdpg verify: input file {args.input} does not exist", file=sys.stderr)
        return 2
    why = _check_writable(args.output)
    if why is not None:
        print(f"sdpg verify: cannot write --output {args.output}: {why}", file=sys.stderr)
        return 2
    rows, errors = _read_rows(args.input, required, text_key)
    todo = [i for i in range(len(rows)) if i not in errors]
    bar = tqdm(total=len(todo), desc=f"verify {args.task}", unit="row", disable=args.no_progress, file=sys.stderr)
    try:
        module = importlib.import_module(module_name)
        verdicts = module.verify_rows([rows[i] for i in todo], progress=bar.update)
    except KeyboardInterrupt:
        bar.close()
        print(f"sdpg verify: interrupted after {bar.n} of {len(todo)} rows; nothing was written to {args.output} "
              "(the output is written only when every row is verified; run the command again)", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, OSError) as exc:  # e.g. a forced sandbox backend (SDPG_SANDBOX) missing
        bar.close()
        print(f"sdpg verify: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    bar.close()
    out = [errors.get(i) for i in range(len(rows))]
    for i, verdict in zip(todo, verdicts, strict=True):
        out[i] = {**rows[i], **verdict}
    _write_atomic(args.output, out)
    counts = Counter(row["status"] for row in out)
    mean = sum(float(row["score"]) for row in out) / max(1, len(out))
    summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"sdpg verify --task {args.task}: {len(out)} lines, mean score {mean:.4f} ({summary})", file=sys.stderr)
    return 0 if counts.get("error", 0) == 0 else 1
