"""String-level clean-up of an extracted answer: formatting noise out, one spelling per construct.

The output is still LaTeX-ish text, fed to :mod:`sdpg_envs.verifiers.math.parse`. Pure ``re`` work.
"""

from __future__ import annotations

import re

from sdpg_envs.verifiers.math.extract import ARTIFACT
from sdpg_envs.verifiers.math.options import MathOptions

_UNITS = (
    "cm|mm|km|m|meters?|metres?|centimeters?|kilometers?|inches|inch|in|feet|foot|ft|yards?|yd|miles?|mi|mph|kph|"
    "units?|square|sq|cubic|dollars?|cents?|yuan|euros?|pounds?|lbs?|kg|g|grams?|kilograms?|ounces?|oz|liters?|"
    "litres?|ml|gallons?|hours?|hrs?|h|minutes?|mins?|seconds?|secs?|s|days?|weeks?|months?|years?|degrees?|"
    "people|students|integers|numbers|ways|points|marbles|apples|books|pages|times|steps|sides|games|cars|"
    "values|solutions|digits|boxes|bins|papers|percent|percentage|pct"
)
_UNIT_TAIL = re.compile(
    rf"(?<=[\d}}).\s])\s*(?:\\,|~|\s)*(?:\b(?:{_UNITS})\b(?:\s*\^?\{{?[23]\}}?)?\.?\s*)+$", re.IGNORECASE
)
_TEXT_CMD = re.compile(r"\\(?:text(?:bf|rm|it|normal|sf|tt)?|mbox|mathrm|mathbf|mathit|mathsf|operatorname|textup)\s*")
_SPACING = re.compile(
    r"(?<!\\)\\(?:qquad|quad|(?:!|,|;|:|>|displaystyle|textstyle|scriptstyle|limits|nolimits)(?![a-zA-Z]))"
)
_CONJUNCTION = re.compile(r"\s*(?<![A-Za-z\\])(?:and|or|And|Or)(?![a-z])\s*")
_SUPERSCRIPTS = {"²": "^2", "³": "^3", "¹": "^1"}
_SIZING = re.compile(
    r"\\(?:left|right|big|Big|bigg|Bigg|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|middle)(?![a-zA-Z])"
)
_PERCENT = re.compile(r"\s*(?:\\%|%|\\text\{\s*%\s*\}|\bpercentage\b|\bpercent\b|\bpct\b)")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree|\^\s*\{\s*\\text\{\s*o\s*\}\s*\}")
_ANSWER_PREFIX = re.compile(r"^(?:final\s+answer|answer|ans|output|result|total)\s*[:=]\s*", re.IGNORECASE)
_CHOICE = re.compile(r"^\(?\s*([A-Ea-e])\s*\)?\.?$")
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*([AaPp])\.?\s*[Mm]\.?$")
TIME = re.compile(r"\d{1,2}:\d{2}[ap]m")
"""A time of day after :func:`normalise` (``9:00am``): compared as text only."""
_COUNT_TAIL = re.compile(
    r"^(-?(?:\d[\d,]*)?\.?\d+(?:\\frac\{\d+\}\{\d+\})?)\s+([A-Za-z]{2,}(?:[ -][A-Za-z]{2,}){0,2})$"
)
_NOT_COUNT = {"and", "or", "pi", "sqrt", "times", "cdot", "over", "to", "is", "are", "inf", "infinity", "plus",
              "minus", "divided", "squared", "cubed", "hundred", "thousand", "million", "billion", "trillion",
              "half", "halves", "quarter", "quarters", "third", "thirds", "fourth", "fourths", "fifths", "tenths",
              "percent", "degrees", "radians", "am", "pm"}  # words that change the value: never dropped
_MIXED = re.compile(r"^(-?\d+)\s+(\d+)\s*/\s*(\d+)$")
_OVERLINE = re.compile(r"(\d*)\.(\d*)\\(?:overline|dot)\s*\{?\s*(\d+)\s*\}?")
_ELLIPSIS = re.compile(r"(\d*)\.(\d+)\s*(?:\\ldots|\\cdots|\\dots|\.\.\.|…)")
_INEQ_AND = re.compile(r"\s*(?<![A-Za-z\\])and(?![a-z])\s*")


def _unwrap_text(s: str) -> str:
    """Replace ``\\text{...}`` style wrappers (incl. nested braces) with their content."""
    out, pos = [], 0
    for m in _TEXT_CMD.finditer(s):
        if m.start() < pos:
            continue
        j = m.end()
        if j < len(s) and s[j] == "{":
            depth, k = 0, j
            while k < len(s):
                if s[k] == "{":
                    depth += 1
                elif s[k] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            out.append(s[pos : m.start()])
            out.append(" " + s[j + 1 : k] + " ")
            pos = k + 1
    out.append(s[pos:])
    return "".join(out)


def _group_digits(s: str) -> str:
    """Digit groups written with LaTeX spacing (``32,\\!000``, ``14{,}916``, ``1\\,000``) -> plain digits."""
    s = re.sub(r"(\d)\s*\{\s*,\s*\}\s*(?=\d{3})", r"\1", s)
    s = re.sub(r"(\d),\\!\s*(?=\d{3})", r"\1", s)
    s = re.sub(r"(\d)(?:\\,|\\!|\\ |~)(?=\d{3}(?!\d))", r"\1", s)
    if re.fullmatch(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?", s.strip()):
        s = s.replace(" ", "")
    return s


def _repeating(whole: str, fixed: str, block: str) -> str:
    """``whole.fixed(block)(block)...`` as an exact ``\\frac``."""
    scale, period = 10 ** len(fixed), 10 ** len(block) - 1
    num = (int(whole or 0) * scale + int(fixed or 0)) * period + int(block)
    return f"\\frac{{{num}}}{{{scale * period}}}"


def _from_ellipsis(m: re.Match) -> str:
    """``0.333...``/``0.1666\\ldots``: the shortest block repeated to the end (3 times for one digit, else 2)."""
    whole, digits = m.group(1), m.group(2)
    for start in range(len(digits)):
        tail = digits[start:]
        for size in range(1, len(tail) // 2 + 1):
            block = tail[:size]
            if len(tail) >= (3 if size == 1 else 2 * size) and (block * len(tail))[: len(tail)] == tail:
                return _repeating(whole, digits[:start], block)
    return m.group(0)


def _clock(s: str) -> str | None:
    """``9 a.m.``, ``9:00 AM``, ``1:03 p.m.`` -> ``9:00am``; None when ``s`` is not a time of day."""
    m = _CLOCK.match(s.strip())
    if m is None or not 1 <= int(m.group(1)) <= 12:
        return None
    return f"{int(m.group(1))}:{m.group(2) or '00'}{m.group(3).lower()}m"


def _count_words(s: str) -> str:
    """``260 sheep``, ``7 dozen``, ``3 square feet`` -> the number (any trailing words after a lone number)."""
    m = _COUNT_TAIL.match(s)
    if m and not {w.lower() for w in re.split(r"[ -]", m.group(2))} & _NOT_COUNT:
        return m.group(1)
    return s


def normalise(answer: str, options: MathOptions | None = None) -> str:
    """Canonical LaTeX-ish spelling of ``answer`` (not yet parsed).

    >>> normalise("\\\\left( \\\\dfrac{1}{2}, 3 \\\\right)")
    '(\\\\frac{1}{2}, 3)'
    >>> normalise("\\\\$1{,}000.50")
    '1000.50'
    """
    options = options or MathOptions()
    s = ARTIFACT.sub(r"\\", answer.strip())
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("\\\\[", "\\[").replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    s = re.sub(r"\\[dtc]frac", r"\\frac", s)
    s = re.sub(r"\\(?:leq?slant|leqq?|le)(?![a-zA-Z])", r"\\le ", s)
    s = re.sub(r"\\(?:geq?slant|geqq?|ge)(?![a-zA-Z])", r"\\ge ", s)
    s = re.sub(r"\\(?:neq?|ne)(?![a-zA-Z])", r"\\ne ", s)
    s = s.replace("\\lt", "<").replace("\\gt", ">").replace("≤", "\\le ").replace("≥", "\\ge ").replace("≠", "\\ne ")
    s = s.replace("<=", "\\le ").replace(">=", "\\ge ").replace("!=", "\\ne ").replace("−", "-").replace("·", "*")
    s = _group_digits(s)
    s = _SIZING.sub("", s)
    s = _SPACING.sub(" ", s)
    s = re.sub(r"(?<!\\)\\ ", " ", s).replace("~", " ")
    s = _DEGREE.sub("°", s)
    s = _PERCENT.sub("%", s)
    s = _unwrap_text(s)
    s = _ANSWER_PREFIX.sub("", s.strip())
    clock = _clock(s)
    if clock is not None:
        return clock
    s = _OVERLINE.sub(lambda m: _repeating(m.group(1), m.group(2), m.group(3)), s)
    s = _ELLIPSIS.sub(_from_ellipsis, s)
    if options.strip_units:
        s = _UNIT_TAIL.sub("", s)
        s = re.sub(r"^\s*(?:dollars?|USD|EUR|€)\s*", "", s)
        s = _count_words(s.strip().rstrip("."))
    if options.mixed_numbers:
        s = _MIXED.sub(lambda m: f"{m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}"
                       if int(m.group(2)) < int(m.group(3)) else m.group(0), s.strip())
    if re.search(r"[<>]|\\[lg]e\b", s):
        s = _INEQ_AND.sub(r" \\wedge ", s)  # "x>2 and x<3": a conjunction, never a list of answers
    s = s.replace("€", "")
    for sup, plain in _SUPERSCRIPTS.items():
        s = s.replace(sup, plain)
    s = _CONJUNCTION.sub(",", s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    s = re.sub(r"\s*([;(){}\[\]=+^_])\s*", r"\1", s)
    s = re.sub(r"\s*,(\s*)", lambda m: ", " if m.group(1) else ",", s)
    s = re.sub(r",(?:\s*,)+", ",", s).strip(", ")
    s = re.sub(r"\s*\\([{}])\s*", r"\\\1", s)
    choice = _CHOICE.match(s)
    if choice:
        return choice.group(1).upper()
    return s
