"""Plain data shared by tasks, verifiers and environments (no torch, no gym)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One task instance. ``metadata`` holds task-specific data (tests, entry point, reference solution)."""

    id: str
    prompt: str
    answer: str | None = None
    """Reference final answer (math) or None."""
    solution: str | None = None
    """Reference worked solution / reference program, where one exists."""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifierResult:
    """A verifier's verdict on one completion.

    ``status`` is verifier-specific (math: correct|incorrect|unparsable|timeout|error; code: passed|wrong_answer|
    compile_error|runtime_error|timeout|memory_limit|output_limit|sandbox_error). ``feedback`` is the short,
    deterministic text the self-teacher sees.
    """

    score: float
    status: str
    feedback: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.score >= 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["details"] = dict(self.details)
        d["passed"] = self.passed
        return d
