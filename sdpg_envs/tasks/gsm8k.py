"""GSM8K loader: ``{"question", "answer"}`` records -> :class:`Problem` (answer after ``####``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sdpg_envs.tasks.sources import ListSource, data_dir, load_records, select
from sdpg_envs.types import Problem

HF_NAME = "openai/gsm8k"
_CALC = re.compile(r"<<[^<>]*>>")


def gsm8k_problem(record: dict[str, Any], index: int, split: str) -> Problem:
    """One GSM8K record as a problem: the worked solution loses its ``<<calc>>`` annotations."""
    try:
        question, full = str(record["question"]), str(record["answer"])
    except KeyError as exc:
        raise ValueError(f"GSM8K record {index} lacks key {exc}; expected 'question' and 'answer'") from exc
    if "####" not in full:
        raise ValueError(f"GSM8K record {index} has no '#### <answer>' line")
    worked, _, final = full.rpartition("####")
    answer = final.strip().replace(",", "")
    solution = _CALC.sub("", worked).strip()
    return Problem(f"gsm8k-{split}-{index}", question, answer=answer, solution=solution, metadata={"split": split})


def gsm8k_source(data_path: str | os.PathLike | None = None, split: str = "test", n: int | None = None) -> ListSource:
    """GSM8K ``split`` from ``data_path`` (file or HF name) or ``<shared>/data/gsm8k/<split>.jsonl``."""
    path: str | Path = data_path if data_path is not None else data_dir() / "gsm8k" / f"{split}.jsonl"
    if data_path is None and not Path(path).is_file() and os.environ.get("HF_DATASETS_OFFLINE") != "1":
        path = HF_NAME
    kwargs = {"name": "main"} if str(path) == HF_NAME else {}
    records = select(load_records(path, split=split, **kwargs), n)
    return ListSource((gsm8k_problem(r, i, split) for i, r in enumerate(records)), name=f"gsm8k-{split}")
