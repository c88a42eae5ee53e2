"""Compile-error metrics used by evaluation: status histogram, compile-error rate, pass rate.

Each function accepts verdicts as :class:`~sdpg_envs.types.VerifierResult` objects, their ``to_dict()`` form
(e.g. ``info["verifier"]``), output rows of ``sdpg verify`` (dicts with ``status``), or bare status strings.

Example:
    >>> summarize(["passed", "compile_error", "wrong_answer", "compile_error"])["compile_error_rate"]
    0.5
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sdpg_envs.verifiers.code.status import STATUSES


def _status(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        if "status" not in item:
            raise ValueError(f"verdict dict has no 'status' key: {sorted(item)}")
        return str(item["status"])
    status = getattr(item, "status", None)
    if status is None:
        raise TypeError(f"cannot read a status from {type(item).__name__}")
    return str(status)


def status_histogram(verdicts: Iterable[Any]) -> dict[str, int]:
    """Count per status: every taxonomy status is present (0 when absent), then any other status seen."""
    counts = dict.fromkeys(STATUSES, 0)
    for verdict in verdicts:
        status = _status(verdict)
        counts[status] = counts.get(status, 0) + 1
    return counts


def _rate(verdicts: Iterable[Any], wanted: str) -> float:
    statuses = [_status(v) for v in verdicts]
    return sum(s == wanted for s in statuses) / len(statuses) if statuses else 0.0


def compile_error_rate(verdicts: Iterable[Any]) -> float:
    """Fraction of verdicts with status ``compile_error`` (0.0 for no verdicts)."""
    return _rate(verdicts, "compile_error")


def pass_rate(verdicts: Iterable[Any]) -> float:
    """Fraction of verdicts with status ``passed`` (0.0 for no verdicts)."""
    return _rate(verdicts, "passed")


def summarize(verdicts: Iterable[Any]) -> dict[str, Any]:
    """``{"n", "pass_rate", "compile_error_rate", "status": histogram, "status_frac": fractions}``."""
    statuses = [_status(v) for v in verdicts]
    hist = status_histogram(statuses)
    n = len(statuses)
    return {"n": n, "pass_rate": pass_rate(statuses), "compile_error_rate": compile_error_rate(statuses),
            "status": hist, "status_frac": {k: (v / n if n else 0.0) for k, v in hist.items()}}
