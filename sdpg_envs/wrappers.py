"""Reward-shaping and bookkeeping wrappers for reasoning environments (``gym.Wrapper`` subclasses).

Each wrapper keeps the verifier's verdict in ``info["verifier"]`` untouched and records what it changed, so
evaluation can always read the raw score.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym

DEFAULT_BAD_FORMAT_STATUSES = ("unparsable", "compile_error")


class FormatPenalty(gym.Wrapper):
    """Subtract ``penalty`` when a completion ignores the requested format.

    A completion is badly formatted when ``pattern`` is given and does not match it (``re.search``), or when the
    verifier's status is one of ``statuses`` (default: ``unparsable`` for math, ``compile_error`` for code).
    Adds ``info["format_ok"]`` and ``info["format_penalty"]``.

    Example:
        >>> import sdpg_envs
        >>> env = FormatPenalty(gym.make("sdpg/Arith-v0"), penalty=0.1, pattern=r"\\\\boxed\\{")
        >>> _ = env.reset(seed=0)
        >>> answer = env.unwrapped.problem.answer
        >>> env.step(answer)[1], env.step("\\\\boxed{" + answer + "}")[1]  # right answer, but unboxed first
        (0.9, 1.0)
    """

    def __init__(self, env: gym.Env, penalty: float = 0.1, *, pattern: str | None = None,
                 statuses: Iterable[str] = DEFAULT_BAD_FORMAT_STATUSES):
        super().__init__(env)
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        self.penalty = float(penalty)
        self.pattern = re.compile(pattern) if pattern is not None else None
        self.statuses = frozenset(statuses)

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        status = info.get("verifier", {}).get("status")
        ok = status not in self.statuses and (self.pattern is None or bool(self.pattern.search(action)))
        info["format_ok"], info["format_penalty"] = ok, 0.0 if ok else self.penalty
        return obs, float(reward) - info["format_penalty"], terminated, truncated, info


class LengthPenalty(gym.Wrapper):
    """Overlong-completion shaping (DAPO's soft punishment).

    With ``L = length_fn(completion)``: no change up to ``max_length - buffer``; a linear penalty rising to
    ``penalty`` over the last ``buffer`` units; ``-penalty`` beyond ``max_length``. ``length_fn`` defaults to
    characters; pass e.g. ``lambda s: len(tok(s).input_ids)`` for tokens. Adds ``info["length_penalty"]``.
    """

    def __init__(self, env: gym.Env, max_length: int, *, buffer: int | None = None, penalty: float = 1.0,
                 length_fn: Callable[[str], int] = len):
        super().__init__(env)
        buffer = max_length // 4 if buffer is None else buffer
        if max_length < 1 or not 0 <= buffer <= max_length:
            raise ValueError(f"need max_length >= 1 and 0 <= buffer <= max_length, got {max_length}, {buffer}")
        self.max_length, self.buffer, self.penalty = int(max_length), int(buffer), float(penalty)
        self.length_fn = length_fn

    def penalty_for(self, length: int) -> float:
        """The penalty (>= 0) subtracted for a completion of ``length`` units."""
        start = self.max_length - self.buffer
        if length <= start:
            return 0.0
        if length > self.max_length or self.buffer == 0:
            return self.penalty
        return self.penalty * (length - start) / self.buffer

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["length_penalty"] = self.penalty_for(self.length_fn(action))
        return obs, float(reward) - info["length_penalty"], terminated, truncated, info


class RecordVerifierStats(gym.Wrapper):
    """Running verifier statistics over the last ``buffer_length`` episodes.

    After each step, ``info["verifier_stats"]`` holds ``episodes`` (total), ``mean_score``, ``pass_rate`` and
    ``status_counts`` over the window; :meth:`stats` returns the same dict.
    """

    def __init__(self, env: gym.Env, buffer_length: int = 100):
        super().__init__(env)
        if buffer_length < 1:
            raise ValueError(f"buffer_length must be >= 1, got {buffer_length}")
        self.scores: deque[float] = deque(maxlen=buffer_length)
        self.statuses: deque[str] = deque(maxlen=buffer_length)
        self.passed: deque[bool] = deque(maxlen=buffer_length)
        self.episodes = 0

    def stats(self) -> dict[str, Any]:
        """A fresh dict of the window's statistics (zeros before the first episode)."""
        n = len(self.scores)
        return {
            "episodes": self.episodes,
            "mean_score": sum(self.scores) / n if n else 0.0,
            "pass_rate": sum(self.passed) / n if n else 0.0,
            "status_counts": dict(Counter(self.statuses)),
        }

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        verdict = info.get("verifier", {})
        self.scores.append(float(verdict.get("score", reward)))
        self.statuses.append(str(verdict.get("status", "unknown")))
        self.passed.append(bool(verdict.get("passed", False)))
        self.episodes += 1
        info["verifier_stats"] = self.stats()
        return obs, reward, terminated, truncated, info
