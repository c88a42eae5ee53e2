"""The run folder (``output_dir``): refuse to mix two runs, cut logs back on resume, record how a run started.

* A fresh run in a folder that already holds a run (metrics, samples or checkpoints) is refused unless
  ``overwrite_output_dir``, which deletes those first: otherwise ``save_total_limit`` would delete the new run's
  checkpoints (older step numbers) and ``metrics.jsonl`` would hold two runs.
* On resume, ``metrics.jsonl`` and ``samples.jsonl`` are cut back to the checkpoint's step, and changes of the
  fields that make it a different experiment (:data:`WATCHED_FIELDS`) are warned about.
* At every start, ``run_config.json`` (the config in force) is written and one line is appended to
  ``run_info.jsonl``: time, command line, the checkpoint resumed from, package versions and git revision.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from sdpg_train.training.checkpoint import list_checkpoints

LOG_FILES = ("metrics.jsonl", "samples.jsonl")
"""Step-indexed logs the trainer appends to (one JSON object per line with a ``step`` key)."""
CONFIG_FILE, RUN_INFO_FILE = "run_config.json", "run_info.jsonl"
WATCHED_FIELDS = ("loss", "model_name_or_path", "env_ids", "env_kwargs", "beta", "alpha", "teacher_model_kind")
"""Config fields whose change on resume makes it a different experiment (warned about)."""


def run_artifacts(output_dir: str | Path) -> list[Path]:
    """What an earlier run left in ``output_dir``: step logs, checkpoints, the tensorboard folder."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [root / f for f in LOG_FILES if (root / f).is_file()]
    found += list_checkpoints(root) + sorted(root.glob(".tmp-checkpoint-*"))
    if (root / "tensorboard").is_dir():
        found.append(root / "tensorboard")
    return found


def prepare_fresh_run(output_dir: str | Path, overwrite: bool) -> list[Path]:
    """Make ``output_dir`` ready for a new run; returns what was deleted.

    Raises:
        FileExistsError: it holds an earlier run and ``overwrite`` is False (the message says what to do).
    """
    found = run_artifacts(output_dir)
    if found and not overwrite:
        names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise FileExistsError(
            f"output_dir {output_dir} already holds a run ({names}); continue it with --resume_from_checkpoint last "
            "(resume_from_checkpoint=True), replace it with --overwrite_output_dir (overwrite_output_dir=True), "
            "or choose another --output_dir")
    for p in found:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return found


def truncate_logs(output_dir: str | Path, step: int) -> dict[str, int]:
    """Drop the log lines of steps after ``step`` (written after the checkpoint resumed from) -> lines dropped."""
    dropped: dict[str, int] = {}
    for name in LOG_FILES:
        path = Path(output_dir) / name
        if not path.is_file():
            continue
        keep, cut = [], 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row_step = json.loads(line).get("step")
            except (json.JSONDecodeError, AttributeError):
                row_step = None  # a torn last line from a crash goes too
            if isinstance(row_step, int) and row_step <= step:
                keep.append(line)
            else:
                cut += 1
        if cut:
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text("".join(f"{line}\n" for line in keep), encoding="utf-8")
            os.replace(tmp, path)
            dropped[name] = cut
    return dropped


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"field: old -> new"`` for each :data:`WATCHED_FIELDS` entry that differs."""
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in WATCHED_FIELDS
            if k in saved and json.dumps(saved.get(k), sort_keys=True, default=str)
            != json.dumps(current.get(k), sort_keys=True, default=str)]


def warn_config_changes(checkpoint: str | Path, saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Warn (``UserWarning``) when resuming ``checkpoint`` with a config that changes :data:`WATCHED_FIELDS`."""
    changes = config_changes(saved or {}, current)
    if changes:
        warnings.warn(f"resuming {checkpoint} with a different config: {'; '.join(changes)}. The run continues "
                      "with the new values; use another output_dir for a separate experiment", stacklevel=3)
    return changes


def write_run_info(output_dir: str | Path, config: dict[str, Any], resumed_from: str | Path | None,
                   step: int) -> None:
    """Write ``run_config.json`` and append this start to ``run_info.jsonl``."""
    from sdpg_train.evaluation.report import environment_info, write_json_atomic

    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / CONFIG_FILE, config)
    info = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": shlex.join(sys.argv),
            "argv": list(sys.argv), "cwd": os.getcwd(), "start_step": step,
            "resumed_from": None if resumed_from is None else str(resumed_from), **environment_info()}
    with (root / RUN_INFO_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(info, default=str) + "\n")
