"""Honour reward-shaping wrappers where completions are verified in batches (the trainer, ``as_reward_func``).

Batch verification runs on ``env.unwrapped`` (one ``verify_batch`` call for many completions), which would skip
every wrapper around the env (``FormatPenalty``, ``LengthPenalty``, ``gymnasium.wrappers.TransformReward``, ...).
:class:`RewardReplay` replays each verified completion through the full wrapper chain instead: the base env's
``step`` reuses the verdict already computed (it verifies again only if an action wrapper changed the
completion), and every wrapper applies its own reward and info changes, so the reward is exactly what
``env.step(completion)`` would return.

Wrappers that change the *observation* cannot be honoured (the trainer builds prompts from the problem with the
chat template), so they are refused with an error that names them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

from sdpg_envs.types import Problem, VerifierResult

BOOKKEEPING_WRAPPERS: tuple[type, ...] = (OrderEnforcing, PassiveEnvChecker, TimeLimit)
"""Wrappers ``gym.make`` adds that never change a reward: a chain of only these needs no replay."""
SCORE_KEY = "verifier_score"
"""``VerifierResult.details`` key holding the raw verifier score when shaping changed ``score``."""


def wrapper_chain(env: Any) -> list[gym.Wrapper]:
    """The wrappers around ``env``, outermost first (empty for a bare env)."""
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def shaping_wrappers(env: Any) -> list[gym.Wrapper]:
    """The wrappers of ``env`` that may change rewards (all but :data:`BOOKKEEPING_WRAPPERS`).

    Raises:
        TypeError: a wrapper changes observations, which batch training cannot apply (named in the message).
    """
    chain = wrapper_chain(env)
    obs = [type(w).__name__ for w in chain if isinstance(w, gym.ObservationWrapper)]
    if obs:
        raise TypeError(f"observation wrappers are not applied when training or scoring in batches (prompts are "
                        f"built from the problem): {', '.join(obs)}; remove them, or put the change in the env's "
                        "prompt_template")
    return [w for w in chain if not isinstance(w, BOOKKEEPING_WRAPPERS)]


class RewardReplay:
    """Rewards of already-verified completions as ``env.step`` would return them through ``env``'s wrappers."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.base = env.unwrapped
        self.wrappers = shaping_wrappers(env)
        self._lock = threading.Lock()
        self._reset_done = False

    @property
    def active(self) -> bool:
        """Whether any wrapper may change rewards (otherwise the verdicts are used as they are)."""
        return bool(self.wrappers)

    def reset(self, seed: int) -> Problem:
        """``reset(seed=...)`` through the wrappers (so order-enforcing ones allow ``step``); the drawn problem."""
        with self._lock:
            self.env.reset(seed=int(seed))
            self._reset_done = True
            return self.base.problem

    def shape(self, problems: Sequence[Problem], completions: Sequence[str],
              results: Sequence[VerifierResult]) -> list[VerifierResult]:
        """``results`` with ``score`` replaced by the wrapped env's reward (raw score kept in
        ``details[SCORE_KEY]`` when it changed); the results themselves when no wrapper shapes rewards."""
        if not self.active:
            return list(results)
        out = []
        with self._lock:
            if not self._reset_done:
                self.env.reset(seed=0)
                self._reset_done = True
            saved = self.base.problem, self.base.index
            try:
                for problem, completion, result in zip(problems, completions, results, strict=True):
                    reward = self._step(problem, completion, result)
                    out.append(result if reward == result.score else
                               replace(result, score=reward, details={**result.details, SCORE_KEY: result.score}))
            finally:
                self.base.problem, self.base.index = saved
                self.base.__dict__.pop("verify", None)
        return out

    def _step(self, problem: Problem, completion: str, result: VerifierResult) -> float:
        real = type(self.base).verify.__get__(self.base)

        def verify(p: Problem, action: str) -> VerifierResult:  # the batch verdict, unless a wrapper changed it
            return result if p is problem and action == completion else real(p, action)

        self.base.problem, self.base.index = problem, None
        self.base.verify = verify  # instance attribute: ReasoningEnv.step calls self.verify
        return float(self.env.step(completion)[1])


def raw_result(result: VerifierResult) -> VerifierResult:
    """The verifier's own verdict behind a shaped result (for privileged context and pass/fail)."""
    if SCORE_KEY not in result.details:
        return result
    details = {k: v for k, v in result.details.items() if k != SCORE_KEY}
    return replace(result, score=result.details[SCORE_KEY], details=details)
