"""``verify_rows`` for ``sdpg verify --task code`` (see ``sdpg_train/commands/verify.py`` and DESIGN.md).

Each input row: ``{"id", "program", "tests", "timeout_s"}`` where ``program`` is Python source and ``tests``
Python code with asserts run against it; optionally ``"language": "c"`` (or ``"cpp"``) with ``tests`` as
``(stdin, expected stdout)`` pairs, ``"entry_point"`` (call ``check(<entry_point>)``) and ``"preamble"``.
Each output: ``{"score": 0|1, "status": <taxonomy>, "feedback"}``; a row that cannot be judged (bad tests,
bad timeout) gets ``status: "error"`` with the reason as feedback. ``program`` is used as is (no extraction).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sdpg_envs.verifiers.code import CodeVerifier, TestSpec


def _spec(row: dict[str, Any]) -> TestSpec:
    language = str(row.get("language") or "python").lower().replace("c++", "cpp")
    timeout = row.get("timeout_s", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"timeout_s must be a number, got {timeout!r}")
    if not isinstance(row.get("program"), str):
        raise ValueError("program must be a string")
    return TestSpec(tests=row["tests"], language=language, entry_point=row.get("entry_point"),
                    preamble=str(row.get("preamble") or ""), timeout_s=float(timeout))


def verify_rows(rows: list[dict[str, Any]], *, progress: Callable[[int], Any] | None = None,
                sandbox: str | None = None) -> list[dict[str, Any]]:
    """Judge every row (in parallel through the sandbox's ``run_many``); results in input order.

    Args:
        rows: Parsed input lines (each has ``program`` and ``tests``).
        progress: Called with the number of rows finished (e.g. ``tqdm.update``).
        sandbox: Sandbox kind (default: ``$SDPG_SANDBOX`` or ``"auto"``).
    """
    out: list[dict[str, Any] | None] = [None] * len(rows)
    specs: dict[int, TestSpec] = {}
    for i, row in enumerate(rows):
        try:
            specs[i] = _spec(row)
        except (ValueError, TypeError) as exc:
            out[i] = {"score": 0, "status": "error", "feedback": f"cannot judge this line: {exc}"[:2000]}
            if progress:
                progress(1)
    order = sorted(specs)
    with CodeVerifier(sandbox or os.environ.get("SDPG_SANDBOX", "auto")) as verifier:
        chunk = 64  # report progress as chunks finish; each chunk runs in parallel
        for start in range(0, len(order), chunk):
            ids = order[start:start + chunk]
            results = verifier.verify_code([rows[i]["program"] for i in ids], [specs[i] for i in ids])
            for i, result in zip(ids, results):
                out[i] = {"score": int(result.passed), "status": result.status, "feedback": result.feedback}
            if progress:
                progress(len(ids))
    return [r for r in out if r is not None]
