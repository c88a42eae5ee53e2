"""Tokeniser for the MATH answer grammar (LaTeX and plain text). Pure ``re``, linear time."""

from __future__ import annotations

import re
from dataclasses import dataclass


class ParseError(ValueError):
    """The answer is not in the supported grammar (reported as ``unparsable``)."""


FUNCTIONS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "arcsec", "arccsc", "arccot",
    "sinh", "cosh", "tanh", "ln", "log", "exp", "lg", "det", "gcd", "lcm", "max", "min", "floor", "ceil",
}  # fmt: skip
CONSTANTS = {"pi": "pi", "infty": "oo", "infinity": "oo", "inf": "oo", "emptyset": "empty", "varnothing": "empty"}
GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi", "omega", "Gamma",
    "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega", "ell",
}  # fmt: skip
RELATIONS = {"=": "=", "<": "<", ">": ">", "le": "<=", "ge": ">=", "ne": "!=", "approx": "~", "in": "in",
             "to": "->", "rightarrow": "->", "Rightarrow": "->", "equiv": "=", "sim": "~", "simeq": "="}
DECORATIONS = {"overline", "vec", "hat", "bar", "tilde", "mathbf", "boldsymbol", "mathbb", "mathcal", "widehat",
               "overrightarrow", "underline", "dot", "ddot", "bm"}
UNICODE = {"π": "\\pi ", "∞": "\\infty ", "±": "\\pm ", "∓": "\\mp ", "×": "\\times ", "÷": "\\div ", "∪": "\\cup ",
           "∩": "\\cap ", "∅": "\\emptyset ", "√": "\\sqrt ", "∈": "\\in ", "⋅": "\\cdot ", "–": "-", "→": "\\to "}
_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<begin>\\begin\{(?P<env>[a-zA-Z*]+)\}(?:\{[^{}]*\})?)"
    r"|(?P<end>\\end\{[a-zA-Z*]+\})"
    r"|(?P<rowsep>\\\\)"
    r"|(?P<setl>\\\{)|(?P<setr>\\\})|(?P<bar>\\\||\\vert|\\lvert|\\rvert|\\mid)"
    r"|(?P<cmd>\\[a-zA-Z]+)"
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+(?![a-zA-Z]))?)"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<op>[-+*/^_()\[\]{},;=<>!|%°:&'])"
)
_PLAIN_WORDS = FUNCTIONS | {"sqrt", "pi", "infinity", "inf", "oo"}


@dataclass(frozen=True)
class Token:
    """One token: kind in num|sym|word|cmd|op|begin|end|rowsep|setl|setr|bar; ``space`` = whitespace before it."""

    kind: str
    text: str
    space: bool = False


def _word_tokens(word: str, space: bool) -> list[Token]:
    if word in _PLAIN_WORDS:
        return [Token("cmd", word, space)]
    if len(word) >= 3:
        return [Token("word", word, space)]
    return [Token("sym", ch, space and i == 0) for i, ch in enumerate(word)]


def check_nesting(text: str, limit: int) -> None:
    """Raise :class:`ParseError` when brackets nest deeper than ``limit`` (protects the recursive parser)."""
    depth = 0
    for ch in text:
        if ch in "({[":
            depth += 1
            if depth > limit:
                raise ParseError(f"brackets nest deeper than {limit} levels")
        elif ch in ")}]":
            depth = max(0, depth - 1)


def tokenize(text: str) -> list[Token]:
    """Split a normalised answer into tokens; unknown characters raise :class:`ParseError`."""
    for uni, latex in UNICODE.items():
        text = text.replace(uni, latex)
    tokens: list[Token] = []
    pos, space = 0, False
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ParseError(f"unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            space = True
            continue
        if kind == "env":
            kind = "begin"
        if kind == "begin":
            tokens.append(Token("begin", m.group("env"), space))
        elif kind == "cmd":
            tokens.append(Token("cmd", m.group(0)[1:], space))
        elif kind == "word":
            tokens.extend(_word_tokens(m.group(0), space))
        else:
            tokens.append(Token(kind, m.group(0), space))
        space = False
    return tokens
