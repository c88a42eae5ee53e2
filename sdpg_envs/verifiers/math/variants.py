"""Percent and degree readings of an answer: ``50\\%`` may mean 50 or 1/2, ``90^\\circ`` 90 or pi/2 (see options)."""

from __future__ import annotations

from sdpg_envs.verifiers.math.guards import children
from sdpg_envs.verifiers.math.options import MathOptions

Node = tuple
_SCALE = {"pct": ("int", "100"), "deg": ("div", ("int", "180"), ("const", "pi"))}


def has_kind(node: Node, kind: str) -> bool:
    """Whether any node of ``kind`` occurs in the AST."""
    return node[0] == kind or any(has_kind(c, kind) for c in children(node))


def rewrite(node: Node, kind: str, scale: bool) -> Node:
    """Replace every ``(kind, x)`` node by ``x`` (scale=False) or ``x / 100`` resp. ``x * pi / 180`` (scale=True)."""
    if not isinstance(node, tuple) or not node:
        return node
    if isinstance(node[0], tuple):
        return tuple(rewrite(x, kind, scale) for x in node)
    if node[0] == kind:
        inner = rewrite(node[1], kind, scale)
        return ("div", inner, _SCALE[kind]) if scale else inner
    return tuple(rewrite(x, kind, scale) if isinstance(x, tuple) else x for x in node)


def _choices(kind: str, mine: bool, theirs: bool, mode: str, is_gold: bool) -> tuple[bool, ...]:
    """Which readings (scale False/True) this side offers for ``kind`` markers."""
    if not mine:
        return (False,)
    if kind == "pct":
        if mode == "strict":
            return (False,)
        if mode == "fraction":
            return (True,)
        return (False,) if theirs else (False, True)
    if mode == "gold":
        return (False,)  # the gold's unit only: a degree mark is dropped, never converted to radians
    if mode == "degrees":
        return (False,)
    if mode == "radians":
        return (True,)
    return (False,) if theirs else (False, True)


def variants(node: Node, other: Node, options: MathOptions, is_gold: bool = True) -> list[Node]:
    """All readings of ``node`` given the other side (at most 4)."""
    out = [node]
    for kind, mode in (("pct", options.percent_mode), ("deg", options.degrees_mode)):
        mine = has_kind(node, kind)
        choices = _choices(kind, mine, has_kind(other, kind), mode, is_gold)
        if mine:
            out = [rewrite(n, kind, scale) for n in out for scale in choices]
    return out
