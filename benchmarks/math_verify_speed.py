"""Throughput of our math verifier vs Math-Verify (``pip install -e .[bench]``), measured in the same run.

Sets (one JSON line each):
- ``math500_self``: the MATH-500 self-consistency set, ``(gold, gold)`` and ``(gold, "\\boxed{gold}")`` -> 1000
  pairs, every label "equivalent" (the set named by the acceptance criteria).
- ``math500_metamorphic``: sympy rewrites (must accept) and perturbations (must reject) of MATH-500 golds, harder
  pairs that need real parsing/sympy work on both sides.

Usage: ``.venv/bin/python benchmarks/math_verify_speed.py [--repeat 1]``. Both verifiers run single-threaded in the
main thread (Math-Verify's timeout needs the main thread); ours uses its worker pool for sympy, warmed first.
Bare strings are wrapped in ``$...$`` for Math-Verify, whose LaTeX extraction needs delimiters or a box.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from math_verify_acceptance import load_golds, metamorphic_pairs  # noqa: E402

from sdpg_envs.verifiers.math import default_pool, verify_math  # noqa: E402


def ours(gold: str, pred: str) -> bool:
    return verify_math(gold, pred).status == "correct"


def baseline() -> Callable[[str, str], bool]:
    from math_verify import parse, verify

    def wrap(text: str) -> str:  # Math-Verify's LaTeX extraction wants math delimiters or a box
        return text if ("$" in text or "\\boxed" in text) else f"${text}$"

    def judge(gold: str, pred: str) -> bool:
        try:
            return bool(verify(parse(wrap(gold)), parse(wrap(pred))))
        except Exception:  # noqa: BLE001 - a crash counts as "not equivalent"
            return False

    return judge


def measure(fn: Callable[[str, str], bool], pairs: list[tuple[str, str, bool]], repeat: int) -> tuple[float, float]:
    """(verifications per second, agreement with the labels)."""
    agree, start = 0, time.perf_counter()
    for _ in range(repeat):
        agree = sum(fn(g, p) == label for g, p, label in pairs)
    elapsed = time.perf_counter() - start
    return repeat * len(pairs) / elapsed, agree / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    golds = load_golds()["math500"]
    accept, reject = metamorphic_pairs()
    sets = {
        "math500_self": [(g, g, True) for g in golds] + [(g, "\\boxed{" + g + "}", True) for g in golds],
        "math500_metamorphic": [(g, p, True) for g, p, _ in accept] + [(g, p, False) for g, p, _ in reject],
    }
    default_pool().warm()
    theirs = baseline()
    for name, pairs in sets.items():
        ours_rate, ours_agree = measure(ours, pairs, args.repeat)
        base_rate, base_agree = measure(theirs, pairs, args.repeat)
        print(json.dumps({
            "set": name, "n": len(pairs), "ours_per_s": round(ours_rate, 1), "baseline_per_s": round(base_rate, 1),
            "ratio": round(ours_rate / base_rate, 2), "ours_agreement": round(ours_agree, 4),
            "baseline_agreement": round(base_agree, 4), "baseline": "math-verify",
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
