"""Math environments: :class:`MathEnv` (a :class:`ReasoningEnv` scored by the sympy math verifier) and the
factories behind ``sdpg/Arith-v0``, ``sdpg/GSM8K-v0``, ``sdpg/MATH-v0`` and ``sdpg/MATH500-v0``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from sdpg_envs.base import PromptTemplate, ReasoningEnv
from sdpg_envs.tasks.arith import ArithConfig, arith_source
from sdpg_envs.tasks.gsm8k import gsm8k_source
from sdpg_envs.tasks.math_data import math_source
from sdpg_envs.tasks.sources import UNBOUNDED, TaskSource
from sdpg_envs.types import Problem
from sdpg_envs.verifiers import Verifier

COT_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def _terse(problem: Problem) -> str:
    return f"Q: {problem.metadata.get('terse', problem.prompt)} A:"


def _cot(problem: Problem) -> str:
    return f"{problem.prompt}\n\n{COT_SUFFIX}"


def _plain(problem: Problem) -> str:
    return problem.prompt


def _gsm8k(problem: Problem) -> str:
    return f"{problem.prompt}\n\nSolve step by step and end with a line '#### <answer>'."


MATH_PROMPTS: dict[str, PromptTemplate] = {  # module-level functions, not lambdas: envs must pickle
    "default": PromptTemplate("default", _cot, "\\boxed{{{answer}}}"),
    "plain": PromptTemplate("plain", _plain, "The answer is {answer}."),
    "gsm8k": PromptTemplate("gsm8k", _gsm8k, "#### {answer}"),
    "terse": PromptTemplate("terse", _terse, " {answer}"),
}
"""``default``: question + "reason step by step ... \\boxed{}"; ``plain``: the question alone; ``gsm8k``: ends
with ``#### <answer>``; ``terse``: ``Q: 12+7=? A:`` for tiny models (the completion is the bare answer)."""


def math_verifier(options: Mapping[str, Any] | None = None) -> Verifier:
    """The sympy-based math verifier with ``options`` (field names of ``MathOptions``)."""
    from sdpg_envs.verifiers.math import MathOptions, MathVerifier

    return MathVerifier(MathOptions.from_dict(dict(options or {})))


class MathEnv(ReasoningEnv):
    """A :class:`ReasoningEnv` over math problems, verified by ``MathVerifier`` unless another is given.

    Args:
        source: The problems.
        verifier: Optional verifier; default ``math_verifier(math_options)``.
        math_options: ``MathOptions`` fields for the default verifier (e.g. ``{"timeout_s": 2.0}``).
        **kwargs: ``context``, ``prompt_template``, ``max_completion_chars`` of :class:`ReasoningEnv`.
    """

    prompt_templates = MATH_PROMPTS

    def __init__(self, source: TaskSource, verifier: Verifier | None = None, *,
                 math_options: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(source, verifier if verifier is not None else math_verifier(math_options), **kwargs)


def arith_env(
    *,
    digits: int = 2,
    num_ops: int = 1,
    operators: str = "+-",
    word_problems: bool = False,
    min_digits: int = 1,
    seed: int = 0,
    split: str = "train",
    size: int = UNBOUNDED,
    **kwargs: Any,
) -> MathEnv:
    """``sdpg/Arith-v0``: offline procedural arithmetic (see :class:`~sdpg_envs.tasks.arith.ArithConfig`)."""
    cfg = ArithConfig(digits=digits, num_ops=num_ops, operators=operators, word_problems=word_problems,
                      min_digits=min_digits)
    return MathEnv(arith_source(cfg, seed=seed, split=split, size=size), **kwargs)


def _dataset_env(loader: Callable[..., TaskSource], **loader_kwargs: Any) -> Callable[..., MathEnv]:
    def make(*, data_path: str | os.PathLike | None = None, split: str = "test", n: int | None = None,
             **kwargs: Any) -> MathEnv:
        return MathEnv(loader(data_path=data_path, split=split, n=n, **loader_kwargs), **kwargs)

    return make


def gsm8k_env(**kwargs: Any) -> MathEnv:
    """``sdpg/GSM8K-v0``: GSM8K (``data_path=``, ``split="test"|"train"``, ``n=``) from ``<shared>/data``."""
    return _dataset_env(gsm8k_source)(**kwargs)


def math500_env(**kwargs: Any) -> MathEnv:
    """``sdpg/MATH500-v0``: MATH-500 (``data_path=``, ``split=``, ``n=``)."""
    return _dataset_env(math_source, subset="math500")(**kwargs)


def math_env(*, levels: tuple[int, ...] | list[int] | None = None, **kwargs: Any) -> MathEnv:
    """``sdpg/MATH-v0``: the full MATH test set (``data_path=``, ``split=``, ``n=``, ``levels=``)."""
    return _dataset_env(math_source, subset="math", levels=levels)(**kwargs)
