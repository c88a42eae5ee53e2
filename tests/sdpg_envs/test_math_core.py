"""Extraction, normalisation, parsing and equivalence of the math verifier, including the issue's anchors."""

from __future__ import annotations

import pytest

from sdpg_envs.types import Problem, VerifierResult
from sdpg_envs.verifiers import Verifier
from sdpg_envs.verifiers.math import MathOptions, MathVerifier, extract_answer, verify_math
from sdpg_envs.verifiers.math.normalise import normalise
from sdpg_envs.verifiers.math.parse import parse_answer

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("text", "answer", "method"),
    [
        ("so the total is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "boxed"),
        ("nested \\boxed{\\frac{\\sqrt{3}}{2}} done", "\\frac{\\sqrt{3}}{2}", "boxed"),
        ("first \\boxed{1}. Wait, no.\n\nActually \\boxed{2}", "2", "boxed"),
        ("the answer is \\boxed 5.", "5", "boxed"),
        ("\\fbox{7}", "7", "boxed"),
        ("Natalia sold 48/2 = 24 clips.\n#### 72", "72", "gsm8k"),
        ("Thus the answer is $x=3$. I hope it is correct.", "x=3", "phrase"),
        ("Final Answer: The final answer is 12,000,023. I hope it is correct.", "12,000,023", "phrase"),
        ("We get 3 apples and then 4 more, 7 in total", "7", "last_number"),
        ("\\boxed{1}, \\boxed{2}", "1, 2", "boxed"),
        ("<think>maybe \\boxed{3}</think> so \\boxed{4}", "4", "boxed"),
    ],
)
def test_extraction(text: str, answer: str, method: str) -> None:
    found = extract_answer(text)
    assert (found.answer, found.method) == (answer, method)


def test_extraction_without_fallback_finds_nothing() -> None:
    strict = MathOptions(allow_last_number_fallback=False)
    assert extract_answer("We get 3 apples and then 4 more, 7 in total", strict).answer is None
    assert verify_math("7", "We get 3 apples and 4 more, 7 in total", strict).status == "unparsable"


def test_hedged_answers_are_rejected() -> None:
    v = verify_math("3", "It is \\boxed{3} or maybe \\boxed{5}")
    assert v.status == "incorrect" and "several" in v.reason
    lenient = MathOptions(reject_hedged=False)
    assert verify_math("5", "It is \\boxed{3} or maybe \\boxed{5}", lenient).status == "correct"
    assert verify_math("5", "It is \\boxed{3} or maybe \\boxed{5}").status == "incorrect"
    assert verify_math("3", "So \\boxed{3}, i.e. \\boxed{3}").status == "correct"  # repeating is not hedging


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\\left( \\dfrac{1}{2}, 3 \\right)", "(\\frac{1}{2}, 3)"),
        ("\\$1{,}000.50", "1000.50"),
        ("32,\\!000", "32000"),
        ("5\\text{ cm}", "5"),
        ("90^\\circ", "90°"),
        ("30\\%", "30%"),
        ("\\text{(C)}", "C"),
        ("6 \\text{ and } 8", "6,8"),
    ],
)
def test_normalise(raw: str, clean: str) -> None:
    assert normalise(raw) == clean


def test_parser_shapes() -> None:
    assert parse_answer("\\frac12") == ("div", ("int", "1"), ("int", "2"))
    assert parse_answer("[1,2)")[0] == "interval"
    assert parse_answer("\\{1,2\\}")[0] == "set"
    assert parse_answer("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}")[0] == "matrix"
    assert parse_answer("2\\frac{1}{2}") == ("add", (("int", "2"), ("div", ("int", "1"), ("int", "2"))))


ANCHORS_ACCEPT = [
    ("\\frac{1}{2}", "2/4"),  # Hendrycks' normaliser rejects this
    ("1-\\frac{1}{\\mathrm{e}}", "1 - e^{-1}"),  # \mathrm{e} is Euler's number
    ("e^{2}", "exp(2)"),
    ("y = 2x + 1", "2x - y + 1 = 0"),  # plain-text equation, rearranged
    ("x^2 + 2x + 1", "(x+1)^2"),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
    ("42", "The answer is \\boxed{42}."),
    ("1,000", "1000"),
    ("72", "Natalia sold 24 clips in May.\n#### 72"),
    ("\\tan^2 y + 1", "\\sec^2 y"),
    ("3+4i", "4i+3"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("1.5\\times 10^{3}", "1500"),
    ("[1, \\infty)", "x \\ge 1"),
    ("(-\\infty, 2) \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,2)"),
    ("\\{1, 2, 3\\}", "3, 1, 2"),
    ("\\pm 2", "-2, 2"),
    ("1 \\pm \\sqrt{19}", "1 - \\sqrt{19}, 1 + \\sqrt{19}"),
    ("x = 5", "5"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1, 2)"),
    ("\\text{Evelyn}", "evelyn"),
    ("\\text{(C)}", "C"),
    ("\\emptyset", "\\varnothing"),
    ("0.5", "\\frac{1}{2}"),
    ("\\frac{1}{12}", "0.0833333333333333"),  # >= 12 significant digits: the float of the exact value
    ("p=5,q=2;p=7,q=2", "(5,2),(7,2)"),
    ("18", "**Answer:** 18"),  # markdown bold
    ("1\\le |z| \\le \\frac{3}{2}", "z \\in [-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2}]"),  # solved with sympy
    ("x^2 < 4", "(-2, 2)"),
    ("0.5", "\\boxed{1/2}"),
    (
        "\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}",
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}+\\begin{pmatrix}5&6\\\\7&8\\end{pmatrix}",
    ),
]
ANCHORS_REJECT = [
    ("\\frac{1}{2004!}", "\\frac{1}{2006!}"),  # Math-Verify accepts this
    ("50", "0.5"),  # the Qwen grader accepts these two
    ("10000", "10001"),
    ("1-\\frac{1}{\\mathrm{e}}", "1+\\frac{1}{\\mathrm{e}}"),
    ("[0, 1)", "(0, 1]"),
    ("(1, 2)", "(2, 1)"),
    ("\\{1, 2, 3\\}", "1, 2"),
    ("\\pm 2", "2"),
    ("x > 5", "x < 5"),
    ("y = 2x+1", "y = 2x-1"),
    ("3.14", "3.2"),
    ("2.5", "2.54"),  # no default tolerance (opt-in: decimal_tolerance)
    ("3.14", "\\pi"),
    ("\\frac{1}{3}", "0.33"),  # exact gold: no tolerance by default
    ("a+3z=0", "0"),
    ("\\text{Evelyn}", "Carla"),
    ("x = 2", "y = 2"),  # different unknowns (see option rename_variables)
    ("x^2 < 4", "[-2, 2]"),
]


@pytest.mark.parametrize(("gold", "pred"), ANCHORS_ACCEPT)
def test_anchor_accepted(gold: str, pred: str) -> None:
    v = verify_math(gold, pred)
    assert (v.status, v.score) == ("correct", 1.0), v


@pytest.mark.parametrize(("gold", "pred"), ANCHORS_REJECT)
def test_anchor_rejected(gold: str, pred: str) -> None:
    v = verify_math(gold, pred)
    assert v.status == "incorrect" and v.score == 0.0, v


def test_reason_hides_gold_unless_allowed() -> None:
    v = verify_math("137", "\\boxed{12}")
    assert v.reason == "final answer 12 is not equal to the reference" and "137" not in v.reason
    assert "137" in verify_math("137", "\\boxed{12}", MathOptions(reveal_gold_in_reason=True)).reason
    prose = "I do not know how to solve this problem, sorry."
    assert verify_math("137", prose).status == "unparsable"
    assert verify_math("137", prose).reason == "no final answer found"


def test_structured_fields() -> None:
    v = verify_math("\\dfrac{1}{2}", "so \\boxed{\\frac{2}{4}}")
    fields = (v.gold_normalized, v.prediction_normalized, v.extracted)
    assert fields == ("\\frac{1}{2}", "\\frac{2}{4}", "\\frac{2}{4}")
    with pytest.raises(AttributeError):
        v.score = 0.0  # frozen


def test_bad_inputs_become_verdicts() -> None:
    assert verify_math(None, "1").status == "error"  # type: ignore[arg-type]
    assert verify_math("1", None).status == "unparsable"  # type: ignore[arg-type]
    assert verify_math("1", "\\boxed{(((}").status == "unparsable"


def test_math_verifier_protocol_and_batch() -> None:
    verifier = MathVerifier()
    assert isinstance(verifier, Verifier)
    problems = [Problem(id=str(i), prompt="p", answer=str(i)) for i in range(6)]
    completions = [f"\\boxed{{{i if i % 2 == 0 else i + 1}}}" for i in range(6)]
    results = verifier.batch(problems, completions)
    assert [r.score for r in results] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    one = verifier(Problem(id="x", prompt="p", answer="\\sqrt{2}/2"), "\\boxed{\\frac{1}{\\sqrt 2}}")
    assert isinstance(one, VerifierResult) and one.passed and one.status == "correct"
    assert set(one.details) == {"gold_normalized", "prediction_normalized", "extracted", "reason"}
    assert one.feedback == one.details["reason"]
    with pytest.raises(ValueError):
        verifier.batch(problems, completions[:2])
