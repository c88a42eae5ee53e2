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
    if "float_rounding" in config:  # the case opts in to rounding: both a rounded prediction and a rounded gold
        kwargs["rounded_prediction_min_digits"] = 1
        kwargs["decimal_tolerance"] = True
    if config.get("strict") is False:
        kwargs["rename_variables"] = True
    if not config.get("allow_set_relation_comp", False):  # Math-Verify's default: only a relation gold
        kwargs["interval_equals_inequality"] = "gold_relation"
    return MathOptions(**kwargs)


def load_cases() -> list[dict]:
    path = SHARED / "benchmarks" / "math_verify_cases.jsonl"
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def math_verify_case(row: dict) -> bool | None:
    """Math-Verify's own verdict on a case, its ``config`` mapped onto ``parse``/``verify``; None if not installed."""
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except ImportError:
        return None
    config = row.get("config", {})
    targets = config.get("extraction_targets", ["latex", "expr"])
    priority = config.get("latex_boxed_match_priority", 50)
    extraction = [LatexExtractionConfig(boxed_match_priority=priority) if t == "latex" else ExprExtractionConfig()
                  for t in targets]
    try:
        gold, pred = parse(row["gold"], extraction), parse(row["prediction"], extraction)
        return bool(verify(gold, pred, float_rounding=config.get("float_rounding", 6),
                           strict=config.get("strict", True),
                           allow_set_relation_comp=config.get("allow_set_relation_comp", False)))
    except Exception:  # noqa: BLE001 - a crash counts as "not equal"
        return False


def run_cases(show: bool) -> dict:
    rows = load_cases()
    disagreements = []
    theirs = [math_verify_case(row) for row in rows]
    for row in rows:
        v = verify_math(row["gold"], row["prediction"], case_options(row.get("config", {})))
        if (v.status == "correct") != row["expected"]:
            disagreements.append({"id": row["id"], "expected": row["expected"], "status": v.status,
                                  "reason": v.reason, "disputed": bool(row.get("label_disputed"))})
    if show:
        for d in disagreements:
            print(json.dumps(d, ensure_ascii=False), file=sys.stderr)
    agree = 1 - len(disagreements) / len(rows)
    out = {"part": "cases", "n": len(rows), "agreement": round(agree, 4), "disagreements": len(disagreements),
           "ids": [d["id"] for d in disagreements]}
    if theirs[0] is not None:  # Math-Verify on its own cases, same run (the labels come from its tests)
        wrong = [row["id"] for row, said in zip(rows, theirs) if said != row["expected"]]
        out["math_verify_agreement"] = round(1 - len(wrong) / len(rows), 4)
        out["math_verify_ids"] = wrong
    return out


def load_golds() -> dict[str, list[str]]:
    """Reference answers of GSM8K test (after ####), MATH test and MATH-500."""
    data = SHARED / "data"
    gsm = [json.loads(x)["answer"].rsplit("####", 1)[1].strip() for x in (data / "gsm8k" / "test.jsonl").open()]
    math = [json.loads(x)["answer"] for x in (data / "math" / "test.jsonl").open()]
    m500 = [json.loads(x)["answer"] for x in (data / "math500" / "test.jsonl").open()]
    return {"gsm8k": gsm, "math": math, "math500": m500}


def run_self(show: bool) -> list[dict]:
    out = []
    for name, golds in load_golds().items():
        failures = []
        for gold in golds:
            for pred in (gold, "\\boxed{" + gold + "}"):
                v = verify_math(gold, pred)
                if v.status != "correct":
                    failures.append({"gold": gold, "prediction": pred, "status": v.status, "reason": v.reason})
        if show:
            for f in failures:
                print(json.dumps(f, ensure_ascii=False), file=sys.stderr)
        n = 2 * len(golds)
        out.append({"part": "self", "dataset": name, "n": n, "consistency": round(1 - len(failures) / n, 5),
                    "failures": len(failures)})
    return out


def _scalar_expr(gold: str):
    """sympy value of a scalar MATH-500 gold, or None for structures/text/unparsable golds."""
    import sympy as sp

    from sdpg_envs.verifiers.math.normalise import normalise
    from sdpg_envs.verifiers.math.parse import parse_answer
    from sdpg_envs.verifiers.math.to_sympy import NotScalar, to_sympy

    try:
        node = parse_answer(normalise(gold))
        if any(k in repr(node) for k in ("'pct'", "'deg'", "'text'", "'rel'", "'base'", "'pm'")):
            return None
        expr = to_sympy(node)
    except (ValueError, NotScalar, TypeError):
        return None
    return expr if isinstance(expr, sp.Expr) else None


def metamorphic_pairs() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(gold, rewrite, kind) lists: equivalent rewrites and perturbations of MATH-500 golds."""
    import re

    import sympy as sp

    accept, reject = [], []
    for gold in load_golds()["math500"]:
        expr = _scalar_expr(gold)
        if expr is not None:
            for kind, fn in (("expand", sp.expand), ("factor", sp.factor), ("rationalise", sp.radsimp),
                             ("together", sp.together)):
                accept.append((gold, sp.latex(fn(expr)), kind))
            if expr.is_number and expr.is_real:
                accept.append((gold, str(sp.N(expr, 20)), "decimal"))
            reject.append((gold, sp.latex(expr + 1), "plus_one"))
            reject.append((gold, sp.latex(expr - 1), "minus_one"))
            if expr != 0:
                reject.append((gold, sp.latex(-expr), "sign_flip"))
            continue
        inner = gold.replace("\\left", "").replace("\\right", "").strip()
        m = re.fullmatch(r"([(\[])(.+),(.+)([)\]])", inner)
        if m and "," not in m.group(2) + m.group(3) and m.group(2).strip() != m.group(3).strip():
            left, a, b, right = m.groups()
            reject.append((gold, f"{left}{b},{a}{right}", "swapped_tuple"))
            swap = {"(": "[", "[": "(", ")": "]", "]": ")"}
            if "infty" not in a:
                reject.append((gold, f"{swap[left]}{a},{b}{right}", "bracket_swap"))
        elif "," in gold and not re.search(r"\d,\\!?\d{3}", gold):
            items = [x for x in gold.replace("\\{", "").replace("\\}", "").split(",") if x.strip()]
            if len(items) >= 2 and "(" not in gold and "[" not in gold:
                reject.append((gold, ", ".join(items[:-1]), "dropped_element"))
    return accept, reject


def run_metamorphic(show: bool) -> list[dict]:
    accept, reject = metamorphic_pairs()
    out = []
    for label, pairs, want in (("accepted", accept, True), ("rejected", reject, False)):
        misses = []
        for gold, pred, kind in pairs:
            v = verify_math(gold, pred)
            if (v.status == "correct") != want:
                misses.append({"gold": gold, "prediction": pred, "kind": kind, "status": v.status, "reason": v.reason})
        if show:
            for miss in misses:
                print(json.dumps(miss, ensure_ascii=False), file=sys.stderr)
        kinds = sorted({k for _, _, k in pairs})
        out.append({"part": "metamorphic", "set": label, "n": len(pairs), "kinds": kinds,
                    "rate": round(1 - len(misses) / max(1, len(pairs)), 4), "misses": len(misses)})
    return out


HOSTILE = [
    "\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}", "\\boxed{10^{10}!}", "\\boxed{9^{9^{9^{9}}}}", "\\boxed{x^{10^{10^{10}}}}",
    "\\boxed{" + "{" * 1000 + "1" + "}" * 1000 + "}", "\\boxed{" + "(" * 1000 + "1" + ")" * 1000 + "}",
    "7" * 50_000, "\\boxed{" + "9" * 50_000 + "}", "\\frac{" * 5000, "\\sqrt{" * 3000 + "2" + "}" * 3000,
    "x" + "^x" * 5000, "\\boxed{(x+1)^{9000}}",
    "The answer is 1e99999999.", "\\(" * 50_000, "$" * 100_000, "\ud800 \\boxed{7}",
]  # fmt: skip


def run_hostile() -> dict:
    import psutil

    from sdpg_envs.verifiers.math import default_pool

    options = MathOptions(timeout_s=2.0)
    default_pool().warm()
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    worst, statuses, peak_rss, latencies = 0.0, [], 0, []
    for pred in HOSTILE:
        start = time.perf_counter()
        statuses.append(verify_math("(x+2)^{9000}", pred, options).status)
        latencies.append(round(time.perf_counter() - start, 2))
        worst = max(worst, latencies[-1])
        peak_rss = max([peak_rss] + [c.memory_info().rss for c in me.children(recursive=True)])
    after = {p.pid for p in me.children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}
    return {"part": "hostile", "n": len(HOSTILE), "timeout_s": options.timeout_s, "worst_latency_s": round(worst, 2),
            "within_budget": worst < options.timeout_s + 1, "statuses": statuses, "latencies_s": latencies,
            "worker_count_before": len(before), "worker_count_after": len(after),
            "peak_worker_rss_mb": round(peak_rss / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", default="all", choices=["cases", "self", "metamorphic", "hostile", "all"])
    parser.add_argument("--disagreements", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.part in ("cases", "all"):
        print(json.dumps(run_cases(args.disagreements)))
    if args.part in ("self", "all"):
        for line in run_self(args.disagreements):
            print(json.dumps(line))
    if args.part in ("metamorphic", "all"):
        for line in run_metamorphic(args.disagreements):
            print(json.dumps(line))
    if args.part in ("hostile", "all"):
        print(json.dumps(run_hostile()))
    print(json.dumps({"elapsed_s": round(time.perf_counter() - start, 1)}), file=sys.stderr)


if __name__ == "__main__":
    main()
