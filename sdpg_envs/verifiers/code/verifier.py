"""``CodeVerifier``: completion -> program -> sandboxed compile + tests -> :class:`VerifierResult`.

What a problem carries (``Problem.metadata``): ``tests`` (Python test code, or for C/C++ a list of
``(stdin, expected stdout)`` pairs), and optionally ``language`` (``python``/``c``/``cpp``), ``entry_point``
(call ``check(<entry_point>)`` when the tests define ``check``), ``preamble`` (code placed before the
program, e.g. HumanEval's prompt) and ``timeout_s``.

Example:
    >>> from sdpg_envs.types import Problem
    >>> p = Problem("add", "Write add(a, b).", metadata={"tests": "assert add(1, 2) == 3"})
    >>> with CodeVerifier() as verify:                                       # doctest: +SKIP
    ...     verify(p, "```python\\ndef add(a, b):\\n    return a + b\\n```").status
    'passed'
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandboxes import ExecutionResult, Limits, Program, Sandbox, make_sandbox
from sdpg_envs.types import Problem, VerifierResult
from sdpg_envs.verifiers.code.classify import classify, no_program_details
from sdpg_envs.verifiers.code.extract import EXTRACT_MODES, extract_code
from sdpg_envs.verifiers.code.feedback import DEFAULT_MAX_CHARS, feedback_text
from sdpg_envs.verifiers.code.programs import TestSpec, build_program, parse_report


@dataclass(frozen=True)
class _Job:
    spec: TestSpec
    program: Program | None = None
    nonce: str = ""
    early: VerifierResult | None = None


class CodeVerifier:
    """Scores code completions by compiling and testing them in a sandbox.

    Args:
        sandbox: A :class:`~sandboxes.Sandbox`, or a kind for :func:`sandboxes.make_sandbox` (created on first
            use and closed by :meth:`close`).
        extract: How to find the program in a completion: ``"auto"``, ``"fenced"`` or ``"raw"``.
        timeout_s: Default CPU-time budget (a problem's ``metadata["timeout_s"]`` wins).
        wall_factor: Wall-clock deadline = ``wall_factor * timeout_s + 1`` (so a loaded machine does not
            cause false timeouts, while a sleeping program still ends).
        compile_timeout_s: Budget for gcc/g++.
        memory_mb: Memory cap per run.
        max_output_bytes: Output cap per stream.
        feedback_chars: Maximum length of the feedback text.
        max_workers: Parallel runs in :meth:`batch` (None: the sandbox's default).
    """

    def __init__(self, sandbox: Sandbox | str = "auto", *, extract: str = "auto", timeout_s: float = 10.0,
                 wall_factor: float = 3.0, compile_timeout_s: float = 30.0, memory_mb: int = 1024,
                 max_output_bytes: int = 1_000_000, feedback_chars: int = DEFAULT_MAX_CHARS,
                 max_workers: int | None = None):
        if extract not in EXTRACT_MODES:
            raise ValueError(f"unknown extract mode {extract!r}; choose from {', '.join(EXTRACT_MODES)}")
        if not 0 < timeout_s <= 3600 or wall_factor < 1 or feedback_chars < 100:
            raise ValueError("need 0 < timeout_s <= 3600, wall_factor >= 1 and feedback_chars >= 100")
        self.extract, self.timeout_s, self.wall_factor = extract, float(timeout_s), float(wall_factor)
        self.compile_timeout_s, self.feedback_chars, self.max_workers = compile_timeout_s, feedback_chars, max_workers
        self.limits = Limits(wall_s=timeout_s, cpu_s=timeout_s, memory_mb=memory_mb,
                             max_output_bytes=max_output_bytes)
        self._kind = sandbox if isinstance(sandbox, str) else None
        self._sandbox: Sandbox | None = None if isinstance(sandbox, str) else sandbox
        self._owns_sandbox = isinstance(sandbox, str)
        self._lock = threading.Lock()

    # ----- sandbox lifecycle -------------------------------------------------------------------------------
    @property
    def sandbox(self) -> Sandbox:
        """The sandbox (created on first use when a kind was given)."""
        with self._lock:
            if self._sandbox is None:
                self._sandbox = make_sandbox(self._kind or "auto", limits=self.limits)
            return self._sandbox

    def close(self) -> None:
        """Close the sandbox if this verifier created it."""
        with self._lock:
            if self._owns_sandbox and self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None

    def __enter__(self) -> CodeVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # picklable/deep-copyable: the sandbox is recreated on use
        state = dict(self.__dict__)
        state.update(_sandbox=None if self._owns_sandbox else self._sandbox, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    # ----- verification ------------------------------------------------------------------------------------
    def spec_for(self, problem: Problem) -> TestSpec:
        """The test spec stored in ``problem.metadata`` (``ValueError`` when it is missing or invalid)."""
        meta: Mapping[str, Any] = problem.metadata or {}
        if "tests" not in meta:
            raise ValueError(f"problem {problem.id!r} has no metadata['tests'] for the code verifier")
        language = str(meta.get("language", "python")).lower().replace("c++", "cpp")
        return TestSpec(tests=meta["tests"], language=language, entry_point=meta.get("entry_point"),
                        preamble=str(meta.get("preamble") or ""),
                        timeout_s=float(meta.get("timeout_s", self.timeout_s)), compare=meta.get("compare", "lines"))

    def _job(self, spec: TestSpec, code: str | None) -> _Job:
        if code is None or not code.strip():
            reason = "expected a fenced code block" if code is None else "the program is empty"
            details = no_program_details(spec.language, reason)
            text = feedback_text("compile_error", details, max_chars=self.feedback_chars)
            return _Job(spec, early=VerifierResult(0.0, "compile_error", text, details))
        program, nonce = build_program(code, spec, self.limits, wall_factor=self.wall_factor,
                                       compile_timeout_s=self.compile_timeout_s)
        return _Job(spec, program, nonce)

    def _finish(self, job: _Job, result: ExecutionResult) -> VerifierResult:
        status, details = classify(result, parse_report(result, job.nonce), job.spec.language)
        text = feedback_text(status, details, max_chars=self.feedback_chars, timeout_s=job.spec.timeout_s)
        return VerifierResult(1.0 if status == "passed" else 0.0, status, text, details)

    def _run(self, jobs: list[_Job]) -> list[VerifierResult]:
        out: list[VerifierResult | None] = [job.early for job in jobs]
        todo = [i for i, job in enumerate(jobs) if job.early is None]
        if len(todo) == 1:
            out[todo[0]] = self._finish(jobs[todo[0]], self.sandbox.run(jobs[todo[0]].program))
        elif todo:
            programs = [jobs[i].program for i in todo]
            for k, result in self.sandbox.run_many(programs, max_workers=self.max_workers):
                out[todo[k]] = self._finish(jobs[todo[k]], result)
        return [r for r in out if r is not None]

    def verify_code(self, codes: Sequence[str | None], specs: Sequence[TestSpec]) -> list[VerifierResult]:
        """Test already-extracted programs (``None``: no program) against their specs, in parallel."""
        return self._run([self._job(spec, code) for code, spec in zip(codes, specs, strict=True)])

    def __call__(self, problem: Problem, completion: str) -> VerifierResult:
        return self.batch([problem], [completion])[0]

    def batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]:
        """Verify many completions in parallel through ``sandbox.run_many``; results in input order."""
        if len(problems) != len(completions):
            raise ValueError(f"got {len(problems)} problems but {len(completions)} completions")
        specs = [self.spec_for(p) for p in problems]
        codes = [extract_code(str(c), mode=self.extract, language=s.language) for c, s in zip(completions, specs)]
        return self.verify_code(codes, specs)
