"""Code environments: :class:`CodeEnv` (a :class:`ReasoningEnv` scored by :class:`CodeVerifier`) and the
factories behind ``sdpg/HumanEval-v0``, ``sdpg/MBPP-v0`` and ``sdpg/PyFunc-v0``.

The privileged context is the reference solution and/or the verifier's feedback on this attempt (compiler
error, runtime error with the candidate's frames, timeout input, failing tests), chosen by name with
``context=`` (``"reference+feedback"`` default, ``"reference"``, ``"solution"``, ``"feedback"``, ``"none"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sandboxes import Sandbox
from sdpg_envs.base import PromptTemplate, ReasoningEnv
from sdpg_envs.tasks.humaneval import humaneval_source
from sdpg_envs.tasks.mbpp import mbpp_source
from sdpg_envs.tasks.pyfunc import PyFuncConfig, pyfunc_source
from sdpg_envs.tasks.sources import UNBOUNDED, TaskSource
from sdpg_envs.types import Problem
from sdpg_envs.verifiers import Verifier
from sdpg_envs.verifiers.code import CodeVerifier

ANSWER_INSTRUCTION = "Answer with the complete Python code in a single ```python code block."


def _default(problem: Problem) -> str:
    return f"{problem.prompt}\n\n{ANSWER_INSTRUCTION}"


def _compact(problem: Problem) -> str:
    return str(problem.metadata.get("compact", problem.prompt + "\n"))


def _examples(problem: Problem) -> str:
    if "examples" not in problem.metadata:
        raise ValueError(f"prompt_template='examples' needs problems with metadata['examples'] (PyFunc has it); "
                         f"{problem.id!r} has none")
    return str(problem.metadata["examples"])


CODE_PROMPTS: dict[str, PromptTemplate] = {
    "default": PromptTemplate("default", _default, "```python\n{answer}```"),
    "plain": PromptTemplate("plain", lambda p: p.prompt, "```python\n{answer}```"),
    "compact": PromptTemplate("compact", _compact, "{answer}"),
    "examples": PromptTemplate("examples", _examples, "{answer}"),
}
"""``default``: the task text + "answer in a ```python block"; ``plain``: the task text alone; ``compact``: a
terse one-liner (PyFunc: ``f(x)=x+3; f(2)=5``) whose completion is the bare code, for tiny models;
``examples``: the input/output examples alone (PyFunc: ``f(2)=5; f(-1)=2``), bare code, the function inferred."""


class CodeEnv(ReasoningEnv):
    """A :class:`ReasoningEnv` over programming problems, verified by compiling and testing in a sandbox.

    Args:
        source: The problems (``metadata["tests"]`` etc., see :class:`CodeVerifier`).
        verifier: Optional verifier; default ``CodeVerifier(sandbox, **code_options)``.
        sandbox: A sandbox kind (``"auto"``, ``"bwrap"``, ``"process"``, ``"docker"``) or a sandbox instance.
        code_options: Keyword arguments for :class:`CodeVerifier` (``timeout_s``, ``extract``, ...).
        **kwargs: ``context``, ``prompt_template``, ``max_completion_chars`` of :class:`ReasoningEnv`.
    """

    prompt_templates = CODE_PROMPTS

    def __init__(self, source: TaskSource, verifier: Verifier | None = None, *, sandbox: Sandbox | str = "auto",
                 code_options: Mapping[str, Any] | None = None, **kwargs: Any):
        if verifier is None:
            verifier = CodeVerifier(sandbox, **dict(code_options or {}))
        super().__init__(source, verifier, **kwargs)

    def gold_completion(self, problem: Problem) -> str:
        """The reference program, written the way the prompt asks (fenced, or bare for ``compact``)."""
        if not problem.solution:
            raise ValueError(f"problem {problem.id!r} has no reference solution")
        solution = problem.solution if problem.solution.endswith("\n") else problem.solution + "\n"
        return self.template.answer_format.format(answer=solution)

    def close(self) -> None:
        closer = getattr(self.verifier, "close", None)
        if callable(closer):
            closer()
        super().close()


def humaneval_env(*, data_path: str | os.PathLike | None = None, n: int | None = None, **kwargs: Any) -> CodeEnv:
    """``sdpg/HumanEval-v0``: the 164 HumanEval problems (``data_path=`` any local file or an HF name, ``n=``)."""
    return CodeEnv(humaneval_source(data_path, n), **kwargs)


def mbpp_env(*, data_path: str | os.PathLike | None = None, variant: str = "full", split: str = "test",
             n: int | None = None, challenge: bool = False, **kwargs: Any) -> CodeEnv:
    """``sdpg/MBPP-v0``: MBPP (``variant="full"|"sanitized"``; ``split``: test, train, validation, prompt, all)."""
    return CodeEnv(mbpp_source(data_path, variant=variant, split=split, n=n, challenge=challenge), **kwargs)


def pyfunc_env(*, level: int = 1, families: tuple[str, ...] | list[str] | None = None, num_examples: int = 2,
               num_tests: int = 5, value_range: int = 9, seed: int = 0, split: str = "train", size: int = UNBOUNDED,
               **kwargs: Any) -> CodeEnv:
    """``sdpg/PyFunc-v0``: procedural ``def f(x)`` tasks (see :class:`~sdpg_envs.tasks.pyfunc.PyFuncConfig`);
    ``prompt_template="compact"`` for tiny models."""
    cfg = PyFuncConfig(level=level, families=tuple(families) if families else None, num_examples=num_examples,
                       num_tests=num_tests, value_range=value_range)
    return CodeEnv(pyfunc_source(cfg, seed=seed, split=split, size=size), **kwargs)
