"""``verify_math`` and ``MathVerifier``: extract -> normalise -> parse -> guard -> exact fast path -> sympy worker."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sdpg_envs.types import Problem, VerifierResult
from sdpg_envs.verifiers.math.equivalence import FractionScalar, NeedSympy, equivalent
from sdpg_envs.verifiers.math.extract import extract_answer, find_boxes
from sdpg_envs.verifiers.math.guards import TooLarge, check_guards
from sdpg_envs.verifiers.math.lexer import ParseError
from sdpg_envs.verifiers.math.normalise import TIME, normalise
from sdpg_envs.verifiers.math.options import MathOptions
from sdpg_envs.verifiers.math.parse import parse_answer
from sdpg_envs.verifiers.math.pool import WorkerPool, default_pool

Node = tuple
_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")


@dataclass(frozen=True)
class MathVerdict:
    """Result of one comparison. ``reason`` is short, deterministic and never shows the gold (unless allowed)."""

    score: float
    status: str
    """correct | incorrect | unparsable | timeout | error"""
    reason: str
    gold_normalized: str | None = None
    prediction_normalized: str | None = None
    extracted: str | None = None


def _show(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _gold_answer(gold: str, options: MathOptions) -> str:
    """The reference may itself be a worked solution: take its last box (or '#### x'), else use it as is."""
    if find_boxes(gold) or "####" in gold or len(gold) > 300:
        extracted = extract_answer(gold, options).answer
        if extracted:
            return extracted
    return gold


def _number_node(text: str) -> Node:
    kind = "dec" if "." in text else "int"
    return ("neg", (kind, text[1:])) if text.startswith("-") else (kind, text)


def _readings(text: str, other: str, options: MathOptions) -> list[Node]:
    """Parse ``text``; comma numbers may also read as thousands (``12,345``) or a decimal comma (``2,5``).

    ``decimal_comma="auto"`` offers the decimal reading only against a plain decimal on the other side.
    """
    plain = text.replace("{,}", ",")
    comma = _DECIMAL_COMMA.fullmatch(plain) and not _THOUSANDS.fullmatch(plain)
    if comma and options.decimal_comma is True:
        return [_number_node(plain.replace(",", "."))]
    readings = [parse_answer(text, options)]
    if comma and options.decimal_comma == "auto" and re.fullmatch(r"-?\d*\.\d+", other):
        readings.insert(0, _number_node(plain.replace(",", ".")))
    if options.thousands_separators and _THOUSANDS.fullmatch(plain):
        readings.insert(0, _number_node(plain.replace(",", "")))
    return readings


class _Comparison:
    """One gold/prediction comparison; each method returns a verdict or None to go on."""

    def __init__(self, gold: str, prediction: str, options: MathOptions, pool: WorkerPool | None,
                 deadline: float | None = None) -> None:
        self.options, self.pool = options, pool
        self.deadline = deadline if deadline is not None else time.monotonic() + options.timeout_s
        self.gold, self.prediction = gold, prediction
        self.extracted: str | None = None
        self.ng: str | None = None
        self.np: str | None = None

    def verdict(self, status: str, reason: str) -> MathVerdict:
        score = 1.0 if status == "correct" else 0.0
        return MathVerdict(score, status, reason, self.ng, self.np, self.extracted)

    def _not_equal(self) -> MathVerdict:
        tail = f" {_show(self.ng or '')}" if self.options.reveal_gold_in_reason else ""
        return self.verdict("incorrect", f"final answer {_show(self.np or '')} is not equal to the reference{tail}")

    def _equal(self) -> MathVerdict:
        return self.verdict("correct", f"final answer {_show(self.np or '')} is equal to the reference")

    def run(self) -> MathVerdict:
        opts = self.options
        if not isinstance(self.gold, str) or not self.gold.strip():
            return self.verdict("error", "the reference answer is missing")
        if not isinstance(self.prediction, str):
            return self.verdict("unparsable", "no final answer found (the response is not text)")
        found = extract_answer(self.prediction, opts)
        self.extracted = found.answer
        self.ng = normalise(_gold_answer(self.gold[-opts.max_input_chars :], opts), opts)
        if found.answer is None:
            return self.verdict("unparsable", "no final answer found")
        if len(found.answer) > opts.max_answer_chars:
            return self.verdict("unparsable", f"final answer is too long ({len(found.answer)} characters)")
        self.np = normalise(found.answer, opts)
        if found.hedged and opts.reject_hedged:
            return self.verdict("incorrect", f"several different final answers given ({_show(self.np)})")
        verdict = self._compare()
        if found.others and opts.reject_hedged:
            if verdict.status == "correct":
                return self._check_others(found.others, verdict)
            if verdict.status == "incorrect":
                return self._hedge(found.others[0])
        return verdict

    def _compare(self) -> MathVerdict:
        if self.np == self.ng:
            return self._equal()
        if TIME.fullmatch(self.ng or "") or TIME.fullmatch(self.np or ""):
            return self._not_equal()  # times of day compare as normalised text only
        return self._compare_parsed()

    def _check_others(self, others: tuple[str, ...], verdict: MathVerdict) -> MathVerdict:
        """A correct final answer next to a different stated answer is a hedge: both must be correct."""
        for other in others:
            if normalise(other, self.options) == self.np:
                continue
            if _Comparison(self.gold, other, self.options, self.pool, self.deadline).run().status != "correct":
                return self._hedge(other)
        return verdict

    def _hedge(self, other: str) -> MathVerdict:
        return self.verdict("incorrect", f"several different final answers given ({_show(self.np or '')}, "
                            f"{_show(other, 30)})")

    def _compare_parsed(self) -> MathVerdict:
        opts = self.options
        try:
            golds = _readings(self.ng, self.np or "", opts)
        except ParseError:
            golds = None
        try:
            preds = _readings(self.np, self.ng or "", opts)
        except ParseError as exc:
            if golds is None:
                return self._text_fallback()
            return self.verdict("unparsable", f"could not parse the final answer {_show(self.np)}: {exc}")
        if golds is None:
            return self._text_fallback()
        try:
            for node in preds:
                check_guards(node, opts)
        except TooLarge as exc:
            return self.verdict("unparsable", f"final answer {_show(self.np)} is too large to compare: {exc}")
        try:
            for node in golds:
                check_guards(node, opts)
        except TooLarge as exc:
            return self.verdict("error", f"the reference answer is too large to compare: {exc}")
        return self._decide(golds, preds)

    def _text_fallback(self) -> MathVerdict:
        key = lambda s: re.sub(r"[^0-9a-z]", "", s if self.options.text_case_sensitive else s.lower())  # noqa: E731
        return self._equal() if key(self.ng or "") == key(self.np or "") else self._not_equal()

    def _decide(self, golds: list[Node], preds: list[Node]) -> MathVerdict:
        fast = FractionScalar(self.options)
        pending: list[tuple[Node, Node]] = []
        for g in golds:
            for p in preds:
                try:
                    if equivalent(g, p, self.options, fast):
                        return self._equal()
                except NeedSympy:
                    pending.append((g, p))
        if not pending:
            return self._not_equal()
        pool = self.pool or default_pool()
        errors = []
        for g, p in pending:  # one budget for all readings (and the other stated answers) together
            left = self.deadline - time.monotonic()
            kind, value = pool.call("compare", (g, p, self.options), left) if left > 0 else ("timeout", None)
            if kind == "ok" and value:
                return self._equal()
            if kind == "timeout":
                limit = self.options.timeout_s
                return self.verdict("timeout", f"comparing the final answer timed out after {limit:g} s")
            if kind == "error":
                errors.append(value)
        if errors and len(errors) == len(pending):
            return self.verdict("unparsable", f"could not compare the final answer {_show(self.np or '')}: "
                                f"{_show(str(errors[0]), 80)}")
        return self._not_equal()


def verify_math(
    gold: str, prediction: str, options: MathOptions | None = None, *, pool: WorkerPool | None = None
) -> MathVerdict:
    """Compare a prediction (bare answer or full response) with the reference answer ``gold``.

    Never raises and never hangs: any failure becomes a verdict with status ``error``/``timeout``/``unparsable``.

    >>> verify_math("\\\\frac{1}{2}", "The answer is \\\\boxed{2/4}.").status
    'correct'
    >>> verify_math("50", "0.5").status
    'incorrect'
    """
    options = options or MathOptions()
    try:
        return _Comparison(gold, prediction, options, pool).run()
    except Exception as exc:  # noqa: BLE001 - a verifier must answer, not crash its caller
        return MathVerdict(0.0, "error", f"internal error: {type(exc).__name__}")


class MathVerifier:
    """The math :class:`~sdpg_envs.verifiers.Verifier`: gold is ``problem.answer``; ``batch`` runs in parallel."""

    def __init__(self, options: MathOptions | None = None, pool: WorkerPool | None = None) -> None:
        self.options = options or MathOptions()
        self.pool = pool

    def verify(self, gold: str, prediction: str) -> MathVerdict:
        return verify_math(gold, prediction, self.options, pool=self.pool)

    def __call__(self, problem: Problem, completion: str) -> VerifierResult:
        return to_result(self.verify(problem.answer, completion))

    def batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
        size = (self.pool or default_pool()).size
        with ThreadPoolExecutor(max_workers=size) as ex:
            return list(ex.map(self.__call__, problems, completions))


def to_result(v: MathVerdict) -> VerifierResult:
    """MathVerdict -> the generic VerifierResult (feedback = reason)."""
    details = {"gold_normalized": v.gold_normalized, "prediction_normalized": v.prediction_normalized,
               "extracted": v.extracted, "reason": v.reason}
    return VerifierResult(score=v.score, status=v.status, feedback=v.reason, details=details)
