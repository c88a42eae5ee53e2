"""Named options for every asymmetric choice the math verifier makes, each with a documented default."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class MathOptions:
    """How strictly a prediction is compared with the reference ("gold") answer.

    Every field has a default chosen for MATH/GSM8K-style grading; each is tested both ways.
    """

    # --- extraction ----------------------------------------------------------------------------------
    allow_last_number_fallback: bool = True
    """With no ``\\boxed{}``, ``####`` or "the answer is", take the last number in the response."""
    reject_hedged: bool = True
    """Reject responses whose final answer markers (several ``\\boxed{}`` etc.) disagree with each other."""
    # --- numbers -------------------------------------------------------------------------------------
    percent_mode: str = "gold"
    """``"gold"``: ``50\\%`` on one side only means 50 and also 0.5 (a ``\\frac{2}{5}`` gold accepts ``40\\%``, a
    ``40\\%`` gold accepts ``0.4`` and ``40``); ``"strict"``: the percent sign is dropped and the numbers must match;
    ``"fraction"``: ``50\\%`` always equals 0.5."""
    decimal_tolerance: bool = False
    """Opt-in (e.g. for "to the nearest tenth" problems): when the gold is a decimal with k places, accept
    predictions within half a unit of its last place. Off by default: ``2.54`` is not ``2.5``."""
    rounded_prediction_min_digits: int | None = 12
    """A decimal prediction with at least this many significant digits is accepted when the exact gold rounds to
    it (``0.0833333333333333`` for ``1/12``; ``0.3333`` for ``1/3`` only with 4 or less). ``None``: never — then
    only a decimal gold gets a tolerance. 12 digits cannot be matched by chance by a different contest answer."""
    thousands_separators: bool = True
    """``12,345`` (no spaces, groups of three) may read as 12345 as well as the list 12, 345."""
    decimal_comma: bool | str = "auto"
    """``True``: ``2,5`` reads as 2.5 (European decimal comma); ``False``: always the list 2, 5; ``"auto"``: the
    decimal reading is also tried, but only when the other side is a plain decimal such as ``2.5``."""
    mixed_numbers: bool = True
    """``2\\frac{1}{2}`` reads as 2 + 1/2 (a mixed number) rather than 2 * 1/2."""
    # --- units and angles ----------------------------------------------------------------------------
    degrees_mode: str = "gold"
    """``"gold"``: only the gold's unit counts (a ``90^\\circ`` gold accepts ``90``/``90^\\circ``, not pi/2; a pi/2
    gold does not accept ``90^\\circ``); ``"either"``: ``90^\\circ`` equals 90 and also pi/2; ``"degrees"``: only 90;
    ``"radians"``: only pi/2."""
    strip_units: bool = True
    """Drop trailing unit words (``5\\text{ cm}``, ``3 dollars``) before comparing."""
    # --- structures ----------------------------------------------------------------------------------
    vector_equals_tuple: bool = True
    """A column vector ``\\begin{pmatrix}1\\\\2\\end{pmatrix}`` equals the tuple ``(1, 2)``."""
    interval_equals_inequality: bool | str = True
    """``True``: an interval ``[-2, 7]`` and the inequality ``-2 \\le x \\le 7`` are equal either way round;
    ``"gold_relation"``: only an inequality *gold* accepts an interval prediction (an interval gold, e.g. "in
    interval notation", wants an interval); ``False``: never. ``x \\in [-2, 7]`` always equals ``[-2, 7]``."""
    unordered_lists: bool = True
    """A bare comma list ``1, 2`` is compared as a set (order-free), like ``\\{1, 2\\}``; tuples keep order."""
    equation_scaling: bool = True
    """Equations match when one is a non-zero multiple of the other (``2x=2`` vs ``x=1``)."""
    strip_variable_assignment: bool = True
    """``x = 5`` equals ``5`` when one side is a lone symbol; ``k=1`` vs ``1`` is accepted."""
    rename_variables: bool = False
    """Accept answers equal up to renaming their single variable (``f(t) = 2t`` for ``f(x) = 2x``)."""
    text_case_sensitive: bool = False
    """Text answers (``\\text{Evelyn}``) compare case-sensitively."""
    # --- limits --------------------------------------------------------------------------------------
    timeout_s: float = 5.0
    """Wall-clock limit for the sympy part of one comparison (killable worker process)."""
    max_input_chars: int = 100_000
    """Longer responses are cut to their last ``max_input_chars`` characters before extraction."""
    max_answer_chars: int = 1_000
    """An extracted answer longer than this is ``unparsable``."""
    max_nesting: int = 60
    """Deeper bracket nesting is ``unparsable`` (guards the parser and sympy)."""
    max_exponent: int = 10_000
    """Integer powers with a larger exponent (or power towers) are not expanded exactly."""
    max_factorial: int = 3_000
    """Factorials of larger arguments are refused (``unparsable``)."""
    reveal_gold_in_reason: bool = False
    """Include the reference answer in the reason text (off: the reason is safe as self-teacher feedback)."""

    def __post_init__(self) -> None:
        if self.percent_mode not in ("gold", "strict", "fraction"):
            raise ValueError(f"percent_mode must be 'gold', 'strict' or 'fraction', not {self.percent_mode!r}")
        if self.degrees_mode not in ("gold", "either", "degrees", "radians"):
            raise ValueError(f"degrees_mode must be 'gold', 'either', 'degrees' or 'radians', "
                             f"not {self.degrees_mode!r}")
        if self.interval_equals_inequality not in (True, False, "gold_relation"):
            raise ValueError("interval_equals_inequality must be True, False or 'gold_relation'")
        if self.decimal_comma not in (True, False, "auto"):
            raise ValueError(f"decimal_comma must be True, False or 'auto', not {self.decimal_comma!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {self.timeout_s}")
        for name in ("max_input_chars", "max_answer_chars", "max_nesting", "max_exponent", "max_factorial"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, base: MathOptions | None = None) -> MathOptions:
        """Build options from a plain dict (e.g. a JSONL row); unknown keys raise ``ValueError``."""
        base = base or cls()
        if not data:
            return base
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown math option(s) {unknown}; known: {sorted(known)}")
        return replace(base, **data)
