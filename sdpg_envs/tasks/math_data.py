"""MATH and MATH-500 loaders: ``{"problem", "solution", "answer"?, "level", "type"|"subject"}`` -> Problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sdpg_envs.tasks.sources import ListSource, data_dir, load_records, select
from sdpg_envs.types import Problem

HF_NAMES = {"math": "nlile/hendrycks-MATH-benchmark", "math500": "HuggingFaceH4/MATH-500"}
"""Hub fallbacks used only when the local file is missing and the Hub is reachable (not exercised offline)."""


def last_boxed(text: str) -> str | None:
    """Brace-matched content of the last ``\\boxed{...}`` or ``\\fbox{...}`` in ``text`` (None if absent)."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def _level(value: Any) -> int | None:
    text = str(value).replace("Level", "").strip()
    return int(text) if text.isdigit() else None


def math_problem(record: dict[str, Any], index: int, prefix: str) -> Problem:
    """One MATH-style record as a problem (``answer`` derived from the last ``\\boxed{}`` when missing)."""
    if "problem" not in record or "solution" not in record:
        raise ValueError(f"{prefix} record {index} lacks 'problem' or 'solution'")
    answer = record.get("answer") or last_boxed(str(record["solution"]))
    if not answer:
        raise ValueError(f"{prefix} record {index} has no answer and no \\boxed{{}} in its solution")
    meta = {
        "level": _level(record.get("level")),
        "subject": record.get("subject") or record.get("type"),
        "unique_id": record.get("unique_id"),
    }
    return Problem(f"{prefix}-{index}", str(record["problem"]), answer=str(answer), solution=str(record["solution"]),
                   metadata=meta)


def math_source(
    subset: str = "math500",
    data_path: str | os.PathLike | None = None,
    split: str = "test",
    n: int | None = None,
    levels: tuple[int, ...] | list[int] | None = None,
) -> ListSource:
    """MATH (``subset="math"``) or MATH-500 (``"math500"``) from a file, an HF name or ``<shared>/data``.

    Args:
        subset: ``"math"`` (full test set, 5,000) or ``"math500"`` (the PRM800K 500-problem subset).
        data_path: A local jsonl/json/parquet file or an HF dataset name; default ``<shared>/data/<subset>/``.
        split: Split name (the offline copies hold ``test`` only).
        n: Keep the first ``n`` problems (after the level filter).
        levels: Keep only these difficulty levels (1..5).
    """
    if subset not in HF_NAMES:
        raise ValueError(f"subset must be one of {sorted(HF_NAMES)}, got {subset!r}")
    path: str | Path = data_path if data_path is not None else data_dir() / subset / f"{split}.jsonl"
    if data_path is None and not Path(path).is_file() and os.environ.get("HF_DATASETS_OFFLINE") != "1":
        path = HF_NAMES[subset]
    problems = [math_problem(r, i, f"{subset}-{split}") for i, r in enumerate(load_records(path, split=split))]
    if levels is not None:
        wanted = {int(level) for level in levels}
        problems = [p for p in problems if p.metadata["level"] in wanted]
    return ListSource(select(problems, n), name=f"{subset}-{split}")
