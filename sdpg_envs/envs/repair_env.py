"""Iterative-repair code environments: ``sdpg/HumanEvalRepair-v0``, ``sdpg/MBPPRepair-v0``,
``sdpg/PyFuncRepair-v0`` (and ``sdpg/CFuncRepair-v0`` in :mod:`sdpg_envs.envs.cfunc_env`).

Each is a :class:`~sdpg_envs.multiturn.MultiTurnEnv` over the single-step code env of the same task: a failed
attempt's verifier feedback (compiler error with the offending line, failing tests with expected vs actual,
the runtime trace with only the candidate's frames) comes back as the next observation, up to
``max_attempts`` attempts. Every other keyword argument goes to the single-step env's factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdpg_envs.envs.code_env import ANSWER_INSTRUCTION, humaneval_env, mbpp_env, pyfunc_env
from sdpg_envs.multiturn import FeedbackTemplate, MultiTurnEnv

FIX = "Fix the program."


def repair_env(make: Callable[..., Any], *, max_attempts: int = 3, discount: float = 1.0, observation: str = "text",
               feedback_template: str | FeedbackTemplate | None = None, feedback_chars: int = 1000,
               instruction: str | None = None, answer_instruction: str = ANSWER_INSTRUCTION,
               **kwargs: Any) -> MultiTurnEnv:
    """``MultiTurnEnv(make(**kwargs), ...)`` with code-repair defaults: the feedback template follows the prompt
    template (``compact`` prompts get one-line ``compact`` feedback) and the instruction asks for the fixed
    program in the prompt's format."""
    inner = make(**kwargs)
    compact = inner.template.name == "compact"
    if feedback_template is None:
        feedback_template = "compact" if compact else "default"
    if instruction is None:
        instruction = FIX if inner.template.name != "default" else f"{FIX} {answer_instruction}"
    return MultiTurnEnv(inner, max_attempts=max_attempts, discount=discount, observation=observation,
                        feedback_template=feedback_template, feedback_chars=feedback_chars, instruction=instruction)


def humaneval_repair_env(**kwargs: Any) -> MultiTurnEnv:
    """``sdpg/HumanEvalRepair-v0``: HumanEval with up to ``max_attempts`` (default 3) attempts."""
    return repair_env(humaneval_env, **kwargs)


def mbpp_repair_env(**kwargs: Any) -> MultiTurnEnv:
    """``sdpg/MBPPRepair-v0``: MBPP with up to ``max_attempts`` (default 3) attempts."""
    return repair_env(mbpp_env, **kwargs)


def pyfunc_repair_env(**kwargs: Any) -> MultiTurnEnv:
    """``sdpg/PyFuncRepair-v0``: procedural PyFunc with up to ``max_attempts`` (default 3) attempts."""
    return repair_env(pyfunc_env, **kwargs)
