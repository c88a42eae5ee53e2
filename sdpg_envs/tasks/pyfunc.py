"""PyFunc: offline procedural "write ``def f(x)`` that ..." tasks, small enough for a byte-level model on CPU.

A problem is a function family (``x + a``, ``abs(x - a)``, ``[v * a for v in x]``, ``x[::-1]`` ...) with random
constants, a one-line specification, a few examples and unit tests generated with it. The reference
solution is two lines (``def f(x):`` / ``return <expr>``). Difficulty knobs: ``level`` (1: one integer
operation; 2: two operations or a comparison; 3: conditionals, lists and strings), ``num_examples``,
``num_tests`` and ``value_range``. Two prompt styles:

- ``full``: ``Write a Python function `def f(x)` that returns x plus 3.`` + ``Examples: f(2) == 5, ...``;
- ``compact`` (``metadata["compact"]``, for tiny models): ``f(x)=x+3; f(2)=5; f(-1)=2``;
- ``examples`` (``metadata["examples"]``): the shown examples alone, ``f(2)=5; f(-1)=2``, so the function must be
  inferred; the reference solution (privileged context) then tells the teacher view what the student must find.

Example:
    >>> p = pyfunc_problem("train:0", 0, PyFuncConfig(level=1))
    >>> p.solution.splitlines()[0]
    'def f(x):'
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sdpg_envs.tasks.arith import split_seed
from sdpg_envs.tasks.sources import UNBOUNDED, ProceduralSource, problem_rng
from sdpg_envs.types import Problem


@dataclass(frozen=True)
class Family:
    """One function family: ``expr``/``words`` are ``str.format`` patterns over the constants."""

    name: str
    level: int
    arg: str  # "int" | "list" | "str"
    expr: str
    words: str
    params: Callable[[random.Random], dict[str, Any]]


def _a(lo: int = 1, hi: int = 9) -> Callable[[random.Random], dict[str, Any]]:
    return lambda r: {"a": r.randint(lo, hi)}


def _ab(r: random.Random) -> dict[str, Any]:
    return {"a": r.randint(1, 9), "b": r.randint(1, 9)}


def _abc(r: random.Random) -> dict[str, Any]:
    return {"a": r.randint(0, 9), "b": r.randint(-3, 5), "c": r.randint(0, 9)}


FAMILIES: tuple[Family, ...] = (
    Family("add", 1, "int", "x + {a}", "returns x plus {a}", _a()),
    Family("sub", 1, "int", "x - {a}", "returns x minus {a}", _a()),
    Family("mul", 1, "int", "x * {a}", "returns x times {a}", _a(2, 9)),
    Family("mod", 1, "int", "x % {a}", "returns the remainder of x divided by {a}", _a(2, 9)),
    Family("floordiv", 1, "int", "x // {a}", "returns x divided by {a}, rounded down", _a(2, 9)),
    Family("max", 1, "int", "max(x, {a})", "returns the larger of x and {a}", _a()),
    Family("min", 1, "int", "min(x, {a})", "returns the smaller of x and {a}", _a()),
    Family("neg", 1, "int", "-x", "returns minus x", lambda r: {}),
    Family("square", 1, "int", "x * x", "returns x squared", lambda r: {}),
    Family("abs", 1, "int", "abs(x)", "returns the absolute value of x", lambda r: {}),
    Family("affine", 2, "int", "x * {a} + {b}", "returns x times {a}, plus {b}", _ab),
    Family("shift_mul", 2, "int", "(x + {a}) * {b}", "returns x plus {a}, times {b}", _ab),
    Family("sq_plus", 2, "int", "x * x + {a}", "returns x squared plus {a}", _a()),
    Family("absdiff", 2, "int", "abs(x - {a})", "returns the distance between x and {a}", _a()),
    Family("gt", 2, "int", "x > {a}", "returns True if x is greater than {a}, else False", _a(-3, 5)),
    Family("even", 2, "int", "x % 2 == 0", "returns True if x is even, else False", lambda r: {}),
    Family("divisible", 2, "int", "x % {a} == 0", "returns True if x is divisible by {a}, else False", _a(2, 5)),
    Family("cond", 3, "int", "{a} if x > {b} else {c}", "returns {a} if x is greater than {b}, otherwise {c}", _abc),
    Family("sum_list", 3, "list", "sum(x) + {a}", "returns the sum of the list x plus {a}", _a()),
    Family("len_list", 3, "list", "len(x) * {a}", "returns the length of the list x times {a}", _a(2, 9)),
    Family("scale_list", 3, "list", "[v * {a} for v in x]", "returns the list x with every item times {a}", _a(2, 9)),
    Family("filter_list", 3, "list", "[v for v in x if v > {a}]", "returns the items of x greater than {a}", _a(1, 7)),
    Family("max_list", 3, "list", "max(x)", "returns the largest item of the list x", lambda r: {}),
    Family("reverse", 3, "str", "x[::-1]", "returns the string x reversed", lambda r: {}),
    Family("upper", 3, "str", "x.upper()", "returns the string x in upper case", lambda r: {}),
    Family("repeat", 3, "str", "x * {a}", "returns the string x repeated {a} times", _a(2, 3)),
    Family("count", 3, "str", "x.count('{ch}')", "returns how many times '{ch}' occurs in x",
           lambda r: {"ch": r.choice("abc")}),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)


@dataclass(frozen=True)
class PyFuncConfig:
    """Difficulty knobs.

    Attributes:
        level: 1 (one integer op), 2 (two ops / comparisons) or 3 (conditionals, lists, strings).
        families: Explicit family names (overrides ``level``).
        num_examples: Input/output examples shown in the prompt.
        num_tests: Unit tests (the examples plus hidden ones); at least ``num_examples``.
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
        unknown = sorted(set(self.families or ()) - set(FAMILY_NAMES))
        if unknown or (self.families is not None and not self.families):
            raise ValueError(f"unknown PyFunc families {unknown or '[]'}; choose from {', '.join(FAMILY_NAMES)}")
        if not 0 <= self.num_examples <= self.num_tests <= 50 or self.num_tests < 1:
            raise ValueError(f"need 0 <= num_examples <= num_tests <= 50 and num_tests >= 1, got "
                             f"{self.num_examples}, {self.num_tests}")
        if not 1 <= self.value_range <= 10**6:
            raise ValueError(f"value_range must be in 1..1e6, got {self.value_range}")

    def pool(self) -> tuple[Family, ...]:
        if self.families:
            return tuple(f for f in FAMILIES if f.name in self.families)
        return tuple(f for f in FAMILIES if f.level == self.level)


def _input(rng: random.Random, family: Family, cfg: PyFuncConfig) -> Any:
    if family.arg == "list":
        return [rng.randint(0, 9) for _ in range(rng.randint(1, 4))]
    if family.arg == "str":
        return "".join(rng.choice("abcde") for _ in range(rng.randint(1, 5)))
    return rng.randint(-cfg.value_range, cfg.value_range)


def _distinct_inputs(rng: random.Random, family: Family, cfg: PyFuncConfig) -> list[Any]:
    seen: list[Any] = []
    for _ in range(cfg.num_tests * 20):
        value = _input(rng, family, cfg)
        if value not in seen:
            seen.append(value)
        if len(seen) == cfg.num_tests:
            break
    return seen


def pyfunc_problem(seed: int | str, index: int, cfg: PyFuncConfig | None = None) -> Problem:
    """Problem ``index`` of the stream ``seed`` (deterministic, offline)."""
    cfg = cfg or PyFuncConfig()
    rng = problem_rng(f"pyfunc:{seed}", index)
    family = rng.choice(cfg.pool())
    params = family.params(rng)
    expr, words = family.expr.format(**params), family.words.format(**params)
    safe = {"__builtins__": {"abs": abs, "max": max, "min": min, "sum": sum, "len": len}}
    fn = eval(compile(f"lambda x: {expr}", "<pyfunc>", "eval"), safe)  # our own fixed templates, never user text
    inputs = _distinct_inputs(rng, family, cfg)
    pairs = [(x, fn(x)) for x in inputs]
    shown = pairs[: cfg.num_examples]
    examples = ", ".join(f"f({x!r}) == {y!r}" for x, y in shown)
    prompt = f"Write a Python function `def f(x)` that {words}."
    if examples:
        prompt += f"\nExamples: {examples}"
    compact = "; ".join([f"f(x)={expr.replace(' ', '')}", *(f"f({x!r})={y!r}" for x, y in shown)])
    examples_only = "; ".join(f"f({x!r})={y!r}" for x, y in shown)
    tests = "".join(f"assert f({x!r}) == {y!r}\n" for x, y in pairs)
    return Problem(
        id=f"pyfunc/{seed}/{index}",
        prompt=prompt,
        solution=f"def f(x):\n    return {expr}\n",
        metadata={"language": "python", "tests": tests, "entry_point": "f", "timeout_s": 5.0, "family": family.name,
                  "level": family.level, "compact": compact + "\n",
                  "examples": examples_only + "\n"},
    )


def pyfunc_source(cfg: PyFuncConfig | None = None, *, seed: int = 0, split: str = "train",
                  size: int = UNBOUNDED) -> ProceduralSource:
    """A :class:`ProceduralSource` of PyFunc problems for one split (splits are independent streams)."""
    cfg = cfg or PyFuncConfig()
    return ProceduralSource(partial(pyfunc_problem, cfg=cfg), seed=split_seed(seed, split), size=size,
                            name=f"pyfunc-{split}")
