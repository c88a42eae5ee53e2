"""Acceptance sweeps for the math verifier (see docs/benchmarks.md, "Math verifier").

Usage: ``.venv/bin/python benchmarks/math_verify_acceptance.py [--part cases|self|metamorphic|hostile|all]``.
Prints one JSON line per part; ``--disagreements`` lists every case where we differ from the label.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("SDPG_SHARED_DIR", ROOT.parent / "shared")).resolve()

from sdpg_envs.verifiers.math import MathOptions, verify_math  # noqa: E402


def case_options(config: dict) -> MathOptions:
    """Map a Math-Verify case config onto our named options (documented in docs/math_verifier.md)."""
    kwargs: dict = {}
    if "float_rounding" in config:
        kwargs["rounded_prediction_min_digits"] = 1
    if config.get("allow_set_relation_comp") is False:
        kwargs["interval_equals_inequality"] = False
    return MathOptions(**kwargs)


def load_cases() -> list[dict]:
    path = SHARED / "benchmarks" / "math_verify_cases.jsonl"
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def run_cases(show: bool) -> dict:
    rows = load_cases()
    disagreements = []
    for row in rows:
        v = verify_math(row["gold"], row["prediction"], case_options(row.get("config", {})))
        if (v.status == "correct") != row["expected"]:
            disagreements.append({"id": row["id"], "expected": row["expected"], "status": v.status,
                                  "reason": v.reason, "disputed": bool(row.get("label_disputed"))})
    if show:
        for d in disagreements:
            print(json.dumps(d, ensure_ascii=False), file=sys.stderr)
    agree = 1 - len(disagreements) / len(rows)
    return {"part": "cases", "n": len(rows), "agreement": round(agree, 4), "disagreements": len(disagreements),
            "ids": [d["id"] for d in disagreements]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", default="all", choices=["cases", "self", "metamorphic", "hostile", "all"])
    parser.add_argument("--disagreements", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.part in ("cases", "all"):
        print(json.dumps(run_cases(args.disagreements)))
    print(json.dumps({"elapsed_s": round(time.perf_counter() - start, 1)}), file=sys.stderr)


if __name__ == "__main__":
    main()
