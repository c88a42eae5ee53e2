"""Exact rational evaluation of plain-number ASTs, and the guards that keep huge values away from sympy.

Everything here runs in the caller's process, so every operation is bounded: powers need a small integer
exponent and a bounded result size, factorials a small argument.
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial

from sdpg_envs.verifiers.math.lexer import ParseError
from sdpg_envs.verifiers.math.options import MathOptions

Node = tuple
_MAX_BITS = 200_000


class TooLarge(ParseError):
    """A value (power tower, huge factorial) that would be too expensive to evaluate exactly."""


class NotRational(Exception):
    """The node is not a plain rational number (symbols, radicals, structures): sympy is needed."""


def to_fraction(node: Node, options: MathOptions) -> Fraction:
    """Exact value of a plain-number AST; raise :class:`NotRational` or :class:`TooLarge`.

    >>> to_fraction(("div", ("int", "2"), ("int", "4")), MathOptions())
    Fraction(1, 2)
    """
    kind = node[0]
    if kind == "int":
        return Fraction(int(node[1]))
    if kind == "dec":
        _check_decimal(node[1], options)
        return Fraction(node[1])
    if kind == "neg":
        return -to_fraction(node[1], options)
    if kind == "add":
        return sum((to_fraction(x, options) for x in node[1]), Fraction(0))
    if kind == "mul":
        out = Fraction(1)
        for x in node[1]:
            out *= to_fraction(x, options)
        return out
    if kind == "div":
        num, den = to_fraction(node[1], options), to_fraction(node[2], options)
        if den == 0:
            raise NotRational("division by zero")
        return num / den
    if kind == "pow":
        return _power(to_fraction(node[1], options), to_fraction(node[2], options), options)
    if kind == "fact":
        n = to_fraction(node[1], options)
        if n.denominator != 1 or n < 0:
            raise NotRational("factorial of a non-integer")
        if n > options.max_factorial:
            raise TooLarge(f"factorial argument larger than {options.max_factorial}")
        return Fraction(factorial(int(n)))
    if kind == "base":
        try:
            return Fraction(int(node[1], int(node[2])))
        except ValueError as exc:
            raise NotRational(str(exc)) from None
    raise NotRational(kind)


def _power(base: Fraction, exp: Fraction, options: MathOptions) -> Fraction:
    if exp.denominator != 1:
        raise NotRational("fractional power")
    if base in (0, 1) or exp == 0:
        return Fraction(1) if exp == 0 else base
    if base == -1:
        return Fraction(1 if exp % 2 == 0 else -1)
    e = int(exp)
    size = max(abs(base.numerator).bit_length(), base.denominator.bit_length())
    if abs(e) > options.max_exponent or size * abs(e) > _MAX_BITS:
        raise TooLarge(f"power with exponent {_short(exp)} is too large to evaluate exactly")
    if e < 0:
        if base == 0:
            raise NotRational("division by zero")
        return 1 / base ** (-e)
    return base**e


def _short(value: Fraction) -> str:
    text = str(value)
    return text if len(text) <= 12 else text[:6] + "..."


KINDS = frozenset(
    "int dec sym const add neg mul div pow fn apply fact sqrt abs pct deg pm rel tuple bracket interval set "
    "union inter setminus ratio matrix list text base".split()
)


def children(node: Node):
    """Child nodes of an AST node (flattening the tuples of items/rows)."""
    stack = list(node[1:])
    while stack:
        item = stack.pop()
        if isinstance(item, tuple) and item:
            if isinstance(item[0], str):
                if item[0] in KINDS:
                    yield item
            else:
                stack.extend(item)


def check_guards(node: Node, options: MathOptions) -> None:
    """Raise :class:`TooLarge` for power towers and huge factorials anywhere in the AST (before sympy)."""
    stack, seen = [node], 0
    while stack:
        current = stack.pop()
        seen += 1
        if seen > 20_000:
            raise TooLarge("expression has too many parts")
        if current[0] == "dec":
            _check_decimal(current[1], options)
        elif current[0] == "pow":
            _check_exponent(current[2], options)
        elif current[0] == "fact":
            _check_factorial(current[1], options)
        stack.extend(children(current))


def _check_decimal(text: str, options: MathOptions) -> None:
    """``1e99999999`` would build a 330-million-bit integer: refuse exponents above ``max_exponent``."""
    mantissa, _, exp = text.lower().partition("e")
    if exp and abs(int(exp)) > options.max_exponent:
        raise TooLarge(f"decimal exponent {_short(Fraction(int(exp)))} is larger than {options.max_exponent}")


def _check_exponent(exp: Node, options: MathOptions) -> None:
    try:
        value = to_fraction(exp, options)
    except NotRational:
        return  # symbolic exponent: its own powers are checked when the walk reaches them
    if abs(value) > options.max_exponent:
        raise TooLarge(f"exponent {_short(value)} is larger than {options.max_exponent}")


def _check_factorial(arg: Node, options: MathOptions) -> None:
    try:
        value = to_fraction(arg, options)
    except NotRational:
        if _contains(arg, "fact") or _contains(arg, "pow"):
            raise TooLarge("factorial of a non-literal expression") from None
        return
    if value > options.max_factorial:
        raise TooLarge(f"factorial argument {_short(value)} is larger than {options.max_factorial}")


def _contains(node: Node, kind: str) -> bool:
    return node[0] == kind or any(_contains(x, kind) for x in children(node))
