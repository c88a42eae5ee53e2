"""HumanEval (164 hand-written Python problems) -> :class:`~sdpg_envs.types.Problem`.

Each problem shows the original prompt (signature + docstring) in a code block as ``prompt``, and keeps it as
``metadata["preamble"]`` (so a completion that only writes the function still has the prompt's imports and
helpers), the full
reference program (prompt + canonical solution) as ``solution``, and as ``metadata["tests"]`` the prompt
followed by the original ``check`` function: the tests then use the prompt's own helpers (e.g. ``poly`` in
HumanEval/32), never a redefinition by the candidate. ``check(<entry_point>)`` is called by the harness.
"""

from __future__ import annotations

import os

from sdpg_envs.tasks.sources import ListSource, data_dir, load_records, select
from sdpg_envs.types import Problem

HF_NAME = "openai_humaneval"
FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def default_path() -> str:
    """``<shared>/data/humaneval/HumanEval.jsonl.gz``."""
    return str(data_dir() / "humaneval" / "HumanEval.jsonl.gz")


def humaneval_problem(record: dict) -> Problem:
    """One HumanEval record -> Problem (``ValueError`` naming the missing fields)."""
    missing = [k for k in FIELDS if k not in record]
    if missing:
        raise ValueError(f"HumanEval record {record.get('task_id', '?')!r} lacks fields {missing}")
    prompt = record["prompt"]
    return Problem(
        id=str(record["task_id"]),
        prompt=f"Complete the following Python function:\n```python\n{prompt}```",
        solution=prompt + record["canonical_solution"],
        metadata={"language": "python", "tests": prompt + "\n" + record["test"], "entry_point": record["entry_point"],
                  "preamble": prompt, "timeout_s": 10.0},
    )


def load_humaneval(path: str | os.PathLike | None = None, n: int | None = None) -> list[Problem]:
    """HumanEval problems from a local jsonl(.gz)/parquet file (default: the shared copy) or, online, the HF
    dataset ``openai_humaneval``; the first ``n`` when given."""
    records = load_records(path or default_path(), split="test")
    return [humaneval_problem(dict(r)) for r in select(records, n)]


def humaneval_source(path: str | os.PathLike | None = None, n: int | None = None) -> ListSource:
    """A :class:`ListSource` over :func:`load_humaneval`."""
    return ListSource(load_humaneval(path, n), name="humaneval")
