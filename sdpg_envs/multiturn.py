"""``MultiTurnEnv``: any single-step :class:`~sdpg_envs.base.ReasoningEnv` as an episode of up to ``max_attempts``
attempts, where the verifier's feedback on a failed attempt is the next observation (iterative repair).

``reset()`` returns the task (the wrapped env's prompt). ``step(completion)`` verifies it: a pass, or the last
attempt, ends the episode (``terminated=True``); a failure with attempts left returns the feedback (compiler
error, failing test, runtime trace, clipped to ``feedback_chars``) as the next observation with
``terminated=False``. The reward is 0 on non-final steps and ``score * discount ** (attempt - 1)`` on the final
one, so an episode's return is its final score, discounted per extra attempt. ``info`` follows the single-step
contract (``verifier``, ``privileged_context`` for *this* attempt, ``answer``, ``problem_id``, ``index``) plus
``attempt``, ``max_attempts`` and ``turns`` (one ``{"attempt", "status", "score", "passed"}`` per attempt).

Observations are text (``observation="text"``: the string to append to the transcript after the model's
completion) or chat (``observation="chat"``: the new messages, ``[{"role": "user", "content": ...}]``; ``[]``
once the episode is over). :meth:`MultiTurnEnv.messages` and :meth:`MultiTurnEnv.transcript` give the whole
conversation so far.

Example:
    >>> import gymnasium as gym, sdpg_envs
    >>> env = MultiTurnEnv(gym.make("sdpg/Arith-v0", digits=1, operators="+"), max_attempts=2)
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step("\\\\boxed{-1}")
    >>> terminated, info["turns"][0]["status"], obs.startswith("\\n\\nAttempt 1 of 2 failed (incorrect)")
    (False, 'incorrect', True)
    >>> env.step(env.gold_completion(env.problem))[1:3]
    (1.0, True)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from sdpg_envs.base import MAX_PROMPT_CHARS, PromptTemplate, ReasoningEnv
from sdpg_envs.privileged import ContextTemplate, validate_template
from sdpg_envs.spaces import ChatMessages, UnicodeText
from sdpg_envs.types import Problem, VerifierResult

OBSERVATION_MODES = ("text", "chat")


@dataclass(frozen=True)
class FeedbackTurn:
    """What a feedback template sees: the failed attempt and its verdict.

    Attributes:
        problem: The episode's problem.
        result: The verifier's verdict on the attempt.
        attempt: 1-based number of the attempt that failed.
        max_attempts: The episode's attempt budget.
        feedback: The verifier's feedback, clipped to the env's ``feedback_chars``.
        instruction: What the model should do next (e.g. "Fix the program. Answer with ...").
    """

    problem: Problem
    result: VerifierResult
    attempt: int
    max_attempts: int
    feedback: str
    instruction: str


@dataclass(frozen=True)
class FeedbackTemplate:
    """How a failed attempt becomes the next observation.

    Attributes:
        name: Template name (``feedback_template=<name>`` selects it).
        render: ``FeedbackTurn -> message`` (the user turn's content, without surrounding blank lines).
        separator: Text-mode framing: the message is preceded by this (minus one newline when the completion
            already ends with one) and followed by it, so ``prompt + completion + observation + completion``
            reads as a transcript.
    """

    name: str
    render: Callable[[FeedbackTurn], str]
    separator: str = "\n\n"


def _default_feedback(turn: FeedbackTurn) -> str:
    head = f"Attempt {turn.attempt} of {turn.max_attempts} failed ({turn.result.status})."
    return "\n\n".join(part for part in (head + ("\n" + turn.feedback if turn.feedback else ""),
                                         turn.instruction) if part)


_ERROR_LINE = re.compile(r"^(?:\w+(?:Error|Exception)\b.*|.*\berror: .*)$")
_NOISE_LINE = re.compile(r"^(?:\d+ failing, \d+ passing checks\.|\d+ of \d+ tests passed\.|Call: .*)$")


def one_line(feedback: str, limit: int = 160) -> str:
    """The most telling line(s) of a feedback text, on one line: the first compiler/exception error line when
    there is one, else the first three informative lines joined by `` | ``; at most ``limit`` characters.

    Example:
        >>> one_line("2 failing, 3 passing checks.\\n\\nTest failed: f(1) == 2\\nCall: f(1)\\nExpected: 2\\nActual: 1")
        'Test failed: f(1) == 2 | Expected: 2 | Actual: 1'
    """
    lines = [" ".join(line.split()) for line in feedback.splitlines()]
    lines = [line for line in lines if line and not _NOISE_LINE.match(line)]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    text = errors[0] if errors else " | ".join(lines[:3])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compact_feedback(turn: FeedbackTurn) -> str:
    summary = one_line(turn.feedback)
    return f"# {turn.result.status}: {summary}" if summary else f"# {turn.result.status}"


FEEDBACK_TEMPLATES: dict[str, FeedbackTemplate] = {
    "default": FeedbackTemplate("default", _default_feedback, "\n\n"),
    "compact": FeedbackTemplate("compact", _compact_feedback, "\n"),
}
"""``default``: "Attempt 1 of 3 failed (compile_error)." + the feedback + the instruction, framed by blank
lines; ``compact``: one line ``# compile_error: SyntaxError: expected ':'`` (for tiny models)."""


def clip_feedback(text: str, limit: int) -> str:
    """Keep the head of ``text`` within ``limit`` characters (a marker shows the cut)."""
    text = (text or "").strip()
    marker = "\n... [truncated]"
    return text if len(text) <= limit else text[: max(0, limit - len(marker))].rstrip() + marker


@dataclass(frozen=True)
class Turn:
    """One attempt of the current episode: the (clipped) completion, its verdict and the observation after it."""

    completion: str
    result: VerifierResult
    observation: str | list[dict[str, str]]


class MultiTurnEnv(ReasoningEnv):
    """A :class:`ReasoningEnv` whose episodes last up to ``max_attempts`` attempts, with feedback in between.

    Args:
        env: The single-step env (a ``ReasoningEnv``, possibly wrapped as ``gym.make`` returns it).
        max_attempts: Attempts per episode (1: the single-step episode, with the same observations).
        discount: The final reward is ``score * discount ** (attempt - 1)``; in ``(0, 1]``.
        observation: ``"text"`` or ``"chat"`` (see the module docstring).
        feedback_template: A name from :data:`FEEDBACK_TEMPLATES` or a :class:`FeedbackTemplate`.
        feedback_chars: Budget for the verifier feedback quoted in an observation.
        instruction: What the observation asks for after the feedback (``default`` template).
        render_mode: ``None`` or ``"ansi"`` (:meth:`render`: the conversation so far and the last verdict);
            default: the wrapped env's.

    Subclass and override :meth:`feedback_message` to word the feedback differently; the privileged context
    is the wrapped env's (``build_context(problem, result)`` of the attempt).
    """

    def __init__(self, env: gym.Env, *, max_attempts: int = 3, discount: float = 1.0, observation: str = "text",
                 feedback_template: str | FeedbackTemplate = "default", feedback_chars: int = 1000,
                 instruction: str = "Try again.", render_mode: str | None = None):
        inner = getattr(env, "unwrapped", env)
        if not isinstance(inner, ReasoningEnv):
            raise TypeError(f"MultiTurnEnv wraps a ReasoningEnv, got {type(inner).__name__}")
        if isinstance(inner, MultiTurnEnv):
            raise TypeError("the env is already multi-turn; set max_attempts on it instead of nesting")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 100:
            raise ValueError(f"max_attempts must be an int in 1..100, got {max_attempts!r}")
        if not 0.0 < float(discount) <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        if observation not in OBSERVATION_MODES:
            raise ValueError(f"observation must be one of {', '.join(OBSERVATION_MODES)}, got {observation!r}")
        if int(feedback_chars) < 50:
            raise ValueError(f"feedback_chars must be >= 50, got {feedback_chars}")
        if isinstance(feedback_template, str):
            if feedback_template not in FEEDBACK_TEMPLATES:
                known = ", ".join(sorted(FEEDBACK_TEMPLATES))
                raise ValueError(f"unknown feedback_template {feedback_template!r}; choose from {known}")
            feedback_template = FEEDBACK_TEMPLATES[feedback_template]
        elif not isinstance(feedback_template, FeedbackTemplate):
            raise TypeError(f"feedback_template must be a name or a FeedbackTemplate, got {type(feedback_template)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        self.env, self.render_mode = inner, render_mode if render_mode is not None else inner.render_mode
        self.max_attempts, self.discount = max_attempts, float(discount)
        self.observation_mode, self.feedback_template = observation, feedback_template
        self.feedback_chars, self.instruction = int(feedback_chars), str(instruction)
        self.source, self.verifier, self.template = inner.source, inner.verifier, inner.template
        self.max_completion_chars = inner.max_completion_chars
        self.observation_space = (UnicodeText(MAX_PROMPT_CHARS) if observation == "text"
                                  else ChatMessages(MAX_PROMPT_CHARS))
        self.action_space = inner.action_space
        self.problem: Problem | None = None
        self.index: int | None = None
        self.turns: list[Turn] = []
        self._last: tuple[str, VerifierResult] | None = None

    # ----- the wrapped env's problems, text, verifier and context -------------------------------------------
    @property
    def context(self) -> ContextTemplate:  # type: ignore[override]
        """The wrapped env's privileged-context template (setting it sets the wrapped env's)."""
        return self.env.context

    @context.setter
    def context(self, value: ContextTemplate) -> None:
        self.env.context = validate_template(value)

    @property
    def prompt_templates(self) -> Mapping[str, PromptTemplate]:  # type: ignore[override]
        return self.env.prompt_templates

    @property
    def num_problems(self) -> int:
        return self.env.num_problems

    def problem_at(self, index: int) -> Problem:
        return self.env.problem_at(index)

    def prompt_for(self, problem: Problem) -> str:
        return self.env.prompt_for(problem)

    def gold_completion(self, problem: Problem) -> str:
        return self.env.gold_completion(problem)

    def build_context(self, problem: Problem, result: VerifierResult | None) -> str:
        return self.env.build_context(problem, result)

    def dataset_columns(self, problem: Problem) -> dict[str, Any]:
        return self.env.dataset_columns(problem)

    def problem_from_columns(self, columns: Mapping[str, Any]) -> Problem | None:
        return self.env.problem_from_columns(columns)

    def verify(self, problem: Problem, completion: str) -> VerifierResult:
        return self.env.verify(problem, completion)

    def verify_batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]:
        return self.env.verify_batch(problems, completions)

    def close(self) -> None:
        self.env.close()

    # ----- turns ---------------------------------------------------------------------------------------------
    @property
    def attempt(self) -> int:
        """Attempts made in the current episode."""
        return len(self.turns)

    @property
    def episode_over(self) -> bool:
        """True once the current episode passed or used its last attempt."""
        return bool(self.turns) and (self.turns[-1].result.passed or len(self.turns) >= self.max_attempts)

    def reward_for(self, score: float, attempt: int) -> float:
        """The final step's reward for ``score`` reached on attempt ``attempt`` (1-based)."""
        return float(score) * self.discount ** (attempt - 1)

    def feedback_message(self, problem: Problem, result: VerifierResult, attempt: int) -> str:
        """The message after failed attempt ``attempt`` (the chat observation's content)."""
        turn = FeedbackTurn(problem, result, attempt, self.max_attempts,
                            clip_feedback(result.feedback, self.feedback_chars), self.instruction)
        return str(self.feedback_template.render(turn)).strip()

    def outcome(self, problem: Problem, completion: str, result: VerifierResult, attempt: int
                ) -> tuple[str | list[dict[str, str]], float, bool]:
        """``(observation, reward, terminated)`` after attempt ``attempt`` (1-based) of ``problem`` scored ``result``
        (what :meth:`step` returns, without touching the episode state): trainers that verify many episodes in one
        batch use it to step each episode exactly as :meth:`step` would."""
        terminated = result.passed or attempt >= self.max_attempts
        message = "" if terminated else self.feedback_message(problem, result, attempt)
        if self.observation_mode == "chat":
            obs: str | list[dict[str, str]] = [{"role": "user", "content": message}] if message else []
        else:
            obs = self._text_observation(completion, message) if message else ""
        return obs, (self.reward_for(result.score, attempt) if terminated else 0.0), terminated

    def _text_observation(self, completion: str, message: str) -> str:
        sep = self.feedback_template.separator
        lead = sep[1:] if completion.endswith("\n") and sep.startswith("\n") else sep
        return lead + message + sep

    def messages(self) -> list[dict[str, str]]:
        """The conversation so far: the prompt, then each attempt and the feedback after it (chat format)."""
        if self.problem is None:
            return []
        out = [{"role": "user", "content": self.prompt_for(self.problem)}]
        for turn in self.turns:
            out.append({"role": "assistant", "content": turn.completion})
            out += copy.deepcopy(turn.observation) if isinstance(turn.observation, list) else (
                [{"role": "user", "content": turn.observation.strip()}] if turn.observation else [])
        return out

    def transcript(self) -> str:
        """The text-mode transcript so far: prompt + completion + observation + completion ..."""
        if self.problem is None:
            return ""
        parts = [self.prompt_for(self.problem)]
        for turn in self.turns:
            parts.append(turn.completion)
            if isinstance(turn.observation, list):
                message = "".join(m["content"] for m in turn.observation)
                parts.append(self._text_observation(turn.completion, message) if message else "")
            else:
                parts.append(turn.observation)
        return "".join(parts)

    # ----- gymnasium API -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[str | list[dict[str, str]], dict[str, Any]]:
        """Start an episode on a problem (as :meth:`ReasoningEnv.reset`); the observation is the task."""
        prompt, info = super().reset(seed=seed, options=options)
        self.turns = []
        return ([{"role": "user", "content": prompt}] if self.observation_mode == "chat" else prompt), info

    def step(self, action: str) -> tuple[str | list[dict[str, str]], float, bool, bool, dict[str, Any]]:
        """Verify attempt ``action``; the feedback is the next observation unless the episode ends."""
        if self.problem is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.episode_over:
            raise gym.error.ResetNeeded("the episode is over (passed or out of attempts); call reset()")
        completion = self._clip(action)
        result = self.verify(self.problem, completion)
        attempt = len(self.turns) + 1
        obs, reward, terminated = self.outcome(self.problem, completion, result, attempt)
        self.turns.append(Turn(completion, result, copy.deepcopy(obs)))
        self._last = (completion, result)
        info = {
            "verifier": copy.deepcopy(result.to_dict()),
            "privileged_context": self.build_context(self.problem, result),
            "answer": self.problem.answer,
            "problem_id": self.problem.id,
            "index": self.index,
            "attempt": attempt,
            "max_attempts": self.max_attempts,
            "turns": [{"attempt": i + 1, "status": t.result.status, "score": float(t.result.score),
                       "passed": t.result.passed} for i, t in enumerate(self.turns)],
        }
        return obs, reward, terminated, False, info

    def render(self) -> str | None:
        """``render_mode="ansi"``: every attempt so far with its verdict and the feedback shown after it."""
        if self.render_mode is None or self.problem is None or not self.turns:
            return super().render()
        lines = [f"Problem {self.problem.id} (index {self.index}), attempt {self.attempt} of {self.max_attempts}",
                 "Prompt:", self.prompt_for(self.problem)]
        for i, turn in enumerate(self.turns, 1):
            r = turn.result
            lines += [f"Attempt {i}:", turn.completion,
                      f"Verdict: {r.status} (score {r.score:g}, {'passed' if r.passed else 'failed'})"]
            shown = turn.observation if isinstance(turn.observation, str) else "\n".join(
                m["content"] for m in turn.observation)
            if shown.strip():
                lines += ["Feedback shown:", shown.strip()]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"<MultiTurnEnv max_attempts={self.max_attempts} env={self.env!r}>"
