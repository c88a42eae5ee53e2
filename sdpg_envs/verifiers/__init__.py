"""Verifiers turn (problem, completion) into a :class:`~sdpg_envs.types.VerifierResult`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sdpg_envs.types import Problem, VerifierResult


@runtime_checkable
class Verifier(Protocol):
    """Scores one completion; ``batch`` may verify many in parallel (same order as the input)."""

    def __call__(self, problem: Problem, completion: str) -> VerifierResult: ...

    def batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]: ...
