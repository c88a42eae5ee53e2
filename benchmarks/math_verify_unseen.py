"""Score the unseen corpus (``benchmarks/data/math_unseen.jsonl``) with our verifier and Math-Verify in one run.

Prints one JSON line: agreement with the labels, false positives/negatives, per-category errors, and throughput of
both verifiers (single-threaded, same rows, same process; ours uses its warmed worker pool for sympy).
Math-Verify (``pip install -e .[bench]``) gets the gold wrapped in ``$...$`` and the raw response.

Usage: ``python benchmarks/math_verify_unseen.py [--split heldout|tune|all] [--disagreements]``
(``--disagreements`` lists our misses on stderr; use it on the tuning split only, never to tune on held-out rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "benchmarks" / "data" / "math_unseen.jsonl"

from sdpg_envs.verifiers.math import default_pool, verify_math  # noqa: E402


def load(split: str) -> list[dict]:
    rows = [json.loads(x) for x in CORPUS.open(encoding="utf-8") if x.strip()]
    return rows if split == "all" else [r for r in rows if r["split"] == split]


def ours(gold: str, pred: str) -> bool:
    return verify_math(gold, pred).status == "correct"


def math_verify() -> Callable[[str, str], bool]:
    from math_verify import parse, verify

    def judge(gold: str, pred: str) -> bool:
        try:
            return bool(verify(parse(f"${gold}$"), parse(pred)))
        except Exception:  # noqa: BLE001 - a crash counts as "not correct"
            return False

    return judge


def score(fn: Callable[[str, str], bool], rows: list[dict]) -> tuple[dict, list[bool], float]:
    start = time.perf_counter()
    said = [fn(r["gold"], r["prediction"]) for r in rows]
    elapsed = time.perf_counter() - start
    fp = sum(s and not r["label"] for s, r in zip(said, rows))
    fn_ = sum(r["label"] and not s for s, r in zip(said, rows))
    cats: dict[str, dict[str, int]] = {}
    for s, r in zip(said, rows):
        c = cats.setdefault(r["category"], {"n": 0, "fp": 0, "fn": 0})
        c["n"] += 1
        c["fp"] += int(s and not r["label"])
        c["fn"] += int(r["label"] and not s)
    summary = {"agreement": round(1 - (fp + fn_) / len(rows), 4), "fp": fp, "fn": fn_,
               "per_s": round(len(rows) / elapsed, 1), "by_category": cats}
    return summary, said, elapsed


HOSTILE_100KB = {  # 100 kB responses that made the old regex extraction quadratic, or are just large
    "unclosed_paren_math": "\\(" * 50_000, "unclosed_bracket_math": "\\[" * 50_000, "dollars": "$" * 100_000,
    "dollar_a": "$a" * 50_000, "display_math": "$$x" * 33_333, "digits_commas": "1," * 50_000,
    "boxes": "\\boxed{1}" * 11_111, "answer_is": "the answer is " * 7_142, "prose": "so we get 12 apples. " * 4_761,
}


def worst_extraction_ms() -> tuple[float, str]:
    """Slowest extraction (best of 3) over the 100 kB inputs: must stay linear (<= 100 ms)."""
    from sdpg_envs.verifiers.math import extract_answer

    worst = (0.0, "")
    for name, text in HOSTILE_100KB.items():
        best = min(_timed(extract_answer, text) for _ in range(3))
        worst = max(worst, (best * 1000, name))
    return round(worst[0], 1), worst[1]


def _timed(fn: Callable, arg: str) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", default="heldout", choices=["heldout", "tune", "all"])
    parser.add_argument("--disagreements", action="store_true")
    args = parser.parse_args()
    rows = load(args.split)
    default_pool().warm()
    ours_sum, ours_said, ours_s = score(ours, rows)
    theirs_sum, _, theirs_s = score(math_verify(), rows)
    if args.disagreements:
        for s, r in zip(ours_said, rows):
            if s != r["label"]:
                print(json.dumps({"id": r["id"], "label": r["label"], "gold": r["gold"],
                                  "prediction": r["prediction"][:200]}, ensure_ascii=False), file=sys.stderr)
    extraction_ms, slowest = worst_extraction_ms()
    print(json.dumps({
        "set": f"math_unseen_{args.split}", "n": len(rows), "ours": ours_sum, "math_verify": theirs_sum,
        "fp_ratio": round(ours_sum["fp"] / max(1, theirs_sum["fp"]), 3),
        "speed_ratio": round(theirs_s / ours_s, 2),
        "worst_100kB_extraction_ms": extraction_ms, "worst_100kB_input": slowest,
    }))


if __name__ == "__main__":
    main()
