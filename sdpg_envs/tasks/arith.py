"""Offline procedural arithmetic: ``problem = arith_problem(seed, index, ...)``, with difficulty knobs.

Two kinds of problems:

- expressions (``word_problems=False``): ``num_ops`` operations over integers of 1..``digits`` digits, usual
  precedence, e.g. ``What is 37 + 5 * 12?``; the terse form (``metadata["terse"]``) is ``37+5*12=?``;
- multi-step word problems (``word_problems=True``): a story with ``num_ops`` steps, with a worked solution.

The easiest setting (``digits=1, num_ops=1, operators="+"``) is learnable by a byte-level model with a few
million parameters on CPU.
"""

from __future__ import annotations

import ast
import operator
import random
import zlib
from dataclasses import dataclass
from functools import partial

from sdpg_envs.tasks.sources import UNBOUNDED, ProceduralSource, problem_rng
from sdpg_envs.types import Problem

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Liam"]
_ITEMS = ["apples", "marbles", "stickers", "books", "coins", "shells", "pencils", "cards"]
_PEOPLE = ["a friend", "a cousin", "a neighbour", "the teacher", "a classmate"]


@dataclass(frozen=True)
class ArithConfig:
    """Difficulty knobs.

    Attributes:
        digits: Operands have 1..digits digits.
        num_ops: Number of operations (expression) or steps (word problem).
        operators: Operators to draw from, a subset of ``"+-*"``.
        word_problems: Multi-step word problems instead of bare expressions.
        min_digits: Operands have at least this many digits.
    """

    digits: int = 2
    num_ops: int = 1
    operators: str = "+-"
    word_problems: bool = False
    min_digits: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.digits <= 18:
            raise ValueError(f"need 1 <= min_digits <= digits <= 18, got min_digits={self.min_digits}, "
                             f"digits={self.digits}")
        if not 1 <= self.num_ops <= 32:
            raise ValueError(f"num_ops must be in 1..32, got {self.num_ops}")
        if not self.operators or set(self.operators) - set("+-*"):
            raise ValueError(f"operators must be a non-empty subset of '+-*', got {self.operators!r}")


def _operand(rng: random.Random, cfg: ArithConfig) -> int:
    return rng.randint(10 ** (cfg.min_digits - 1) if cfg.min_digits > 1 else 0, 10**cfg.digits - 1)


def evaluate(expression: str) -> int:
    """Evaluate an integer ``+ - *`` expression with the usual precedence (no ``eval``)."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        raise ValueError(f"unsupported syntax in arithmetic expression: {ast.dump(node)[:80]}")

    return walk(ast.parse(expression, mode="eval"))


def _expression_problem(rng: random.Random, cfg: ArithConfig, pid: str) -> Problem:
    terms = [str(_operand(rng, cfg))]
    for _ in range(cfg.num_ops):
        terms += [rng.choice(cfg.operators), str(_operand(rng, cfg))]
    terse = "".join(terms)
    value = evaluate(terse)
    spaced = " ".join(terms)
    meta = {"terse": f"{terse}=?", "expression": terse, "kind": "expression"}
    solution = f"{spaced} = {value}"
    if cfg.num_ops > 1:
        solution = f"Using the usual order of operations, {solution}"
    return Problem(pid, f"What is {spaced}?", answer=str(value), solution=solution, metadata=meta)


def _word_step(rng: random.Random, cfg: ArithConfig, name: str, item: str, have: int) -> tuple[str, str, int]:
    """One story step: (sentence, worked line, new count). Subtraction never goes below zero."""
    op = rng.choice(cfg.operators)
    if op == "-" and have == 0:
        op = "+"
    if op == "+":
        n = max(1, _operand(rng, cfg))
        return rng.choice([f"Then {name} finds {n} more {item}.", f"Then {name} buys {n} more {item}."]), \
            f"{have} + {n} = {have + n}", have + n
    if op == "-":
        n = rng.randint(1, have)
        return f"Then {name} gives {n} {item} to {rng.choice(_PEOPLE)}.", f"{have} - {n} = {have - n}", have - n
    k = rng.randint(2, 3 if cfg.digits == 1 else 5)
    word = {2: "doubles", 3: "triples"}.get(k, f"becomes {k} times as large")
    return f"Then the number of {item} {name} has {word}.", f"{have} * {k} = {have * k}", have * k


def _word_problem(rng: random.Random, cfg: ArithConfig, pid: str) -> Problem:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    have = max(1, _operand(rng, cfg))
    sentences, lines = [f"{name} has {have} {item}."], []
    for _ in range(cfg.num_ops):
        sentence, line, have = _word_step(rng, cfg, name, item, have)
        sentences.append(sentence)
        lines.append(line)
    question = " ".join(sentences) + f" How many {item} does {name} have now?"
    meta = {"terse": question, "kind": "word", "steps": cfg.num_ops}
    return Problem(pid, question, answer=str(have), solution="\n".join(lines), metadata=meta)


def arith_problem(seed: int | str, index: int, cfg: ArithConfig | None = None) -> Problem:
    """Problem ``index`` of the arithmetic stream ``seed`` (pure function of its arguments)."""
    cfg = cfg or ArithConfig()
    rng = problem_rng(seed, index)
    pid = f"arith-{seed}-{index}"
    return _word_problem(rng, cfg, pid) if cfg.word_problems else _expression_problem(rng, cfg, pid)


def split_seed(seed: int, split: str) -> int:
    """Fold a split name into the stream seed: ``train`` and ``test`` are independent streams.

    (Tiny settings such as one-digit addition have few distinct problems, so independent streams overlap.)
    """
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    return (int(seed) * 1_000_003 + zlib.crc32(split.encode())) % (2**63)


def arith_source(cfg: ArithConfig | None = None, *, seed: int = 0, split: str = "train",
                 size: int = UNBOUNDED) -> ProceduralSource:
    """A :class:`ProceduralSource` over :func:`arith_problem` for one split."""
    cfg = cfg or ArithConfig()
    return ProceduralSource(partial(arith_problem, cfg=cfg), seed=split_seed(seed, split), size=size,
                            name=f"arith-{split}")
