"""Convert a scalar tuple AST (see :mod:`.parse`) into a sympy expression. Imported only in worker processes."""

from __future__ import annotations

import operator
from functools import reduce

import sympy as sp

Node = tuple

_FUNCS = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sec": sp.sec, "csc": sp.csc, "cot": sp.cot,
    "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "arcsec": sp.asec, "arccsc": sp.acsc,
    "arccot": sp.acot, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "exp": sp.exp, "floor": sp.floor,
    "ceil": sp.ceiling, "det": lambda m: m.det() if hasattr(m, "det") else m,
}  # fmt: skip
_CONSTS = {"pi": sp.pi, "oo": sp.oo}
_SYMBOL_CONSTS = {"e": sp.E, "i": sp.I}


class NotScalar(ValueError):
    """The node is a structure (tuple, set, interval...) where a scalar expression was expected."""


def to_sympy(node: Node, *, symbol_consts: bool = True) -> sp.Expr:
    """Scalar AST -> sympy expression (``e`` and ``i`` read as constants when ``symbol_consts``)."""
    kind = node[0]
    conv = lambda n: to_sympy(n, symbol_consts=symbol_consts)  # noqa: E731
    if kind == "int":
        return sp.Integer(node[1])
    if kind == "dec":
        return sp.Rational(node[1])
    if kind == "sym":
        if symbol_consts and node[1] in _SYMBOL_CONSTS:
            return _SYMBOL_CONSTS[node[1]]
        return sp.Symbol(node[1])
    if kind == "const" and node[1] in _CONSTS:
        return _CONSTS[node[1]]
    if kind == "add":
        return reduce(operator.add, [conv(x) for x in node[1]])
    if kind == "neg":
        return -conv(node[1])
    if kind == "mul":
        return reduce(operator.mul, [conv(x) for x in node[1]])
    if kind == "div":
        return conv(node[1]) / conv(node[2])
    if kind == "pow":
        return sp.Pow(conv(node[1]), conv(node[2]))
    if kind == "sqrt":
        return sp.sqrt(conv(node[1])) if node[2] is None else sp.root(conv(node[1]), conv(node[2]))
    if kind == "fact":
        return sp.factorial(conv(node[1]))
    if kind == "abs":
        return sp.Abs(conv(node[1]))
    if kind == "base":
        return sp.Integer(int(node[1], int(node[2])))
    if kind == "fn":
        return _function(node[1], [conv(x) for x in node[2]])
    if kind == "apply":
        return sp.Function(node[1])(*[conv(x) for x in node[2]])
    if kind == "text":
        return sp.Symbol(node[1])
    if kind == "matrix":
        return sp.Matrix([[conv(x) for x in row] for row in node[1]])
    raise NotScalar(kind)


def _function(name: str, args: list[sp.Expr]) -> sp.Expr:
    if name in ("ln",) or (name == "log" and len(args) == 1):
        return sp.log(args[0])
    if name == "log":
        return sp.log(args[0], args[1])
    if name == "lg":
        return sp.log(args[0], 10)
    if name == "binom":
        return sp.binomial(args[0], args[1])
    if name in ("gcd", "lcm", "max", "min"):
        fn = {"gcd": sp.gcd, "lcm": sp.lcm, "max": sp.Max, "min": sp.Min}[name]
        return fn(*args) if name in ("max", "min") else fn(args[0], args[1])
    if len(args) != 1:
        raise NotScalar(f"{name} with {len(args)} arguments")
    return _FUNCS[name](args[0])
