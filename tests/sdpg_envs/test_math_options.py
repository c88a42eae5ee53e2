"""Every asymmetric choice of MathOptions, tested both ways."""

from __future__ import annotations

import pytest

from sdpg_envs.verifiers.math import MathOptions, verify_math

pytestmark = pytest.mark.timeout(120)


def status(gold: str, pred: str, **options) -> str:
    return verify_math(gold, pred, MathOptions(**options)).status


@pytest.mark.parametrize(
    ("gold", "pred", "option", "on", "off"),
    [
        ("90^\\circ", "\\frac{\\pi}{2}", "degrees_mode", "either", "degrees"),
        ("\\frac{\\pi}{2}", "90^\\circ", "degrees_mode", "radians", "degrees"),
        ("90^\\circ", "\\frac{\\pi}{2}", "degrees_mode", "either", "gold"),
        ("\\frac{\\pi}{2}", "90^\\circ", "degrees_mode", "either", "gold"),
        ("2\\frac{1}{2}", "2.5", "mixed_numbers", True, False),
        ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "(1,2)", "vector_equals_tuple", True, False),
        ("[-2, 7]", "-2 \\le x \\le 7", "interval_equals_inequality", True, False),
        ("x > 5", "(5, \\infty)", "interval_equals_inequality", True, False),
        ("x > 5", "(5, \\infty)", "interval_equals_inequality", "gold_relation", False),
        ("(5, \\infty)", "x > 5", "interval_equals_inequality", True, "gold_relation"),
        ("1, 2", "2, 1", "unordered_lists", True, False),
        ("2x + 2y = 2", "x + y = 1", "equation_scaling", True, False),
        ("5", "x = 5", "strip_variable_assignment", True, False),
        ("\\text{Evelyn}", "evelyn", "text_case_sensitive", False, True),
        ("5", "5\\text{ cm}", "strip_units", True, False),
        ("f(x) = 2x", "f(t) = 2t", "rename_variables", True, False),
        ("x^2 + 1", "t^2 + 1", "rename_variables", True, False),
        ("\\frac{1}{3}", "0.3333", "rounded_prediction_min_digits", 4, None),
        ("3.14", "\\pi", "decimal_tolerance", True, False),
        ("12345", "12,345", "thousands_separators", True, False),
        ("2.5", "2,5", "decimal_comma", "auto", False),
        ("2.5", "2,5", "decimal_comma", True, False),
        ("4", "We take 3 steps, then 4", "allow_last_number_fallback", True, False),
    ],
)
def test_option_both_ways(gold: str, pred: str, option: str, on, off) -> None:
    assert status(gold, pred, **{option: on}) == "correct"
    assert status(gold, pred, **{option: off}) != "correct"


def test_percent_modes() -> None:
    # "gold" (default): % on one side only allows both readings (a percent answers a fraction gold).
    assert status("28\\%", "0.28") == "correct"
    assert status("28\\%", "28") == "correct"
    assert status("50", "50\\%") == "correct"
    assert status("0.5", "50\\%") == "correct"
    assert status("\\frac{2}{5}", "40\\%") == "correct"
    assert status("\\frac{2}{5}", "4\\%") == "incorrect"
    assert status("28\\%", "0.28\\%") == "incorrect"
    # "strict": the sign is dropped on both sides, numbers must match
    assert status("28\\%", "0.28", percent_mode="strict") == "incorrect"
    assert status("28\\%", "28", percent_mode="strict") == "correct"
    # "fraction": % always means /100
    assert status("0.5", "50\\%", percent_mode="fraction") == "correct"
    assert status("50", "50\\%", percent_mode="fraction") == "incorrect"


def test_decimal_comma_auto_only_against_decimals() -> None:
    assert status("0, 1", "0,1") == "correct"  # a list in MATH
    assert status("\\{0, 1\\}", "0,1") == "correct"
    assert status("0.1", "0,1") == "correct"  # auto: decimal reading only against a decimal gold


def test_degrees_default_either_way() -> None:
    assert status("90^\\circ", "90") == "correct"
    assert status("\\frac{\\pi}{2}", "90") == "incorrect"  # no degree sign: 90 radians is not pi/2


def test_from_dict_and_validation() -> None:
    opts = MathOptions.from_dict({"percent_mode": "strict", "timeout_s": 2})
    assert opts.percent_mode == "strict" and opts.timeout_s == 2
    assert MathOptions.from_dict(None) == MathOptions()
    with pytest.raises(ValueError, match="unknown math option"):
        MathOptions.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="percent_mode"):
        MathOptions(percent_mode="odd")
    with pytest.raises(ValueError, match="timeout_s"):
        MathOptions(timeout_s=0)
    with pytest.raises(ValueError, match="decimal_comma"):
        MathOptions(decimal_comma="maybe")


def test_input_caps() -> None:
    long_answer = "\\boxed{" + "1+" * 600 + "1}"
    v = verify_math("601", long_answer)
    assert v.status == "unparsable" and "too long" in v.reason
    assert verify_math("601", long_answer, MathOptions(max_answer_chars=5000)).status == "correct"
    tail_only = "x" * 500 + " \\boxed{7}"
    assert verify_math("7", tail_only, MathOptions(max_input_chars=20)).status == "correct"
    assert verify_math("7", "\\boxed{7}" + "y" * 50, MathOptions(max_input_chars=20)).status != "correct"
