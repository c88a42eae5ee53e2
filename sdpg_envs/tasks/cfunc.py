"""CFunc: "write the C function ``int f(int x)`` that ..." tasks, checked by stdin/stdout tests through gcc.

A problem names one of a few C signatures (:data:`SIGNATURES`); the candidate writes only the function, and the
verifier (:class:`~sdpg_envs.verifiers.cfunc.CFuncVerifier`) compiles it after a test driver that reads
one call's arguments from stdin and prints the result. Expected outputs come from a Python oracle with C's
semantics (``/`` and ``%`` truncate toward zero), never from the C reference, so a test that the reference
passes checks both.

Two sources:

- procedural (:func:`cfunc_source`), like PyFunc: a family (level 1: one integer operation; 2: comparisons,
  loops over digits, ``gcd``; 3: arrays and strings, in place too) with random constants;
- a fixed, hand-written evaluation set (:data:`EVAL_PROBLEMS`, :func:`cfunc_eval_source`): gcd, primality,
  Fibonacci, Collatz, palindromes, word counts, inversions, Kadane, in-place sort and reverse...

Example:
    >>> p = cfunc_problem("train:0", 0, CFuncConfig(level=1))
    >>> p.metadata["signature"], p.metadata["tests"][0][0].endswith("\\n")
    ('int(int)', True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sdpg_envs.tasks.arith import split_seed
from sdpg_envs.tasks.sources import UNBOUNDED, ListSource, ProceduralSource, problem_rng
from sdpg_envs.types import Problem

MAX_ITEMS = 512
MAX_STRING = 1000


# ----- signatures: declaration, stdin encoding, test driver, how a call reads in feedback -------------------------
@dataclass(frozen=True)
class Signature:
    """A C function shape the test driver knows how to call.

    Attributes:
        key: ``"int(int)"``, ``"int(int,int)"``, ``"int(const int*,int)"``, ``"int(const char*)"``,
            ``"void(char*)"`` or ``"void(int*,int)"``.
        declaration: ``str.format`` pattern over ``name`` (``int {name}(int x)``).
        body: The driver's ``main`` body (``{name}`` is the function); it reads one call from stdin and prints
            the result (``void`` functions: the modified argument).
    """

    key: str
    declaration: str
    body: str

    def stdin(self, args: tuple[Any, ...]) -> str:
        """The driver's input for one call."""
        if self.key in ("int(int)", "int(int,int)"):
            return " ".join(str(int(a)) for a in args) + "\n"
        if self.key in ("int(const int*,int)", "void(int*,int)"):
            items = list(args[0])
            return f"{len(items)}\n" + " ".join(str(int(v)) for v in items) + "\n"
        return f"{args[0]}\n"

    def call(self, name: str, args: tuple[Any, ...]) -> str:
        """How one test's call reads in prompts and feedback."""
        if self.key in ("int(int)", "int(int,int)"):
            return f"{name}({', '.join(str(a) for a in args)})"
        if self.key == "int(const int*,int)":
            return f"{name}({{{', '.join(map(str, args[0]))}}}, {len(args[0])})"
        if self.key == "int(const char*)":
            return f'{name}("{args[0]}")'
        if self.key == "void(char*)":
            return f'{name}(s) with s = "{args[0]}", then s'
        return f"{name}(a, {len(args[0])}) with a = {{{', '.join(map(str, args[0]))}}}, then a"

    def example(self, name: str, args: tuple[Any, ...], value: Any) -> str:
        """One example as the prompt shows it: ``f(2) == 5``, ``f(s) with s = "ab" gives s == "ba"``."""
        call = self.call(name, args)
        if self.key.startswith("void"):
            return call.replace(", then ", " gives ") + f" == {self.shown(value)}"
        return f"{call} == {self.shown(value)}"

    def output(self, value: Any) -> str:
        """The driver's printed form of a result (lists space-separated)."""
        if isinstance(value, list | tuple):
            return " ".join(str(int(v)) for v in value)
        return str(int(value)) if isinstance(value, bool | int) else str(value)

    def shown(self, value: Any) -> str:
        """A result as prompts and feedback show it."""
        if self.key == "void(char*)":
            return f'"{value}"'
        if self.key == "void(int*,int)":
            return "{" + ", ".join(map(str, value)) + "}"
        return str(int(value))


_READ_ARRAY = ("static int sdpg_a[{max}]; int sdpg_n;\n"
               "    if (scanf(\"%d\", &sdpg_n) != 1 || sdpg_n < 0 || sdpg_n > {max}) return 3;\n"
               "    for (int sdpg_i = 0; sdpg_i < sdpg_n; sdpg_i++)\n"
               "        if (scanf(\"%d\", &sdpg_a[sdpg_i]) != 1) return 3;\n")
_READ_STRING = ("static char sdpg_s[{max}];\n"
                "    if (!fgets(sdpg_s, sizeof sdpg_s, stdin)) sdpg_s[0] = 0;\n"
                "    sdpg_s[strcspn(sdpg_s, \"\\n\")] = 0;\n")
SIGNATURES: dict[str, Signature] = {s.key: s for s in (
    Signature("int(int)", "int {name}(int x)",
              "int sdpg_x; if (scanf(\"%d\", &sdpg_x) != 1) return 3;\n    printf(\"%d\\n\", {name}(sdpg_x));\n"),
    Signature("int(int,int)", "int {name}(int a, int b)",
              "int sdpg_x, sdpg_y; if (scanf(\"%d %d\", &sdpg_x, &sdpg_y) != 2) return 3;\n"
              "    printf(\"%d\\n\", {name}(sdpg_x, sdpg_y));\n"),
    Signature("int(const int*,int)", "int {name}(const int *a, int n)",
              _READ_ARRAY.format(max=MAX_ITEMS) + "    printf(\"%d\\n\", {name}(sdpg_a, sdpg_n));\n"),
    Signature("int(const char*)", "int {name}(const char *s)",
              _READ_STRING.format(max=MAX_STRING + 2) + "    printf(\"%d\\n\", {name}(sdpg_s));\n"),
    Signature("void(char*)", "void {name}(char *s)",
              _READ_STRING.format(max=MAX_STRING + 2) + "    {name}(sdpg_s);\n    printf(\"%s\\n\", sdpg_s);\n"),
    Signature("void(int*,int)", "void {name}(int *a, int n)",
              _READ_ARRAY.format(max=MAX_ITEMS) + "    {name}(sdpg_a, sdpg_n);\n"
              "    for (int sdpg_i = 0; sdpg_i < sdpg_n; sdpg_i++)\n"
              "        printf(sdpg_i ? \" %d\" : \"%d\", sdpg_a[sdpg_i]);\n"
              "    printf(\"\\n\");\n"),
)}

PRELUDE = ("#include <ctype.h>\n#include <limits.h>\n#include <stdbool.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
           "#include <string.h>\n")
"""The standard headers, compiled first: a function needs no includes."""


def driver(signature: str, name: str) -> str:
    """The test driver: the function's prototype and a ``main`` that reads one call from stdin and prints the
    result. Its diagnostics are reported as ``test_driver.c``."""
    sig = SIGNATURES[signature]
    return (f'#line 1 "test_driver.c"\n{sig.declaration.format(name=name)};\n'
            f"int main(void) {{\n    {sig.body.replace('{name}', name)}    return 0;\n}}\n")


def assemble(code: str, signature: str, name: str) -> str:
    """The file gcc compiles: the headers, the driver, then ``#line 1 "solution.c"`` and the candidate's code.

    The candidate comes last, so its diagnostics keep its own line numbers and an unclosed brace or comment is
    reported in its code (not in the driver it would otherwise swallow); a wrong signature is a "conflicting
    types" error on the candidate's line; any ``main`` it writes is renamed (``#define main``) so it cannot
    clash with the driver's.
    """
    code = code if code.endswith("\n") else code + "\n"
    return f'{PRELUDE}{driver(signature, name)}#define main sdpg_candidate_main\n#line 1 "solution.c"\n{code}'


# ----- C semantics in the oracles ---------------------------------------------------------------------------
def cdiv(a: int, b: int) -> int:
    """C's ``a / b`` (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def cmod(a: int, b: int) -> int:
    """C's ``a % b`` (the sign follows ``a``)."""
    return a - b * cdiv(a, b)


def make_problem(pid: str, name: str, signature: str, words: str, solution: str, oracle: Callable[..., Any],
                 inputs: Sequence[tuple[Any, ...]], num_examples: int,
                 metadata: dict[str, Any] | None = None) -> Problem:
    """A CFunc :class:`Problem` from its parts (expected outputs computed by ``oracle``)."""
    sig = SIGNATURES[signature]
    outputs = [oracle(*args) for args in inputs]
    declaration = sig.declaration.format(name=name)
    examples = [sig.example(name, a, o) for a, o in zip(inputs[:num_examples], outputs)]
    prompt = f"Write a C function `{declaration}` that {words}."
    if examples:
        prompt += "\nExamples: " + "; ".join(examples)
    compact = "; ".join([f"C {declaration}: {words}", *examples])
    return Problem(
        id=pid, prompt=prompt, solution=solution,
        metadata={"language": "c", "signature": signature, "entry_point": name, "timeout_s": 2.0,
                  "tests": [[sig.stdin(a), sig.output(o)] for a, o in zip(inputs, outputs)],
                  "calls": [sig.call(name, a) for a in inputs], "shown": [sig.shown(o) for o in outputs],
                  "compact": compact + "\n", **(metadata or {})},
    )


# ----- procedural families ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CFamily:
    """One procedural family. ``words``/``body`` are ``str.format`` patterns over the constants ``k``, ``m``."""

    name: str
    level: int
    signature: str
    words: str
    body: str
    oracle: Callable[..., Any]  # (params, *args) -> result
    inputs: str = "int"  # int | nonneg | small | pos_pair | array | array1 | string
    params: Callable[[random.Random], dict[str, int]] = lambda r: {}


def _k(lo: int, hi: int) -> Callable[[random.Random], dict[str, int]]:
    return lambda r: {"k": r.randint(lo, hi)}


def _km(r: random.Random) -> dict[str, int]:
    return {"k": r.randint(1, 9), "m": r.randint(1, 9)}


def _range(r: random.Random) -> dict[str, int]:
    lo = r.randint(-5, 2)
    return {"k": lo, "m": lo + r.randint(2, 8)}


def _digits(x: int) -> list[int]:
    return [int(c) for c in str(abs(x))]


def _sum_digits_c(p: dict, x: int) -> int:
    return sum(_digits(x))


_LOOP_DIGITS = ("    int t = x < 0 ? -x : x, s = 0;\n    do {{ s += t % 10; t /= 10; }} while (t > 0);\n    return s;")
_COUNT_DIGITS = ("    int t = x < 0 ? -x : x, c = 0;\n    do {{ c++; t /= 10; }} while (t > 0);\n    return c;")
CFAMILIES: tuple[CFamily, ...] = (
    CFamily("add", 1, "int(int)", "returns x plus {k}", "    return x + {k};", lambda p, x: x + p["k"],
            params=_k(1, 9)),
    CFamily("sub", 1, "int(int)", "returns x minus {k}", "    return x - {k};", lambda p, x: x - p["k"],
            params=_k(1, 9)),
    CFamily("mul", 1, "int(int)", "returns x times {k}", "    return x * {k};", lambda p, x: x * p["k"],
            params=_k(2, 9)),
    CFamily("mod", 1, "int(int)", "returns x % {k} (C's remainder: its sign follows x)", "    return x % {k};",
            lambda p, x: cmod(x, p["k"]), params=_k(2, 9)),
    CFamily("div", 1, "int(int)", "returns x / {k} (C's division: truncated toward zero)", "    return x / {k};",
            lambda p, x: cdiv(x, p["k"]), params=_k(2, 9)),
    CFamily("max", 1, "int(int)", "returns the larger of x and {k}", "    return x > {k} ? x : {k};",
            lambda p, x: max(x, p["k"]), params=_k(-5, 5)),
    CFamily("min", 1, "int(int)", "returns the smaller of x and {k}", "    return x < {k} ? x : {k};",
            lambda p, x: min(x, p["k"]), params=_k(-5, 5)),
    CFamily("neg", 1, "int(int)", "returns minus x", "    return -x;", lambda p, x: -x),
    CFamily("square", 1, "int(int)", "returns x squared", "    return x * x;", lambda p, x: x * x),
    CFamily("abs", 1, "int(int)", "returns the absolute value of x", "    return x < 0 ? -x : x;",
            lambda p, x: abs(x)),
    CFamily("affine", 2, "int(int)", "returns x times {k}, plus {m}", "    return x * {k} + {m};",
            lambda p, x: x * p["k"] + p["m"], params=_km),
    CFamily("absdiff", 2, "int(int)", "returns the distance between x and {k}",
            "    return x > {k} ? x - {k} : {k} - x;", lambda p, x: abs(x - p["k"]), params=_k(-5, 5)),
    CFamily("gt", 2, "int(int)", "returns 1 if x is greater than {k}, else 0", "    return x > {k};",
            lambda p, x: int(x > p["k"]), params=_k(-3, 5)),
    CFamily("even", 2, "int(int)", "returns 1 if x is even, else 0", "    return x % 2 == 0;",
            lambda p, x: int(x % 2 == 0)),
    CFamily("clamp", 2, "int(int)", "returns x limited to the range [{k}, {m}]",
            "    return x < {k} ? {k} : x > {m} ? {m} : x;", lambda p, x: min(max(x, p["k"]), p["m"]), params=_range),
    CFamily("digit_sum", 2, "int(int)", "returns the sum of the decimal digits of x (ignoring its sign)", _LOOP_DIGITS,
            _sum_digits_c, inputs="wide"),
    CFamily("count_digits", 2, "int(int)", "returns how many decimal digits x has (ignoring its sign; 0 has one)",
            _COUNT_DIGITS, lambda p, x: len(_digits(x)), inputs="wide"),
    CFamily("sum_to", 2, "int(int)", "returns 1 + 2 + ... + x (0 when x < 1)",
            "    int s = 0;\n    for (int i = 1; i <= x; i++) s += i;\n    return s;",
            lambda p, x: x * (x + 1) // 2 if x > 0 else 0),
    CFamily("gcd", 2, "int(int,int)", "returns the greatest common divisor of the positive integers a and b",
            "    while (b != 0) {{ int t = a % b; a = b; b = t; }}\n    return a;",
            lambda p, a, b: math.gcd(a, b), inputs="pos_pair"),
    CFamily("sum_arr", 3, "int(const int*,int)", "returns the sum of the n items of a, plus {k}",
            "    int s = {k};\n    for (int i = 0; i < n; i++) s += a[i];\n    return s;",
            lambda p, xs: sum(xs) + p["k"], inputs="array", params=_k(0, 9)),
    CFamily("count_gt", 3, "int(const int*,int)", "returns how many of the n items of a are greater than {k}",
            "    int c = 0;\n    for (int i = 0; i < n; i++) c += a[i] > {k};\n    return c;",
            lambda p, xs: sum(v > p["k"] for v in xs), inputs="array", params=_k(0, 7)),
    CFamily("max_arr", 3, "int(const int*,int)", "returns the largest of the n items of a (n >= 1)",
            "    int m = a[0];\n    for (int i = 1; i < n; i++) if (a[i] > m) m = a[i];\n    return m;",
            lambda p, xs: max(xs), inputs="array1"),
    CFamily("count_char", 3, "int(const char*)", "returns how many times the character '{c}' occurs in s",
            "    int c = 0;\n    for (; *s; s++) c += *s == '{c}';\n    return c;",
            lambda p, s: s.count(p["c"]), inputs="string", params=lambda r: {"c": r.choice("abc")}),
    CFamily("str_len", 3, "int(const char*)", "returns the length of the string s",
            "    int n = 0;\n    while (s[n]) n++;\n    return n;", lambda p, s: len(s), inputs="string"),
    CFamily("reverse_str", 3, "void(char*)", "reverses the string s in place",
            "    int n = strlen(s);\n    for (int i = 0; i < n / 2; i++) {{ char t = s[i]; s[i] = s[n - 1 - i]; "
            "s[n - 1 - i] = t; }}", lambda p, s: s[::-1], inputs="string"),
    CFamily("upper_str", 3, "void(char*)", "converts every letter of s to upper case in place",
            "    for (; *s; s++) *s = toupper((unsigned char)*s);", lambda p, s: s.upper(), inputs="string"),
    CFamily("scale_arr", 3, "void(int*,int)", "multiplies each of the n items of a by {k} in place",
            "    for (int i = 0; i < n; i++) a[i] *= {k};", lambda p, xs: [v * p["k"] for v in xs], inputs="array",
            params=_k(2, 9)),
)
CFAMILY_NAMES = tuple(f.name for f in CFAMILIES)


@dataclass(frozen=True)
class CFuncConfig:
    """Difficulty knobs (as :class:`~sdpg_envs.tasks.pyfunc.PyFuncConfig`).

    Attributes:
        level: 1 (one integer operation), 2 (comparisons, digit loops, gcd) or 3 (arrays and strings).
        families: Explicit family names (overrides ``level``).
        num_examples: Calls shown in the prompt.
        num_tests: Tests (the examples plus hidden ones).
        value_range: Integer inputs are drawn from ``[-value_range, value_range]``.
    """

    level: int = 1
    families: tuple[str, ...] | None = None
    num_examples: int = 2
    num_tests: int = 5
    value_range: int = 9

    def __post_init__(self) -> None:
        if self.level not in (1, 2, 3):
            raise ValueError(f"level must be 1, 2 or 3, got {self.level}")
        unknown = sorted(set(self.families or ()) - set(CFAMILY_NAMES))
        if unknown or (self.families is not None and not self.families):
            raise ValueError(f"unknown CFunc families {unknown or '[]'}; choose from {', '.join(CFAMILY_NAMES)}")
        if not 0 <= self.num_examples <= self.num_tests <= 50 or self.num_tests < 1:
            raise ValueError(f"need 0 <= num_examples <= num_tests <= 50 and num_tests >= 1, got "
                             f"{self.num_examples}, {self.num_tests}")
        if not 1 <= self.value_range <= 10_000:
            raise ValueError(f"value_range must be in 1..10000, got {self.value_range}")

    def pool(self) -> tuple[CFamily, ...]:
        if self.families:
            return tuple(f for f in CFAMILIES if f.name in self.families)
        return tuple(f for f in CFAMILIES if f.level == self.level)


def _draw(rng: random.Random, kind: str, vr: int) -> tuple[Any, ...]:
    if kind == "pos_pair":
        return (rng.randint(1, 12 * vr), rng.randint(1, 12 * vr))
    if kind in ("array", "array1"):
        return ([rng.randint(-vr, vr) for _ in range(rng.randint(1 if kind == "array1" else 0, 5))],)
    if kind == "string":
        return ("".join(rng.choice("abcde ") for _ in range(rng.randint(0, 7))).strip(),)
    if kind == "wide":
        return (rng.randint(-1000 * vr, 1000 * vr),)
    return (rng.randint(-vr, vr),)


def cfunc_problem(seed: int | str, index: int, cfg: CFuncConfig | None = None) -> Problem:
    """Problem ``index`` of the procedural stream ``seed`` (deterministic, offline)."""
    cfg = cfg or CFuncConfig()
    rng = problem_rng(f"cfunc:{seed}", index)
    family = rng.choice(cfg.pool())
    params = family.params(rng)
    inputs: list[tuple[Any, ...]] = []
    for _ in range(cfg.num_tests * 20):
        args = _draw(rng, family.inputs, cfg.value_range)
        if args not in inputs:
            inputs.append(args)
        if len(inputs) == cfg.num_tests:
            break
    sig = SIGNATURES[family.signature]
    solution = f"{sig.declaration.format(name='f')} {{\n{family.body.format(**params)}\n}}\n"
    return make_problem(f"cfunc/{seed}/{index}", "f", family.signature, family.words.format(**params), solution,
                        partial(family.oracle, params), inputs, cfg.num_examples,
                        {"family": family.name, "level": family.level})


def cfunc_source(cfg: CFuncConfig | None = None, *, seed: int = 0, split: str = "train",
                 size: int = UNBOUNDED) -> ProceduralSource:
    """A :class:`ProceduralSource` of CFunc problems for one split (splits are independent streams)."""
    return ProceduralSource(partial(cfunc_problem, cfg=cfg or CFuncConfig()), seed=split_seed(seed, split), size=size,
                            name=f"cfunc-{split}")


def cfunc_eval_source(num_examples: int = 2) -> ListSource:
    """The fixed hand-written evaluation set (:data:`EVAL_PROBLEMS`) as a :class:`ListSource`."""
    from sdpg_envs.tasks.cfunc_eval import EVAL_PROBLEMS

    return ListSource([make_problem(f"cfunc/eval/{e.name}", e.name, e.signature, e.words, e.solution, e.oracle,
                                    e.inputs, num_examples, {"family": e.name, "level": 0}) for e in EVAL_PROBLEMS],
                      name="cfunc-eval")
