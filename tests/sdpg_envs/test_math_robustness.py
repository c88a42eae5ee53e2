"""Issue 14: false positives (bases, decimals, brackets, angles, hedges, false equations, identities), the listed
false negatives, and hypothesis properties that derive wrong answers from golds and must be rejected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdpg_envs.verifiers.math import MathOptions, extract_answer, verify_math

ROOT = Path(__file__).resolve().parents[2]
FAST = MathOptions(timeout_s=2.0)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ok(gold: str, pred: str, **options) -> bool:
    return verify_math(gold, pred, MathOptions(**options)).status == "correct"


# --- false positives ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("gold", "pred", "want"), [
    ("443_5", "\\boxed{443_5}", True),
    ("443_5", "\\boxed{443}", True),  # the digits, read in the gold's base
    ("443_5", "\\boxed{123}", False),  # the decimal value (= the question's own number)
    ("443_5", "\\boxed{123_{10}}", False),
    ("443_5", "\\boxed{434_5}", False),
    ("1202_3", "\\boxed{47}", False),  # not even base-3 digits
    ("141_{13}", "141", True),
])
def test_base_n_compared_in_the_golds_base(gold: str, pred: str, want: bool) -> None:
    assert ok(gold, pred) is want


def test_no_default_decimal_tolerance() -> None:
    assert not ok("2.5", "2.54") and not ok("187.5", "187.45") and not ok("0.43", "0.429")
    assert ok("2.5", "2.50") and ok("2.5", "\\frac{5}{2}") and ok(".5", "0.5")
    assert ok("2.5", "2.54", decimal_tolerance=True)  # opt-in ("to the nearest tenth")


@pytest.mark.parametrize(("gold", "pred"), [
    ("(1,4)", "[1,4]"), ("[-10,4]", "(-10,4)"), ("[6,\\infty)", "(6,\\infty)"),
    ("(-\\infty,0]\\cup[4,\\infty)", "(-\\infty,0)\\cup(4,\\infty)"),
])
def test_bracket_types_kept(gold: str, pred: str) -> None:
    assert not ok(gold, pred) and ok(gold, gold)


def test_angles_only_in_the_golds_unit() -> None:
    assert ok("25^\\circ", "25") and ok("25^\\circ", "25°") and not ok("25^\\circ", "\\frac{5\\pi}{36}")
    assert ok("\\frac{\\pi}{3}", "\\pi/3") and not ok("\\frac{\\pi}{3}", "60^\\circ")
    assert not ok("\\frac{\\pi}{3}", "60")


@pytest.mark.parametrize("pred", [
    "So we get \\boxed{18}.\n\nHmm, re-reading the problem, it should be \\boxed{20}.",
    "\\boxed{20}\n\nThe answer is 18.",
    "\\boxed{18}\n\nThe answer is 20.",
    "It is either \\boxed{18} or \\boxed{20}.",
    "```\nanswer = 18\n```\nI am not sure, so I give no final answer.",
    "```python\nrevenue = 9 * 2  # 18\n```",
    "The answer is \\boxed{9 \\times 3 = 18}.",
    "The answer is \\boxed{19 = 18}.",
    "#### 20\n#### 18",
    "I think the answer is 18, but it might be 20.",
    "It could be 20 or 18.",
])
def test_hedges_code_and_false_equations_rejected(pred: str) -> None:
    assert not ok("18", pred)


@pytest.mark.parametrize("pred", [
    "\\boxed{18}. The answer is 18 dollars.",
    "The answer is \\boxed{9 \\times 2 = 18}.",
    "```python\nprint(9 * 2)\n```\nRunning this prints 18.",
    "First I got 20 eggs, but I forgot a step. Redoing it gives \\boxed{18}.",
    "The answer is 18, since 9 + 9 = 18.",
    "The answer is 18 since she has 2 bags with 9 each.",
    "The answer is probably 18.",
    "It is \\boxed{18} or, written differently, \\boxed{\\frac{36}{2}}.",
    "Then \\boxed{\\phantom{2}} must be \\boxed{18}.",
    "```python\nprint(18)\n```\nOutput: 18",
])
def test_consistent_answers_still_accepted(pred: str) -> None:
    assert ok("18", pred)


def test_identities_use_negative_and_fractional_points() -> None:
    assert not ok("a^3 + a^2", "|a|^3 + a^2") and not ok("x", "\\sqrt{x^2}") and not ok("|x|", "x")
    assert ok("x^3 + 2x^2 + x", "x(x+1)^2") and ok("\\frac{h^2}{m}", "\\frac{|h|^2}{m}")
    assert ok("2x^2-18", "2|x|^2-18")  # "2|x|" is a product, not the list 2, |x|


# --- false negatives ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("gold", "pred"), [
    ("260", "Altogether they have \\boxed{260 \\text{ sheep}}."),
    ("7", "So she eats \\boxed{7 \\text{ dozen}} eggs."),
    ("319", "So the answer is 319 seats."),
    ("7,9,12,13", "The four integers are $7$, $9$, $12$, and $13$."),
    ("2,6", "The real solutions are $x = 2$ and $x = 6$."),
    ("(-\\infty, 2) \\cup (3, \\infty)", "The domain is $\\boxed{x<2 \\text{ or } x>3}$."),
    ("\\frac{1}{3}", "\\boxed{0.\\overline{3}}"),
    ("\\frac{30}{11}", "\\boxed{2.\\overline{72}}"),
    ("\\frac{1}{6}", "\\boxed{0.1666\\ldots}"),
    ("9\\text{ a.m.}", "It arrives at 9:00 AM Denver time."),
    ("\\text{1:03 PM}", "\\boxed{\\text{1:03 p.m.}}"),
    ("\\frac{2}{5}", "The probability is $\\boxed{40\\%}$."),
    ("6\\frac15", "As a mixed number this is 6 1/5."),
    ("3\\frac18", "So it takes 3 1/8 hours."),
])
def test_listed_false_negatives_accepted(gold: str, pred: str) -> None:
    assert ok(gold, pred)


@pytest.mark.parametrize(("gold", "pred"), [
    ("(-\\infty, 2) \\cup (3, \\infty)", "\\boxed{x<2 \\text{ and } x>3}"),  # "and": the empty set
    ("(-\\infty, 2) \\cup (3, \\infty)", "\\boxed{x \\le 2 \\text{ or } x \\ge 3}"),
    ("\\frac{1}{33}", "\\boxed{0.0\\overline{3}}"),
    ("\\frac{1}{3}", "\\boxed{0.33}"),
    ("9\\text{ a.m.}", "\\boxed{9 \\text{ p.m.}}"),
    ("6\\frac15", "\\boxed{5 1/5}"),
    ("7,9,12,13", "The integers are $7$, $9$ and $12$."),
    ("5", "\\boxed{5 \\text{ thousand}}"),  # value-changing words are never dropped as units
    ("5", "5 squared"),
])
def test_near_misses_of_the_new_readings_rejected(gold: str, pred: str) -> None:
    assert not ok(gold, pred)


def test_code_blocks_are_not_answers() -> None:
    assert extract_answer("```\nx = 41\n```\nSo I give up.").answer is None
    assert extract_answer("```\nprint(1)\n```\nThe answer is 7.").answer == "7"


# --- properties: wrong answers derived from golds are rejected ---------------------------------------------
ints = st.integers(min_value=-999, max_value=999)


@SETTINGS
@given(ints, st.integers(min_value=1, max_value=50))
def test_perturbed_values_and_hedges_rejected(g: int, d: int) -> None:
    assert verify_math(str(g), f"\\boxed{{{g}}}", FAST).status == "correct"
    for pred in (f"\\boxed{{{g + d}}}", f"The answer is {g} or {g + d}.", f"\\boxed{{{g}}}\n\nor \\boxed{{{g - d}}}",
                 f"\\boxed{{{g - d}}}\n\nThe answer is {g}.", f"\\boxed{{{g + d} = {g}}}",
                 f"\\boxed{{{g - d}, {g}, {g + d}}}"):
        assert verify_math(str(g), pred, FAST).status != "correct", pred


@SETTINGS
@given(st.lists(ints, min_size=2, max_size=5, unique=True), ints)
def test_dropped_or_extra_set_elements_rejected(items: list[int], extra: int) -> None:
    gold = ", ".join(map(str, items))
    assert verify_math(gold, ", ".join(map(str, reversed(items))), FAST).status == "correct"
    assert verify_math(gold, ", ".join(map(str, items[1:])), FAST).status != "correct"
    if extra not in items:
        assert verify_math(gold, f"{gold}, {extra}", FAST).status != "correct"


@SETTINGS
@given(ints, st.integers(min_value=1, max_value=99), st.sampled_from(["()", "[]", "(]", "[)"]),
       st.sampled_from(["()", "[]", "(]", "[)"]))
def test_swapped_brackets_rejected(a: int, width: int, gb: str, pb: str) -> None:
    gold, pred = f"{gb[0]}{a}, {a + width}{gb[1]}", f"{pb[0]}{a}, {a + width}{pb[1]}"
    assert (verify_math(gold, pred, FAST).status == "correct") is (gb == pb)


@SETTINGS
@given(st.integers(min_value=1, max_value=179))
def test_other_angle_units_rejected(deg: int) -> None:
    from fractions import Fraction

    r = Fraction(deg, 180)
    rad = f"\\frac{{{r.numerator}\\pi}}{{{r.denominator}}}"
    assert verify_math(f"{deg}^\\circ", str(deg), FAST).status == "correct"
    assert verify_math(f"{deg}^\\circ", rad, FAST).status != "correct"
    assert verify_math(rad, f"{deg}^\\circ", FAST).status != "correct"


@SETTINGS
@given(st.integers(min_value=2, max_value=10_000), st.integers(min_value=2, max_value=9))
def test_other_bases_rejected(value: int, base: int) -> None:
    digits = ""
    v = value
    while v:
        digits, v = str(v % base) + digits, v // base
    gold = f"{digits}_{{{base}}}"
    assert verify_math(gold, digits, FAST).status == "correct"
    if digits != str(value):
        assert verify_math(gold, str(value), FAST).status != "correct"
    other = base + 1 if base < 9 else base - 1
    assert verify_math(gold, f"{digits}_{{{other}}}", FAST).status != "correct"


# --- bounded work and isolated rows ------------------------------------------------------------------------
@pytest.mark.timeout(30)
@pytest.mark.parametrize("pred", ["The answer is 1e99999999.", "\\boxed{1e-99999999}", "\\boxed{2.5e100000 + 1}"])
def test_huge_decimal_exponent_is_refused_not_evaluated(pred: str) -> None:
    v = verify_math("5", pred, MathOptions(timeout_s=1.0))
    assert v.status == "unparsable" and "too large" in v.reason


@pytest.mark.timeout(30)  # quadratic scanning took > 60 s on these; linear takes well under a second
@pytest.mark.parametrize("text", ["\\(" * 50_000, "\\[" * 50_000, "$" * 100_000, "$$x" * 30_000 + " 7"])
def test_extraction_of_unclosed_delimiters_is_linear(text: str) -> None:
    assert verify_math("7", text, FAST).status in ("correct", "incorrect", "unparsable")


def test_math_segments_pairing() -> None:
    from sdpg_envs.verifiers.math.extract import math_segments

    text = "a $x$ b $$y$$ \\(z\\) \\[w\\] cost \\$5 $\n \\( open $q$"
    assert [s.content for s in math_segments(text)] == ["x", "y", "z", "w", "q"]


@pytest.mark.timeout(120)
def test_cli_bad_rows_affect_only_themselves(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"gold": "5", "prediction": "\\ud800 5"}\n{"gold": "5", "prediction": "\\\\boxed{5}"}\n'
                   '{"gold": "5", "prediction": "The answer is 1e99999999."}\n', encoding="utf-8")
    cmd = [sys.executable, "-m", "sdpg_train.cli", "verify", "--task", "math", "--input", str(src),
           "--output", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=100, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr  # every line judged
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["status"] for x in lines] == ["unparsable", "correct", "unparsable"]
    assert lines[0]["prediction"] == "\ud800 5"  # written back as the JSON escape it came in as


@pytest.mark.timeout(60)
def test_worker_start_counts_against_the_callers_timeout() -> None:
    from sdpg_envs.verifiers.math import WorkerPool
    from sdpg_envs.verifiers.math.pool import _Worker

    pool = WorkerPool(1)
    starting = _Worker()  # cold: it needs far longer than 10 ms to import sympy
    pool._idle.append(starting)
    try:
        v = verify_math("x^2", "x \\cdot x + 0", MathOptions(timeout_s=0.01), pool=pool)
        assert v.status == "timeout"
        (pid,) = pool.pids()
        assert pid == starting.proc.pid  # the starting worker was kept, not killed and replaced
        assert verify_math("x^2", "x \\cdot x + 0", MathOptions(timeout_s=30), pool=pool).status == "correct"
        assert pool.pids() == [pid]
    finally:
        pool.close()
