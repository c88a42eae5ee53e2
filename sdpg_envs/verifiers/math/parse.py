"""A small recursive-descent parser from the MATH answer grammar to a plain tuple AST (no sympy here).

Nodes: ``("int", "12")``, ``("dec", "0.5")``, ``("sym", "x")``, ``("const", "pi"|"oo"|"empty")``, ``("add", (..))``,
``("neg", a)``, ``("mul", (..))``, ``("div", a, b)``, ``("pow", a, b)``, ``("fn", name, (args))``,
``("apply", name, (args))``, ``("fact", a)``, ``("sqrt", a, n)``, ``("abs", a)``, ``("pct", a)``, ``("deg", a)``,
``("pm", a, b)`` (``a`` may be None), ``("rel", ops, parts)``, ``("tuple", items)``, ``("bracket", items)``,
``("interval", left_closed, a, b, right_closed)``, ``("set", items)``, ``("union", parts)``, ``("inter", parts)``,
``("setminus", a, b)``, ``("ratio", parts)``, ``("matrix", rows)``, ``("list", items)``, ``("text", s)``,
``("base", digits, base)``.
The AST is made of tuples and strings only, so it pickles cheaply to the sympy worker.
"""

from __future__ import annotations

from sdpg_envs.verifiers.math.lexer import (
    CONSTANTS,
    DECORATIONS,
    FUNCTIONS,
    GREEK,
    RELATIONS,
    ParseError,
    Token,
    check_nesting,
    tokenize,
)
from sdpg_envs.verifiers.math.options import MathOptions

Node = tuple
_APPLY_LETTERS = set("fghFGHPQW")
_STOP = {",", ";", ")", "]", "}", "=", "<", ">", "&", ":", "|"}
_MUL_OPS = {"cdot": "*", "times": "*", "ast": "*", "div": "/"}


class _Parser:
    def __init__(self, tokens: list[Token], options: MathOptions) -> None:
        self.toks = tokens
        self.i = 0
        self.options = options
        self.abs_depth = 0  # inside |...| a "|" closes; outside it opens a factor ("2|x|")

    # --- token helpers -----------------------------------------------------------------------------
    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def at(self, kind: str, text: str | None = None) -> bool:
        t = self.peek()
        return t is not None and t.kind == kind and (text is None or t.text == text)

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise ParseError("unexpected end of answer")
        self.i += 1
        return t

    def expect(self, kind: str, text: str | None = None) -> Token:
        if not self.at(kind, text):
            got = self.peek()
            raise ParseError(f"expected {text or kind}, got {got.text if got else 'end'}")
        return self.take()

    # --- grammar -----------------------------------------------------------------------------------
    def items(self, closers: set[str]) -> list[Node]:
        """Comma/semicolon separated items up to (not including) a closer token text or the end."""
        out: list[Node] = []
        while True:
            t = self.peek()
            if t is None or (t.kind in ("op", "setr", "end", "rowsep") and t.text in closers):
                return out
            if t.kind == "op" and t.text in ",;":
                self.take()
                continue
            out.append(self.relation())

    def relation(self) -> Node:
        parts, ops = [self.ratio()], []
        while True:
            t = self.peek()
            op = None
            if t is not None and t.kind == "op" and t.text in "=<>":
                op = t.text
            elif t is not None and t.kind == "cmd" and t.text in RELATIONS:
                op = RELATIONS[t.text]
            if op is None:
                return parts[0] if not ops else ("rel", tuple(ops), tuple(parts))
            self.take()
            ops.append(op)
            parts.append(self.ratio())

    def ratio(self) -> Node:
        parts = [self.set_expr()]
        while self.at("op", ":"):
            self.take()
            parts.append(self.set_expr())
        return parts[0] if len(parts) == 1 else ("ratio", tuple(parts))

    def set_expr(self) -> Node:
        left = self.additive()
        while self.at("cmd") and self.peek().text in ("cup", "cap", "setminus"):
            op = self.take().text
            right = self.additive()
            if op == "setminus":
                left = ("setminus", left, right)
            else:
                kind = "union" if op == "cup" else "inter"
                left = (kind, (*left[1], right)) if left[0] == kind else (kind, (left, right))
        return left

    def additive(self) -> Node:
        terms = [self.unary()]
        while True:
            t = self.peek()
            if t is not None and t.kind == "op" and t.text in "+-":
                self.take()
                rhs = self.unary()
                terms.append(rhs if t.text == "+" else ("neg", rhs))
            elif t is not None and t.kind == "cmd" and t.text in ("pm", "mp"):
                self.take()
                base = terms[0] if len(terms) == 1 else ("add", tuple(terms))
                return ("pm", base, self.additive())
            else:
                return terms[0] if len(terms) == 1 else ("add", tuple(terms))

    def unary(self) -> Node:
        sign = 1
        while self.at("op", "-") or self.at("op", "+"):
            sign = -sign if self.take().text == "-" else sign
        if self.at("cmd", "pm") or self.at("cmd", "mp"):
            self.take()
            return ("pm", None, self.multiplicative())
        node = self.multiplicative()
        return ("neg", node) if sign < 0 else node

    def multiplicative(self) -> Node:
        node = self.postfix()
        while True:
            t = self.peek()
            if t is None:
                return node
            if (t.kind == "op" and t.text in "*/") or (t.kind == "cmd" and t.text in _MUL_OPS):
                self.take()
                op = t.text if t.kind == "op" else _MUL_OPS[t.text]
                rhs = self.postfix()
                node = ("div", node, rhs) if op == "/" else _mul(node, rhs)
            elif self._starts_primary(t):
                rhs = self.postfix()
                if self.options.mixed_numbers and node[0] == "int" and _is_int_frac(rhs):
                    node = ("add", (node, rhs))
                else:
                    node = _mul(node, rhs)
            else:
                return node

    def _starts_primary(self, t: Token) -> bool:
        if t.kind in ("num", "sym", "word", "setl", "begin"):
            return True
        if t.kind == "cmd":
            return t.text not in RELATIONS and t.text not in _MUL_OPS and t.text not in (
                "cup", "cap", "setminus", "pm", "mp", "quad")  # fmt: skip
        return t.kind == "op" and (t.text in "([{" or (t.text == "|" and self.abs_depth == 0))

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.at("op", "^"):
                self.take()
                node = ("pow", node, self.argument(exponent=True))
            elif self.at("op", "!"):
                self.take()
                node = ("fact", node)
            elif self.at("op", "%"):
                self.take()
                node = ("pct", node)
            elif self.at("op", "°"):
                self.take()
                node = ("deg", node)
            elif self.at("op", "'"):
                self.take()
                node = ("apply", "prime", (node,))
            elif self.at("op", "_"):
                self.take()
                node = _subscript(node, self.argument())
            else:
                return node

    def argument(self, exponent: bool = False) -> Node:
        """A brace group, or a single token (``\\frac12``, ``x^2``, ``x^-1``)."""
        t = self.peek()
        if t is None:
            raise ParseError("missing argument")
        if t.kind == "op" and t.text == "{":
            self.take()
            inner = self.items({"}"})
            self.expect("op", "}")
            return _pack(inner)
        if exponent and t.kind == "op" and t.text == "-":
            self.take()
            return ("neg", self.argument())
        if t.kind == "num" and len(t.text) > 1 and not exponent:
            self.toks[self.i] = Token("num", t.text[1:])
            return ("int", t.text[0])
        if t.kind == "num" and exponent and len(t.text) > 1 and "." not in t.text:
            self.toks[self.i] = Token("num", t.text[1:])
            return ("int", t.text[0])
        return self.primary()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "num":
            return _number(t.text)
        if t.kind == "sym":
            if t.text in _APPLY_LETTERS and self.at("op", "(") and not self.peek().space:
                self.take()
                args = self.items({")"})
                self.expect("op", ")")
                return ("apply", t.text, tuple(args))
            return ("sym", t.text)
        if t.kind == "word":
            return ("text", t.text)
        if t.kind == "setl":
            inner = self.items({"\\}"})
            self.expect("setr")
            return ("set", tuple(inner)) if inner else ("const", "empty")
        if t.kind == "begin":
            return self.matrix(t.text)
        if t.kind == "bar":
            inner = self.additive()
            self.expect("bar")
            return ("abs", inner)
        if t.kind == "op":
            return self.bracketed(t.text)
        if t.kind == "cmd":
            return self.command(t.text)
        raise ParseError(f"unexpected {t.text!r}")

    def bracketed(self, opener: str) -> Node:
        if opener == "|":
            self.abs_depth += 1
            try:
                inner = self.additive()
            finally:
                self.abs_depth -= 1
            self.expect("op", "|")
            return ("abs", inner)
        if opener == "{":
            inner = self.items({"}"})
            self.expect("op", "}")
            return _pack(inner)
        if opener not in "([":
            raise ParseError(f"unexpected {opener!r}")
        inner = self.items({")", "]"})
        closer = self.take().text
        if not inner:
            raise ParseError("empty brackets")
        if len(inner) == 2 and opener + closer in ("(]", "[)"):
            return ("interval", opener == "[", inner[0], inner[1], closer == "]")
        if len(inner) == 1 and opener + closer in ("()", "[]"):
            return inner[0] if inner[0][0] != "list" else ("tuple", inner[0][1])
        return ("tuple" if opener == "(" else "bracket", tuple(inner))

    def matrix(self, env: str) -> Node:
        rows: list[tuple[Node, ...]] = []
        row: list[Node] = []
        while not self.at("end"):
            if self.peek() is None:
                raise ParseError(f"unterminated \\begin{{{env}}}")
            if self.at("op", "&"):
                self.take()
                continue
            if self.at("rowsep"):
                self.take()
                if row:
                    rows.append(tuple(row))
                row = []
                continue
            row.append(self.relation())
        self.take()
        if row:
            rows.append(tuple(row))
        if not rows or len({len(r) for r in rows}) != 1:
            raise ParseError("ragged or empty matrix")
        return ("matrix", tuple(rows))

    def command(self, name: str) -> Node:
        if name == "frac" or name == "binom":
            a, b = self.argument(), self.argument()
            return ("div", a, b) if name == "frac" else ("fn", "binom", (a, b))
        if name == "sqrt":
            index = None
            if self.at("op", "["):
                self.take()
                index = self.additive()
                self.expect("op", "]")
            return ("sqrt", self.argument(), index)
        if name in FUNCTIONS:
            return self.function(name)
        if name in CONSTANTS:
            return ("const", CONSTANTS[name])
        if name in DECORATIONS:
            return self.argument()
        if name in GREEK:
            return ("sym", name)
        if name in ("dots", "ldots", "cdots"):
            return ("text", "...")
        if name in ("lfloor", "lceil"):
            inner = self.additive()
            self.expect("cmd", "rfloor" if name == "lfloor" else "rceil")
            return ("fn", "floor" if name == "lfloor" else "ceil", (inner,))
        return ("sym", name)  # unknown commands act as opaque symbols (\\zzz, \\triangle)

    def function(self, name: str) -> Node:
        power, base = None, None
        if name == "log" and self.at("op", "_"):
            self.take()
            base = self.argument()
        if self.at("op", "^"):
            self.take()
            power = self.argument(exponent=True)
        if self.at("op", "("):
            self.take()
            args = self.items({")"})
            self.expect("op", ")")
        else:
            factor = self.postfix()
            while (t := self.peek()) is not None and t.kind in ("num", "sym") and not t.space:
                factor = _mul(factor, self.postfix())
            args = [factor]
        if not args:
            raise ParseError(f"\\{name} without an argument")
        node: Node = ("fn", name, tuple(args) + ((base,) if base is not None else ()))
        return ("pow", node, power) if power is not None else node


def _number(text: str) -> Node:
    return ("dec", text) if ("." in text or "e" in text.lower()) else ("int", text)


def _mul(a: Node, b: Node) -> Node:
    return ("mul", (*a[1], b)) if a[0] == "mul" else ("mul", (a, b))


def _pack(items: list[Node]) -> Node:
    if not items:
        raise ParseError("empty group")
    return items[0] if len(items) == 1 else ("list", tuple(items))


def _is_int_frac(node: Node) -> bool:
    return node[0] == "div" and node[1][0] == "int" and node[2][0] == "int"


def _subscript(node: Node, sub: Node) -> Node:
    if node[0] == "int" and sub[0] == "int" and 2 <= int(sub[1]) <= 36:
        return ("base", node[1], sub[1])
    if node[0] in ("sym", "apply"):
        return ("sym", f"{node[1]}_{_flat(sub)}")
    return node


def _flat(node: Node) -> str:
    return "".join(_flat(x) if isinstance(x, tuple) else str(x) for x in node[1:])


def parse_answer(text: str, options: MathOptions | None = None) -> Node:
    """Parse a normalised answer into a tuple AST; raise :class:`ParseError` when it is not supported.

    >>> parse_answer("\\\\frac{1}{2}")
    ('div', ('int', '1'), ('int', '2'))
    >>> parse_answer("(1,2]")
    ('interval', False, ('int', '1'), ('int', '2'), True)
    """
    options = options or MathOptions()
    if not text.strip():
        raise ParseError("empty answer")
    check_nesting(text, options.max_nesting)
    if ";" in text and "," in text and _top_level(text, ";"):  # "p=5,q=2;p=7,q=2": groups of a tuple each
        groups = [_parse_items(part, options) for part in _top_level(text, ";")]
        return _pack([("tuple", tuple(g)) if len(g) > 1 else g[0] for g in groups])
    return _pack(_parse_items(text, options))


def _parse_items(text: str, options: MathOptions) -> list[Node]:
    parser = _Parser(tokenize(text), options)
    items = parser.items(set())
    if parser.peek() is not None:
        raise ParseError(f"unexpected {parser.peek().text!r}")
    if not items:
        raise ParseError("empty answer")
    return items


def _top_level(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets; [] when it only occurs inside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p for p in parts + [text[start:]] if p.strip()] if parts else []
