"""Batch entry point for ``sdpg verify --task math``: rows ``{"gold", "prediction", "options"?}`` -> verdicts."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sdpg_envs.verifiers.math import MathOptions, default_pool, verify_math


def _verify_row(row: dict) -> dict:
    try:
        return _judge(row)
    except Exception as exc:  # noqa: BLE001 - one bad row must not fail the batch
        return {"score": 0.0, "status": "error", "reason": f"could not verify this row: {type(exc).__name__}"}


def _judge(row: dict) -> dict:
    try:
        options = MathOptions.from_dict(row.get("options"))
    except (TypeError, ValueError) as exc:
        return {"score": 0.0, "status": "error", "reason": f"bad options: {exc}"}
    gold, prediction = row.get("gold"), row.get("prediction")
    if not isinstance(gold, str):
        gold = str(gold) if isinstance(gold, (int, float)) and not isinstance(gold, bool) else gold
    v = verify_math(gold, prediction, options)
    return {"score": v.score, "status": v.status, "reason": v.reason}


def verify_rows(rows: list[dict], *, progress: Callable[[int], None] = lambda n: None) -> list[dict]:
    """Verify every row (in parallel through the worker pool); same order as ``rows``."""
    pool = default_pool()
    out: list[dict] = []
    with ThreadPoolExecutor(max_workers=pool.size) as ex:
        for verdict in ex.map(_verify_row, rows):
            out.append(verdict)
            progress(1)
    return out
