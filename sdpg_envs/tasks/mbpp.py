"""MBPP (Mostly Basic Python Problems) -> :class:`~sdpg_envs.types.Problem`, full (974) or sanitized (427).

``prompt`` is the task text followed by its asserts (as in the MBPP paper, which shows the tests so the
function name is known); ``solution`` is the reference code; ``metadata["tests"]`` is the test imports,
the setup code (run by the harness, e.g. building trees with the program's ``Node`` class) and the asserts.
Splits follow the upstream README: ids 11-510 test, 1-10 prompt, 511-600 validation, 601-974 train.
"""

from __future__ import annotations

import ast
import os
import warnings

from sdpg_envs.tasks.sources import ListSource, data_dir, load_records, select
from sdpg_envs.types import Problem

HF_NAMES = {"full": "mbpp", "sanitized": "mbpp"}
SPLITS = {"test": (11, 510), "prompt": (1, 10), "validation": (511, 600), "train": (601, 974), "all": (1, 10**9)}


def default_path(variant: str = "full") -> str:
    """``<shared>/data/mbpp/mbpp.jsonl`` (full) or ``sanitized-mbpp.json``."""
    if variant not in ("full", "sanitized"):
        raise ValueError(f"MBPP variant must be 'full' or 'sanitized', got {variant!r}")
    return str(data_dir() / "mbpp" / ("mbpp.jsonl" if variant == "full" else "sanitized-mbpp.json"))


def _lines(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(v) for v in value]  # type: ignore[union-attr]


def tested_function(code: str, first_assert: str) -> str | None:
    """The reference's top-level function that the first assert calls (MBPP gives no entry point)."""
    try:
        with warnings.catch_warnings():  # invalid escapes in some references' regexes
            warnings.simplefilter("ignore")
            defined = {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
            tree = ast.parse(first_assert)
    except SyntaxError:
        return None
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return next((name for name in calls if name in defined), None)


def mbpp_problem(record: dict, *, challenge: bool = False, timeout_s: float = 20.0) -> Problem:
    """One MBPP record (either file format) -> Problem (``ValueError`` naming what is missing)."""
    text = record.get("text", record.get("prompt"))
    if text is None or "code" not in record or "test_list" not in record or "task_id" not in record:
        raise ValueError(f"MBPP record {record.get('task_id', '?')!r} needs task_id, text/prompt, code and test_list")
    asserts = _lines(record["test_list"]) + (_lines(record.get("challenge_test_list")) if challenge else [])
    setup = _lines(record.get("test_imports")) + _lines(record.get("test_setup_code"))
    tests = "\n".join(line.replace("\r\n", "\n") for line in setup + asserts) + "\n"
    shown = "\n".join(_lines(record["test_list"]))
    code = str(record["code"]).replace("\r\n", "\n")
    return Problem(
        id=f"MBPP/{record['task_id']}",
        prompt=f"{str(text).strip()}\nYour code should pass these tests:\n{shown}",
        solution=code,
        metadata={"language": "python", "tests": tests, "timeout_s": timeout_s, "task_id": int(record["task_id"]),
                  "entry_point": tested_function(code, asserts[0] if asserts else "")},
    )


def load_mbpp(path: str | os.PathLike | None = None, *, variant: str = "full", split: str = "all",
              n: int | None = None, challenge: bool = False) -> list[Problem]:
    """MBPP problems from a local file (default: the shared copy of ``variant``) or, online, the HF dataset
    ``mbpp``; filtered to the task-id range of ``split`` and cut to the first ``n``."""
    if split not in SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; choose from {', '.join(SPLITS)}")
    lo, hi = SPLITS[split]
    records = load_records(path or default_path(variant), split="test" if split == "all" else split)
    chosen = [r for r in records if lo <= int(r.get("task_id", 0)) <= hi]
    if not chosen:
        raise ValueError(f"no MBPP records in split {split!r} (task ids {lo}-{hi})")
    return [mbpp_problem(dict(r), challenge=challenge) for r in select(chosen, n)]


def mbpp_source(path: str | os.PathLike | None = None, **kwargs) -> ListSource:
    """A :class:`ListSource` over :func:`load_mbpp`."""
    return ListSource(load_mbpp(path, **kwargs), name="mbpp")
