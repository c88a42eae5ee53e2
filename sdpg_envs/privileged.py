"""Per-episode privileged context: what the self-teacher sees and the student never does.

A context *template* is a name made of parts joined by ``+`` (``"reference+feedback"``), or ``"none"``. Each
part is a function ``(problem, result) -> str`` returning one section (or ``""`` when it has nothing to say);
non-empty sections are joined by a blank line. Built-in parts:

- ``answer``: ``Reference answer: 42``.
- ``solution``: the reference worked solution or program.
- ``reference``: the solution when one exists, and the answer (both when both exist).
- ``feedback``: the verifier's verdict on *this* attempt (empty before any attempt, i.e. ``result is None``).

Add a part with :func:`register_context_part`. The environment guarantees the context never appears in the
observation or in ``reset()``'s info (``check_reasoning_env`` tests this for every registered id).

Example:
    >>> from sdpg_envs.types import Problem, VerifierResult
    >>> p = Problem("p0", "What is 6*7?", answer="42")
    >>> print(render_context("reference+feedback", p, VerifierResult(0.0, "incorrect", "12 is not 42")))
    Reference answer: 42
    <BLANKLINE>
    Feedback on the attempt (incorrect): 12 is not 42
    >>> render_context("none", p, None)
    ''
"""

from __future__ import annotations

from collections.abc import Callable

from sdpg_envs.types import Problem, VerifierResult

ContextPart = Callable[[Problem, "VerifierResult | None"], str]
ContextTemplate = str | Callable[[Problem, "VerifierResult | None"], str]
MAX_FEEDBACK_CHARS = 2000
"""Feedback text is clipped to this many characters (the verifier should already keep it short)."""


def answer_part(problem: Problem, result: VerifierResult | None) -> str:
    """``Reference answer: <answer>`` (empty when the problem has no answer)."""
    return f"Reference answer: {problem.answer}" if problem.answer not in (None, "") else ""


def solution_part(problem: Problem, result: VerifierResult | None) -> str:
    """``Reference solution:`` followed by the solution text (empty when there is none)."""
    return f"Reference solution:\n{problem.solution.strip()}" if problem.solution and problem.solution.strip() else ""


def reference_part(problem: Problem, result: VerifierResult | None) -> str:
    """The reference solution and the reference answer, whichever exist."""
    return "\n\n".join(s for s in (solution_part(problem, result), answer_part(problem, result)) if s)


def feedback_part(problem: Problem, result: VerifierResult | None) -> str:
    """The verifier's status and feedback for this attempt; empty when there was no attempt yet."""
    if result is None:
        return ""
    text = (result.feedback or "").strip()
    if len(text) > MAX_FEEDBACK_CHARS:
        text = text[: MAX_FEEDBACK_CHARS - 15] + "… [truncated]"
    verdict = "correct" if result.passed else result.status
    return f"Feedback on the attempt ({verdict}): {text}" if text else f"Feedback on the attempt: {verdict}"


CONTEXT_PARTS: dict[str, ContextPart] = {
    "answer": answer_part,
    "solution": solution_part,
    "reference": reference_part,
    "feedback": feedback_part,
}


def register_context_part(name: str, fn: ContextPart, *, overwrite: bool = False) -> None:
    """Make ``name`` usable in context templates (``"reference+<name>"``)."""
    if not name.isidentifier():
        raise ValueError(f"context part names must be identifiers, got {name!r}")
    if name in CONTEXT_PARTS and not overwrite:
        raise ValueError(f"context part {name!r} already exists (pass overwrite=True to replace it)")
    CONTEXT_PARTS[name] = fn


def validate_template(template: ContextTemplate) -> ContextTemplate:
    """Return ``template`` unchanged if every part is known; raise a ValueError naming the bad part otherwise."""
    if callable(template):
        return template
    if not isinstance(template, str):
        raise TypeError(f"context template must be a str or callable, got {type(template).__name__}")
    if template == "none":
        return template
    unknown = [part for part in template.split("+") if part not in CONTEXT_PARTS]
    if unknown or not template:
        known = ", ".join(["none", *CONTEXT_PARTS])
        raise ValueError(f"unknown context part(s) {unknown or [template]} in {template!r}; known parts: {known}")
    return template


def render_context(template: ContextTemplate, problem: Problem, result: VerifierResult | None) -> str:
    """Build the privileged context for one attempt (``result`` is None before any attempt)."""
    validate_template(template)
    if callable(template):
        return str(template(problem, result))
    if template == "none":
        return ""
    sections = (CONTEXT_PARTS[part](problem, result) for part in template.split("+"))
    return "\n\n".join(s for s in sections if s)
