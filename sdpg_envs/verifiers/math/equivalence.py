"""Structural equivalence of two answer ASTs: lists/sets, ±, tuples, intervals, relations, matrices, text.

Scalar comparisons are delegated to a :class:`Scalar` backend: :class:`FractionScalar` (exact rationals, in the
caller's process, raises :class:`NeedSympy` when that is not enough) or the sympy backend in a worker process.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Protocol

from sdpg_envs.verifiers.math.guards import NotRational, children, to_fraction
from sdpg_envs.verifiers.math.options import MathOptions
from sdpg_envs.verifiers.math.variants import variants

Node = tuple
_MULTI = ("list", "set", "pm")
_INTERVALISH = ("interval", "union")
_NO_RELATIONS = MathOptions(interval_equals_inequality=False)
_VAR = ("sym", "apply")  # the variable of "x > 5", "0 < f(x) < 1"
_INEQ = {"<": ("<", False), "<=": ("<", True), ">": (">", False), ">=": (">", True)}


class NeedSympy(Exception):
    """The fast exact backend cannot decide; the comparison must run in a sympy worker."""


class Scalar(Protocol):
    def eq(self, gold: Node, pred: Node, tol: Fraction | None) -> bool: ...

    def proportional(self, a: Node, b: Node, mode: str) -> bool:
        """``a == c * b`` for a constant c: any non-zero c (mode "any"), c > 0 ("positive"), c = +-1 ("unit")."""
        ...

    def same_set(self, a: Node, b: Node) -> bool:
        """Both sides (inequalities in one variable, intervals, unions) describe the same set of reals."""
        ...


class FractionScalar:
    """Exact rational comparison in the caller's process; anything else raises :class:`NeedSympy`."""

    def __init__(self, options: MathOptions) -> None:
        self.options = options

    def eq(self, gold: Node, pred: Node, tol: Fraction | None) -> bool:
        try:
            g, p = to_fraction(gold, self.options), to_fraction(pred, self.options)
        except NotRational:
            raise NeedSympy from None
        return abs(g - p) <= tol if tol is not None else g == p

    def proportional(self, a: Node, b: Node, mode: str) -> bool:
        raise NeedSympy

    def same_set(self, a: Node, b: Node) -> bool:
        raise NeedSympy


def equivalent(gold: Node, pred: Node, options: MathOptions, scalar: Scalar) -> bool:
    """True when ``pred`` means the same answer as ``gold`` under ``options``."""
    if options.rename_variables:
        pred = _renamed(pred, gold)
    for g in variants(gold, pred, options):
        for p in variants(pred, gold, options, is_gold=False):
            cg = canon(g)
            if all(_eq(cg, part, options, scalar) for part in _claimed_values(p)):
                return True
    return False


def _claimed_values(pred: Node) -> list[Node]:
    """``9 \\times 2 = 18`` claims 18 only if every side equals it: all sides of a constant equation chain."""
    if pred[0] == "rel" and set(pred[1]) == {"="} and not any(_has_symbols(x) for x in pred[2]):
        return list(pred[2])
    return [canon(pred)]


def _symbol_names(node: Node) -> set[str]:
    names = {node[1]} if node[0] == "sym" and node[1] not in ("e", "i") else set()
    return names.union(*(_symbol_names(c) for c in children(node)))


def _rename(item: object, old: str, new: str) -> object:
    """Rename symbol ``old`` to ``new`` in a node, a tuple of nodes, or leave a leaf as is."""
    if not isinstance(item, tuple):
        return item
    if item == ("sym", old):
        return ("sym", new)
    return tuple(_rename(x, old, new) for x in item)


def _renamed(pred: Node, gold: Node) -> Node:
    """Rename the prediction's only variable to the gold's only variable."""
    mine, theirs = _symbol_names(pred), _symbol_names(gold)
    if len(mine) == 1 and len(theirs) == 1 and mine != theirs:
        return _rename(pred, mine.pop(), theirs.pop())
    return pred


def is_label(node: Node) -> bool:
    """A left-hand side that names the answer (``x``, ``f(x)``, ``(p,q)``, ``|AB|``, ``NO/BO``): no numbers or sums."""
    if node[0] in ("sym", "apply", "text"):
        return True
    if node[0] in ("mul", "div", "abs", "tuple", "pow", "ratio"):
        return all(is_label(c) or c[0] == "int" and node[0] == "pow" for c in children(node))
    return False


def canon(node: Node) -> Node:
    """Reduce equation chains: ``x = 5+5+1 = 11`` -> ``x = 11``, ``1/3 \\approx 0.33`` -> ``1/3``."""
    if node[0] == "list" and len(node[1]) == 1:
        return canon(node[1][0])
    if node[0] != "rel" or not set(node[1]) <= {"=", "~"}:
        return node
    ops, parts = list(node[1]), list(node[2])
    if "~" in ops:
        cut = ops.index("~")
        if cut == 0 and is_label(parts[0]):
            ops[0] = "="
        else:
            ops, parts = ops[:cut], parts[: cut + 1]
    if not ops:
        return parts[0]
    if not _has_symbols(parts[0]) and not _has_symbols(parts[-1]):  # "1/2 = 10/9": a computation; keep its result
        return parts[-1]
    if len(parts) > 2:
        return ("rel", ("=",), (parts[0], parts[-1])) if is_label(parts[0]) else parts[-1]
    return ("rel", tuple(ops), tuple(parts))


def _has_symbols(node: Node) -> bool:
    return node[0] in ("sym", "text", "apply") or any(_has_symbols(c) for c in children(node))


def strip_assignment(node: Node) -> Node:
    if node[0] == "rel" and node[1] == ("=",) and is_label(node[2][0]):
        return node[2][1]
    return node


def _tolerance(gold: Node, pred: Node, options: MathOptions) -> Fraction | None:
    core = gold[1] if gold[0] == "neg" else gold
    if options.decimal_tolerance and core[0] == "dec" and "e" not in core[1].lower():
        places = len(core[1].split(".")[1]) if "." in core[1] else 0
        return Fraction(1, 2 * 10**places)
    pcore = pred[1] if pred[0] == "neg" else pred
    if options.rounded_prediction_min_digits and pcore[0] == "dec" and "e" not in pcore[1].lower():
        digits = len(pcore[1].replace(".", "").lstrip("0"))
        places = len(pcore[1].split(".")[1]) if "." in pcore[1] else 0
        if digits >= options.rounded_prediction_min_digits:
            return Fraction(1, 2 * 10**places)
    return None


def _inequality_list(node: Node) -> bool:
    return node[0] == "list" and all(_is_inequality(x) and len(x[1]) == 1 for x in node[1])


def _eq(g: Node, p: Node, options: MathOptions, scalar: Scalar) -> bool:
    if g == p:
        return True
    if (_inequality_list(g) or _inequality_list(p)) and not (g[0] == p[0] == "list"):
        return _interval_eq(g, p, options, scalar)
    if g[0] in _MULTI or p[0] in _MULTI:
        return _multi_eq(g, p, options, scalar)
    if g[0] == "rel" or p[0] == "rel":
        return _rel_eq(g, p, options, scalar)
    if g[0] in _INTERVALISH or p[0] in _INTERVALISH:
        return _interval_eq(g, p, options, scalar)
    if g[0] == "ratio" or p[0] == "ratio":
        return g[0] == p[0] and len(g[1]) == len(p[1]) and all(_eq(a, b, options, scalar) for a, b in zip(g[1], p[1]))
    if _matrix_arithmetic(g) or _matrix_arithmetic(p):
        return scalar.eq(g, p, None)
    if g[0] in ("tuple", "bracket", "matrix") or p[0] in ("tuple", "bracket", "matrix"):
        return _sequence_eq(g, p, options, scalar)
    if _has_text(g) or _has_text(p):
        return _text_key(g, options) == _text_key(p, options)
    if g[0] == "base":
        return _base_eq(g, p)
    return scalar.eq(g, p, _tolerance(g, p, options))


def _base_eq(g: Node, p: Node) -> bool:
    """A base-n gold is answered in base n: ``443_5`` or the digits ``443``; its decimal value is another answer."""
    if p[0] == "base" and p[2] != g[2]:
        return False
    digits = p[1] if p[0] in ("base", "int") else None
    try:
        return digits is not None and int(digits, int(g[2])) == int(g[1], int(g[2]))
    except ValueError:
        return False


def _matrix_arithmetic(node: Node) -> bool:
    return node[0] in ("add", "mul", "neg", "pow", "fn") and any(
        c[0] == "matrix" or _matrix_arithmetic(c) for c in children(node))


def _has_text(node: Node) -> bool:
    return node[0] == "text" or any(_has_text(c) for c in children(node))


def _text_key(node: Node, options: MathOptions) -> str:
    flat = re.sub(r"[^0-9A-Za-z]", "", repr(node).replace("'text'", "").replace("'sym'", ""))
    return flat if options.text_case_sensitive else flat.lower()


def _elements(node: Node, options: MathOptions) -> list[Node]:
    """Members of a multi-answer node, with ± expanded and ``x = 1`` read as 1."""
    if node[0] == "pm":
        a, b = node[1], node[2]
        return [b, ("neg", b)] if a is None else [("add", (a, b)), ("add", (a, ("neg", b)))]
    items = node[1] if node[0] in ("list", "set") else (node,)
    out: list[Node] = []
    for item in items:
        item = canon(item)
        if options.strip_variable_assignment:
            item = strip_assignment(item)
        out.extend(_elements(item, options) if item[0] == "pm" else [item])
    return out


def _multi_eq(g: Node, p: Node, options: MathOptions, scalar: Scalar) -> bool:
    gs, ps = _elements(g, options), _elements(p, options)
    if g[0] == "tuple" and p[0] == "list" or p[0] == "tuple" and g[0] == "list":
        gi, pi = list(g[1]), list(p[1])
        return len(gi) == len(pi) and all(_eq(canon(a), canon(b), options, scalar) for a, b in zip(gi, pi))
    ordered = not options.unordered_lists and g[0] == "list" and p[0] == "list"
    if ordered:
        return len(gs) == len(ps) and all(_eq(a, b, options, scalar) for a, b in zip(gs, ps))
    if len(gs) == 1 and len(ps) == 1:
        return _eq(gs[0], ps[0], options, scalar)
    covered_g = all(any(_eq(a, b, options, scalar) for b in ps) for a in gs)
    return covered_g and all(any(_eq(a, b, options, scalar) for a in gs) for b in ps)


def _sequence_items(node: Node, options: MathOptions) -> tuple[str, list[Node]] | None:
    if node[0] in ("tuple", "bracket"):
        return "tuple", list(node[1])
    if node[0] == "matrix":
        rows = node[1]
        if options.vector_equals_tuple and (len(rows) == 1 or all(len(r) == 1 for r in rows)):
            return "tuple", [x for r in rows for x in r]
        return "matrix", [x for r in rows for x in r] + [("int", str(len(rows)))]
    return None


def _sequence_eq(g: Node, p: Node, options: MathOptions, scalar: Scalar) -> bool:
    if {g[0], p[0]} == {"tuple", "bracket"}:
        return False  # (1, 4) is not [1, 4]
    sg, sp_ = _sequence_items(g, options), _sequence_items(p, options)
    if sg is None or sp_ is None or sg[0] != sp_[0] or len(sg[1]) != len(sp_[1]):
        return False
    if g[0] == "matrix" and p[0] == "matrix" and len(g[1]) != len(p[1]):
        return False
    strip = strip_assignment if options.strip_variable_assignment else (lambda n: n)
    return all(_eq(strip(canon(a)), strip(canon(b)), options, scalar) for a, b in zip(sg[1], sp_[1]))


def _relations_allowed(options: MathOptions, side: str) -> bool:
    """May an inequality on this side ("gold"/"pred") stand for an interval?"""
    mode = options.interval_equals_inequality
    return mode is True or (mode == "gold_relation" and side == "gold")


def _as_intervals(node: Node, options: MathOptions, side: str = "gold") -> list[Node] | None:
    """Interval-like node -> list of ('interval', lc, a, b, rc) or ('set', ...) parts, else None."""
    if node[0] == "interval":
        return [node]
    if node[0] == "tuple" and len(node[1]) == 2:
        return [("interval", False, node[1][0], node[1][1], False)]
    if node[0] == "bracket" and len(node[1]) == 2:
        return [("interval", True, node[1][0], node[1][1], True)]
    if node[0] == "set":
        return [node]
    if node[0] == "union" or _inequality_list(node):
        parts = [_as_intervals(x, options, side) for x in node[1]]
        return None if any(x is None for x in parts) else [y for x in parts for y in x]
    if node[0] == "rel" and (node[1] == ("in",) or _relations_allowed(options, side)):
        return _relation_interval(node)
    return None


def _relation_interval(node: Node) -> list[Node] | None:
    ops, parts = node[1], node[2]
    if ops == ("in",) and parts[0][0] in _VAR:
        inner = parts[1]
        return [inner] if inner[0] == "interval" else _as_intervals(inner, _NO_RELATIONS)
    oo, noo = ("const", "oo"), ("neg", ("const", "oo"))
    if len(ops) == 1 and ops[0] in _INEQ:
        direction, closed = _INEQ[ops[0]]
        lhs, rhs = parts
        if lhs[0] in _VAR:
            below, above = ("interval", False, noo, rhs, closed), ("interval", closed, rhs, oo, False)
            return [below] if direction == "<" else [above]
        if rhs[0] in _VAR:
            above, below = ("interval", closed, lhs, oo, False), ("interval", False, noo, lhs, closed)
            return [above] if direction == "<" else [below]
        return None
    if len(ops) == 2 and all(o in _INEQ for o in ops) and parts[1][0] in _VAR:
        (d1, c1), (d2, c2) = _INEQ[ops[0]], _INEQ[ops[1]]
        if d1 == d2 == "<":
            return [("interval", c1, parts[0], parts[2], c2)]
        if d1 == d2 == ">":
            return [("interval", c2, parts[2], parts[0], c1)]
    return None


def _interval_eq(g: Node, p: Node, options: MathOptions, scalar: Scalar) -> bool:
    ig, ip = _as_intervals(g, options, "gold"), _as_intervals(p, options, "pred")
    if ig is None or ip is None or len(ig) != len(ip):
        blocked = (_is_inequality(g) and not _relations_allowed(options, "gold")) or (
            _is_inequality(p) and not _relations_allowed(options, "pred"))
        if not blocked and (_is_inequality(g) or _is_inequality(p)):
            return scalar.same_set(g, p)  # e.g. 1 <= |z| <= 3/2 vs [-3/2, -1] U [1, 3/2]: solve the inequality
        return False

    def same(a: Node, b: Node) -> bool:
        if a[0] != b[0]:
            return False
        if a[0] == "set":
            return _multi_eq(a, b, options, scalar)
        return a[1] == b[1] and a[4] == b[4] and _eq(a[2], b[2], options, scalar) and _eq(a[3], b[3], options, scalar)

    return all(any(same(a, b) for b in ip) for a in ig) and all(any(same(a, b) for a in ig) for b in ip)


def _is_inequality(node: Node) -> bool:
    return node[0] == "rel" and all(op in _INEQ for op in node[1])


def _rel_eq(g: Node, p: Node, options: MathOptions, scalar: Scalar) -> bool:
    if options.strip_variable_assignment:
        sg, sp_ = strip_assignment(g), strip_assignment(p)
        both = sg is not g and sp_ is not p
        renamed = both and g[2][0] != p[2][0]  # "x = 2" vs "y = 2": different unknowns
        if (sg is not g or sp_ is not p) and (sg[0] != "rel" and sp_[0] != "rel") and not renamed:
            return _eq(sg, sp_, options, scalar)
    if g[0] != "rel" or p[0] != "rel":
        if options.interval_equals_inequality and (g[0] in _INTERVALISH + ("tuple", "bracket", "set")
                                                   or p[0] in _INTERVALISH + ("tuple", "bracket", "set")):
            return _interval_eq(g, p, options, scalar)
        return False
    if g[1] == ("in",) or p[1] == ("in",) or len(g[1]) > 1 or len(p[1]) > 1:
        if g[1] == p[1] and len(g[2]) == len(p[2]):
            return all(_eq(a, b, options, scalar) for a, b in zip(g[2], p[2]))
        return options.interval_equals_inequality and _interval_eq(g, p, options, scalar)
    return _single_rel_eq(g, p, options, scalar)


def _single_rel_eq(g: Node, p: Node, options: MathOptions, scalar: Scalar) -> bool:
    (og,), (op,) = g[1], p[1]
    (gl, gr), (pl, pr) = g[2], p[2]
    if og in ("=", "!=") or op in ("=", "!="):
        if og != op:
            return False
        if _eq(gl, pl, options, scalar) and _eq(gr, pr, options, scalar):
            return True
        if _eq(gl, pr, options, scalar) and _eq(gr, pl, options, scalar):
            return True
        diff_g, diff_p = ("add", (gl, ("neg", gr))), ("add", (pl, ("neg", pr)))
        return scalar.proportional(diff_g, diff_p, "any" if options.equation_scaling else "unit")
    if og not in _INEQ or op not in _INEQ:
        return og == op and _eq(gl, pl, options, scalar) and _eq(gr, pr, options, scalar)
    (dg, cg), (dp, cp) = _INEQ[og], _INEQ[op]
    if cg != cp:
        return False
    # as "small < big": g_small - g_big must be a positive multiple of p_small - p_big
    g_small, g_big = (gl, gr) if dg == "<" else (gr, gl)
    p_small, p_big = (pl, pr) if dp == "<" else (pr, pl)
    if _eq(g_small, p_small, options, scalar) and _eq(g_big, p_big, options, scalar):
        return True
    diff_g, diff_p = ("add", (g_small, ("neg", g_big))), ("add", (p_small, ("neg", p_big)))
    return scalar.proportional(diff_g, diff_p, "positive")
