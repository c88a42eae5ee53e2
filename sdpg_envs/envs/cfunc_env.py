"""C environments: ``sdpg/CFunc-v0`` (write a C function; stdin/stdout tests through gcc in the sandbox) and
``sdpg/CFuncRepair-v0`` (the same, multi-turn: gcc's parsed diagnostics or the failing call come back as the
next observation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandboxes import Sandbox
from sdpg_envs.base import PromptTemplate
from sdpg_envs.envs.code_env import CodeEnv
from sdpg_envs.envs.repair_env import repair_env
from sdpg_envs.multiturn import MultiTurnEnv
from sdpg_envs.tasks.cfunc import CFuncConfig, cfunc_eval_source, cfunc_source
from sdpg_envs.tasks.sources import UNBOUNDED, TaskSource
from sdpg_envs.types import Problem
from sdpg_envs.verifiers import Verifier
from sdpg_envs.verifiers.cfunc import CFuncVerifier

C_INSTRUCTION = ("Write only the function (the standard headers are included; no main). Answer with the C code "
                 "in a single ```c code block.")


def _c_default(problem: Problem) -> str:
    return f"{problem.prompt}\n\n{C_INSTRUCTION}"


def _c_plain(problem: Problem) -> str:
    return problem.prompt


def _c_compact(problem: Problem) -> str:
    return str(problem.metadata.get("compact", problem.prompt + "\n"))


C_PROMPTS: dict[str, PromptTemplate] = {
    "default": PromptTemplate("default", _c_default, "```c\n{answer}```"),
    "plain": PromptTemplate("plain", _c_plain, "```c\n{answer}```"),
    "compact": PromptTemplate("compact", _c_compact, "{answer}"),
}
"""``default``: the task + "only the function ... in a ```c block"; ``plain``: the task alone; ``compact``:
``C int f(int x): returns x plus 3; f(2) == 5`` with bare code as the completion (for tiny models)."""


class CFuncEnv(CodeEnv):
    """A :class:`CodeEnv` over CFunc problems, verified by :class:`CFuncVerifier` (gcc in the sandbox)."""

    prompt_templates = C_PROMPTS

    def __init__(self, source: TaskSource, verifier: Verifier | None = None, *, sandbox: Sandbox | str = "auto",
                 code_options: Mapping[str, Any] | None = None, **kwargs: Any):
        if verifier is None:
            verifier = CFuncVerifier(sandbox, **dict(code_options or {}))
        super().__init__(source, verifier, **kwargs)


def cfunc_env(*, level: int = 1, families: tuple[str, ...] | list[str] | None = None, num_examples: int = 2,
              num_tests: int = 5, value_range: int = 9, seed: int = 0, split: str = "train", size: int = UNBOUNDED,
              **kwargs: Any) -> CFuncEnv:
    """``sdpg/CFunc-v0``: procedural C functions (knobs as PyFunc); ``split="eval"`` is the fixed hand-written
    evaluation set (18 problems, :mod:`sdpg_envs.tasks.cfunc_eval`)."""
    if split == "eval":
        return CFuncEnv(cfunc_eval_source(num_examples), **kwargs)
    cfg = CFuncConfig(level=level, families=tuple(families) if families else None, num_examples=num_examples,
                      num_tests=num_tests, value_range=value_range)
    return CFuncEnv(cfunc_source(cfg, seed=seed, split=split, size=size), **kwargs)


def cfunc_repair_env(**kwargs: Any) -> MultiTurnEnv:
    """``sdpg/CFuncRepair-v0``: CFunc with up to ``max_attempts`` (default 3) attempts; gcc's trimmed
    diagnostics or the failing call come back as the next observation."""
    return repair_env(cfunc_env, answer_instruction="Answer with the complete C function in a single ```c code "
                      "block.", **kwargs)
