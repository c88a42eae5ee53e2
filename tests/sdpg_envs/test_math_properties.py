"""Property tests (hypothesis): the verifier never raises, and exact arithmetic facts hold."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdpg_envs.verifiers.math import MathOptions, extract_answer, verify_math
from sdpg_envs.verifiers.math.normalise import normalise

STATUSES = {"correct", "incorrect", "unparsable", "timeout", "error"}
LATEX_ALPHABET = st.sampled_from(list("0123456789+-*/^_()[]{},.=<>!|%$ xyzabce\\#") + [
    "\\frac", "\\sqrt", "\\boxed", "\\pi", "\\infty", "\\cup", "\\pm", "\\left(", "\\right)", "\\text{cm}",
    "\\begin{pmatrix}", "\\end{pmatrix}", "\\\\", "&", "\\{", "\\}", "^\\circ", "\\%", "####", "\\le", "!",
])  # fmt: skip
FAST = MathOptions(timeout_s=2.0)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.timeout(170)
@SETTINGS
@given(st.lists(LATEX_ALPHABET, max_size=30).map("".join), st.lists(LATEX_ALPHABET, max_size=30).map("".join))
def test_never_raises_on_latex_soup(gold: str, pred: str) -> None:
    v = verify_math(gold, pred, FAST)
    assert v.status in STATUSES and v.score in (0.0, 1.0)
    assert (v.score == 1.0) == (v.status == "correct")
    extract_answer(pred)
    normalise(pred)


@pytest.mark.timeout(120)
@SETTINGS
@given(st.text(max_size=200), st.text(max_size=200))
def test_never_raises_on_unicode(gold: str, pred: str) -> None:
    v = verify_math(gold, pred, FAST)
    assert v.status in STATUSES


@pytest.mark.timeout(120)
@SETTINGS
@given(st.fractions(min_value=-10**6, max_value=10**6, max_denominator=10**4),
       st.integers(min_value=1, max_value=50))
def test_scaled_fractions_are_equal(value: Fraction, k: int) -> None:
    gold = f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    pred = f"\\boxed{{\\dfrac{{{value.numerator * k}}}{{{value.denominator * k}}}}}"
    assert verify_math(gold, pred, FAST).status == "correct"
    other = value + Fraction(1, value.denominator * 7)
    assert verify_math(gold, f"{other.numerator}/{other.denominator}", FAST).status == "incorrect"


@pytest.mark.timeout(120)
@SETTINGS
@given(st.integers(min_value=-10**12, max_value=10**12))
def test_integers_and_thousands(n: int) -> None:
    assert verify_math(str(n), f"The result is {n:,}.\n#### {n:,}", FAST).status == "correct"
    assert verify_math(str(n), f"\\boxed{{{n + 1}}}", FAST).status == "incorrect"
