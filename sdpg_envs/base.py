"""``ReasoningEnv``: the single-step text environment every ``sdpg/*`` task uses.

One episode = one problem: ``reset()`` returns the prompt, ``step(completion)`` verifies it and ends the episode
(``terminated=True``) with reward = verifier score. The privileged context for the self-teacher is returned in
``step``'s info only, never in the observation and never from ``reset()``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from sdpg_envs.privileged import ContextTemplate, render_context, validate_template
from sdpg_envs.spaces import UnicodeText
from sdpg_envs.tasks.sources import TaskSource
from sdpg_envs.types import Problem, VerifierResult
from sdpg_envs.verifiers import Verifier

MAX_PROMPT_CHARS = 1_000_000


@dataclass(frozen=True)
class PromptTemplate:
    """How a problem becomes the observation text, and how a final answer is written under that prompt.

    Attributes:
        name: Template name (``prompt_template=<name>`` selects it).
        render: ``problem -> prompt text`` (the user turn).
        answer_format: ``str.format`` pattern with ``{answer}``: how a completion states its final answer
            (used by :meth:`ReasoningEnv.gold_completion`).
    """

    name: str
    render: Callable[[Problem], str]
    answer_format: str = "{answer}"


def _verbatim(problem: Problem) -> str:
    return problem.prompt


class ReasoningEnv(gym.Env[str, str]):
    """A single-step text task: observation = prompt, action = completion, reward = verifier score.

    Args:
        source: Where problems come from (``len(source)`` problems, ``source[i] -> Problem``).
        verifier: Scores a completion (``verifier(problem, completion) -> VerifierResult``, plus ``batch``).
        context: Privileged-context template (see :mod:`sdpg_envs.privileged`), e.g. ``"reference+feedback"``.
        prompt_template: A name from :attr:`prompt_templates`, a :class:`PromptTemplate`, or a callable
            ``problem -> str`` (its gold completion is then the bare answer).
        max_completion_chars: Completions are clipped to this many characters before verification.
        render_mode: ``None`` or ``"ansi"`` (:meth:`render` returns the prompt, the last completion and its
            verdict as text).

    ``reset(seed=s)`` picks problem ``np_random.integers(num_problems)`` (same seed, same problem);
    ``reset(options={"index": i})`` picks problem ``i``. ``step`` may be called again after termination: it
    re-scores the same problem.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}  # fps: declared for check_env only
    prompt_templates: Mapping[str, PromptTemplate] = {"default": PromptTemplate("default", _verbatim)}
    """Named prompt templates; subclasses override this mapping (``"default"`` must exist)."""

    def __init__(
        self,
        source: TaskSource,
        verifier: Verifier,
        *,
        context: ContextTemplate = "reference+feedback",
        prompt_template: str | PromptTemplate | Callable[[Problem], str] = "default",
        max_completion_chars: int = 100_000,
        render_mode: str | None = None,
    ):
        if len(source) < 1:
            raise ValueError(f"task source {getattr(source, 'name', source)!r} is empty")
        if not callable(verifier) or not hasattr(verifier, "batch"):
            raise TypeError("verifier must implement the Verifier protocol: __call__(problem, completion) and batch")
        if int(max_completion_chars) < 1:
            raise ValueError(f"max_completion_chars must be >= 1, got {max_completion_chars}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            modes = self.metadata["render_modes"]
            raise ValueError(f"render_mode must be None or one of {modes}, got {render_mode!r}")
        self.render_mode = render_mode
        self.source, self.verifier = source, verifier
        self.context = validate_template(context)
        self.template = self._resolve_template(prompt_template)
        self.max_completion_chars = int(max_completion_chars)
        self.observation_space = UnicodeText(MAX_PROMPT_CHARS)
        self.action_space = UnicodeText(self.max_completion_chars)
        self.problem: Problem | None = None
        self.index: int | None = None
        self._last: tuple[str, VerifierResult] | None = None  # the last step's completion and verdict (render)

    # ----- problems and text -------------------------------------------------------------------------------
    def _resolve_template(self, template: str | PromptTemplate | Callable[[Problem], str]) -> PromptTemplate:
        if isinstance(template, PromptTemplate):
            return template
        if callable(template):
            return PromptTemplate(getattr(template, "__name__", "custom"), template)
        if template not in self.prompt_templates:
            known = ", ".join(sorted(self.prompt_templates))
            raise ValueError(f"unknown prompt_template {template!r} for {type(self).__name__}; choose from {known}")
        return self.prompt_templates[template]

    @property
    def num_problems(self) -> int:
        """Number of addressable problems (procedural sources are effectively unbounded)."""
        return len(self.source)

    def problem_at(self, index: int) -> Problem:
        """Problem ``index`` of the source (``IndexError`` with the valid range when out of range)."""
        return self.source[index]

    def prompt_for(self, problem: Problem) -> str:
        """The observation text (user turn) for ``problem``; never contains privileged context."""
        return str(self.template.render(problem))

    def gold_completion(self, problem: Problem) -> str:
        """A completion stating the reference answer the way the prompt asks; it scores 1.0 through ``step``."""
        if problem.answer is None:
            raise ValueError(f"problem {problem.id!r} has no reference answer; override gold_completion")
        return self.template.answer_format.format(answer=problem.answer)

    def build_context(self, problem: Problem, result: VerifierResult | None) -> str:
        """Privileged context for ``problem`` after an attempt scored ``result`` (None: before any attempt)."""
        return render_context(self.context, problem, result)

    # ----- dataset columns (TRL interop, see sdpg_envs.adapters) --------------------------------------------
    def dataset_columns(self, problem: Problem) -> dict[str, Any]:
        """Extra dataset columns a reward function needs to rebuild ``problem`` (beyond ``answer``).

        Subclasses whose verifier needs more than the answer (e.g. unit tests) add them here and read them back
        in :meth:`problem_from_columns`.
        """
        return {}

    def problem_from_columns(self, columns: Mapping[str, Any]) -> Problem | None:
        """Rebuild a problem from one dataset row's columns; None when the row lacks what verification needs."""
        answer = columns.get("answer")
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            return None
        prompt = columns.get("prompt")
        return Problem(str(columns.get("problem_id") or "row"), prompt if isinstance(prompt, str) else "",
                       answer=str(answer), solution=columns.get("solution"))

    # ----- verification ------------------------------------------------------------------------------------
    def _clip(self, completion: str) -> str:
        if not isinstance(completion, str):
            raise TypeError(f"a completion must be a str, got {type(completion).__name__}")
        return completion[: self.max_completion_chars]

    def verify(self, problem: Problem, completion: str) -> VerifierResult:
        """Score one completion; a verifier exception becomes an ``error`` result instead of propagating."""
        completion = self._clip(completion)
        try:
            return self.verifier(problem, completion)
        except Exception as exc:  # noqa: BLE001 - the env must survive any completion
            return VerifierResult(0.0, "error", f"verifier error: {type(exc).__name__}: {exc}"[:500])

    def verify_batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]:
        """Score many completions (in parallel where the verifier can), in input order."""
        if len(problems) != len(completions):
            raise ValueError(f"got {len(problems)} problems but {len(completions)} completions")
        clipped = [self._clip(c) for c in completions]
        try:
            results = list(self.verifier.batch(list(problems), clipped))
        except Exception:  # noqa: BLE001 - fall back to one-by-one so one bad item cannot sink the batch
            return [self.verify(p, c) for p, c in zip(problems, clipped)]
        if len(results) != len(clipped):
            raise RuntimeError(f"verifier returned {len(results)} results for {len(clipped)} completions")
        return results

    # ----- gymnasium API -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Pick a problem (random from ``np_random``, or ``options["index"]``) and return its prompt."""
        super().reset(seed=seed)
        options = options or {}
        if options.get("index") is not None:
            index = options["index"]
            if isinstance(index, bool) or not isinstance(index, int | np.integer):
                raise TypeError(f"options['index'] must be an int, got {type(index).__name__}")
            index = int(index)
        else:
            index = int(self.np_random.integers(self.num_problems))
        problem = self.problem_at(index)
        self.problem, self.index, self._last = problem, index, None
        return self.prompt_for(problem), {"problem_id": problem.id, "index": index}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Verify ``action`` against the current problem; the episode always terminates."""
        if self.problem is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        result = self.verify(self.problem, action)
        self._last = (action, result)
        info = {
            "verifier": copy.deepcopy(result.to_dict()),
            "privileged_context": self.build_context(self.problem, result),
            "answer": self.problem.answer,
            "problem_id": self.problem.id,
            "index": self.index,
        }
        return "", float(result.score), True, False, info

    def render(self) -> str | None:
        """``render_mode="ansi"``: the prompt, the last completion and its verdict (score, status, feedback) as
        text; ``None`` without a render mode (Gymnasium's convention)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; make the env with render_mode='ansi'")
            return None
        if self.problem is None:
            return "(no problem yet: call reset())\n"
        lines = [f"Problem {self.problem.id} (index {self.index})", "Prompt:", self.prompt_for(self.problem)]
        if self._last is None:
            lines.append("Completion: (none yet)")
        else:
            completion, result = self._last
            lines += ["Completion:", completion,
                      f"Verdict: {result.status} (score {result.score:g}, {'passed' if result.passed else 'failed'})"]
            if result.feedback:
                lines.append(f"Feedback: {result.feedback}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        name = getattr(self.source, "name", type(self.source).__name__)
        return f"<{type(self).__name__} source={name!r} problems={self.num_problems} context={self.context!r}>"
