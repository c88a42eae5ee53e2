"""The sympy scalar backend and the entry point run inside worker processes (:mod:`.pool`)."""

from __future__ import annotations

import random
from fractions import Fraction

import sympy as sp

from sdpg_envs.verifiers.math.equivalence import equivalent
from sdpg_envs.verifiers.math.options import MathOptions
from sdpg_envs.verifiers.math.to_sympy import to_sympy

Node = tuple
_DIGITS = 60
_REL_EPS = sp.Float("1e-40", _DIGITS)


def _numeric(expr: sp.Expr) -> sp.Expr | None:
    try:
        value = sp.N(expr, _DIGITS)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
    return value if value.is_number and value.free_symbols == set() and value.is_finite is not False else None


def _close(a: sp.Expr, b: sp.Expr) -> bool | None:
    """Numerically equal to ~40 relative digits? None when it cannot be evaluated."""
    na, nb = _numeric(a), _numeric(b)
    if na is None or nb is None or na.has(sp.zoo, sp.nan) or nb.has(sp.zoo, sp.nan):
        return None
    if na.has(sp.oo, -sp.oo) or nb.has(sp.oo, -sp.oo):
        return bool(na == nb)
    scale = max(abs(na), abs(nb), sp.Float(1e-300))
    return bool(abs(na - nb) <= _REL_EPS * scale)


def _points(symbols: list[sp.Symbol], n: int = 4) -> list[dict]:
    """Fixed pseudo-random test points: non-integers of both signs, so |x| != x and sqrt(x^2) != x are caught."""
    rng = random.Random(1234)
    points = []
    for k in range(n):
        sign = -1 if k % 2 else 1  # every other point negative, each symbol a non-integer rational
        points.append({s: sign * sp.Rational(2 * rng.randint(5, 99) + 1, 2 * rng.randint(3, 48)) for s in symbols})
    return points


class SympyScalar:
    """Exact-first scalar comparison with sympy: structural, then high-precision numeric, then simplify."""

    def eq(self, gold: Node, pred: Node, tol: Fraction | None) -> bool:
        g, p = to_sympy(gold), to_sympy(pred)
        if isinstance(g, sp.MatrixBase) or isinstance(p, sp.MatrixBase):
            return _matrices_equal(g, p, self)
        if tol is not None:
            diff = _numeric(g - p)
            return diff is not None and bool(abs(diff) <= sp.Rational(tol.numerator, tol.denominator) * (1 + 1e-12))
        if g == p:
            return True
        symbols = sorted(g.free_symbols | p.free_symbols, key=str)
        if not symbols:
            close = _close(g, p)
            if close is not None:
                return close
            return sp.simplify(g - p) == 0
        return self._identity(g, p, symbols)

    def _identity(self, g: sp.Expr, p: sp.Expr, symbols: list[sp.Symbol]) -> bool:
        if sp.expand(g - p) == 0:
            return True
        verdicts = [_close(g.subs(pt), p.subs(pt)) for pt in _points(symbols)]
        if any(v is False for v in verdicts):
            return False
        if verdicts and all(v is True for v in verdicts):
            return True
        return sp.simplify(g - p) == 0

    def same_set(self, a: Node, b: Node) -> bool:
        try:
            sa, sb = _to_set(a), _to_set(b)
        except (ValueError, TypeError, NotImplementedError):
            return False
        return bool(sa == sb) or sp.Complement(sa, sb) == sp.Complement(sb, sa) == sp.S.EmptySet

    def proportional(self, a: Node, b: Node, mode: str) -> bool:
        ea, eb = sp.expand(to_sympy(a)), sp.expand(to_sympy(b))
        if ea == 0 or eb == 0:
            return ea == 0 and eb == 0
        symbols = sorted(ea.free_symbols | eb.free_symbols, key=str)
        ratios = []
        for pt in _points(symbols, 5):
            na, nb = _numeric(ea.subs(pt)), _numeric(eb.subs(pt))
            if na is None or nb is None or nb == 0:
                ratio = sp.simplify(ea / eb)
                return not ratio.free_symbols and _ratio_ok(ratio, mode)
            ratios.append(na / nb)
        first = ratios[0]
        if any(abs(r - first) > sp.Float("1e-30") * max(1, abs(first)) for r in ratios[1:]):
            return False
        return _ratio_ok(first, mode)


_INEQ = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}


def _to_set(node: Node) -> sp.Set:
    """Interval-like AST or an inequality (chain) in one real variable -> a sympy Set."""
    kind = node[0]
    if kind == "interval":
        return sp.Interval(to_sympy(node[2]), to_sympy(node[3]), left_open=not node[1], right_open=not node[4])
    if kind in ("tuple", "bracket") and len(node[1]) == 2:
        a, b = (to_sympy(x) for x in node[1])
        return sp.Interval.open(a, b) if kind == "tuple" else sp.Interval(a, b)
    if kind == "set":
        return sp.FiniteSet(*[to_sympy(x) for x in node[1]])
    if kind == "const" and node[1] == "empty":
        return sp.S.EmptySet
    if kind == "union":
        return sp.Union(*[_to_set(x) for x in node[1]])
    if kind == "rel" and node[1] == ("in",):
        return _to_set(node[2][1])
    if kind == "rel" and all(op in _INEQ for op in node[1]):
        parts = [to_sympy(x) for x in node[2]]
        symbols = set().union(*(p.free_symbols for p in parts))
        if len(symbols) != 1:
            raise ValueError("an inequality in exactly one variable is needed")
        var = symbols.pop()
        real = sp.Symbol(var.name, real=True)
        out = sp.S.Reals
        for op, lhs, rhs in zip(node[1], parts, parts[1:]):
            rel = _INEQ[op](lhs.subs(var, real), rhs.subs(var, real))
            out = sp.Intersection(out, sp.solveset(rel, real, sp.S.Reals))
        return out
    raise ValueError(f"not a set: {kind}")


def _matrices_equal(g: object, p: object, scalar: SympyScalar) -> bool:
    if not (isinstance(g, sp.MatrixBase) and isinstance(p, sp.MatrixBase)) or g.shape != p.shape:
        return False
    return all(sp.simplify(a - b) == 0 for a, b in zip(g, p))


def _ratio_ok(ratio: sp.Expr, mode: str) -> bool:
    value = sp.N(ratio, 30)
    if not value.is_real or value == 0:
        return False
    if mode == "positive":
        return bool(value > 0)
    if mode == "unit":
        return bool(abs(abs(value) - 1) < 1e-25)
    return True


def compare_in_worker(gold: Node, pred: Node, options: MathOptions) -> bool:
    """Entry point executed by a pool worker: the full structural comparison with the sympy backend."""
    return equivalent(gold, pred, options, SympyScalar())
