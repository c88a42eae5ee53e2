"""``CFuncVerifier``: a C function checked by stdin/stdout tests through gcc in the sandbox.

The candidate's code is extracted (a ```c block, or the raw text) and compiled after the standard headers and
the problem's test driver (:func:`sdpg_envs.tasks.cfunc.assemble`; ``#line`` keeps the candidate's own line
numbers), then run once per test by :class:`~sdpg_envs.verifiers.code.CodeVerifier`'s C
harness. The verdict is the code verifier's; the feedback is rewritten for functions:

- compile errors: gcc's diagnostics parsed (``details["diagnostics"]``) and trimmed to the first errors, each
  with its note and the offending line of the candidate's code with a caret (:mod:`.gcc_diagnostics`);
- failing tests: the call (``f(3, 4)``, ``f(s) with s = "ab", then s``) with expected and actual values;
- crashes, timeouts and limits: the call that caused them, with the signal or exit code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sandboxes import Sandbox
from sdpg_envs.tasks.cfunc import SIGNATURES, assemble
from sdpg_envs.types import Problem, VerifierResult
from sdpg_envs.verifiers.code import CodeVerifier, TestSpec, extract_code
from sdpg_envs.verifiers.gcc_diagnostics import parse_gcc, render_diagnostics

GCC_FLAGS = ("-fno-diagnostics-show-caret",)  # carets are drawn from the candidate's code (see gcc_diagnostics)
MAX_SHOWN_TESTS = 2


def _clip(text: str, limit: int) -> str:
    text = str(text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CFuncVerifier:
    """Scores C-function completions for CFunc problems (``metadata``: ``signature``, ``entry_point``,
    ``tests``, ``calls``, ``shown``; see :mod:`sdpg_envs.tasks.cfunc`).

    Args:
        sandbox: Sandbox kind or instance (as :class:`CodeVerifier`).
        extract: ``"auto"``, ``"fenced"`` or ``"raw"`` (as :func:`extract_code`, language ``c``).
        max_errors: gcc errors kept in the feedback.
        feedback_chars: Maximum feedback length.
        **code_options: Other :class:`CodeVerifier` keyword arguments (``timeout_s``, ``memory_mb`` ...).
    """

    def __init__(self, sandbox: Sandbox | str = "auto", *, extract: str = "auto", max_errors: int = 3,
                 feedback_chars: int = 2000, **code_options: Any):
        self.code = CodeVerifier(sandbox, extract=extract, feedback_chars=feedback_chars, **code_options)
        self.extract, self.max_errors, self.feedback_chars = extract, int(max_errors), int(feedback_chars)

    def close(self) -> None:
        self.code.close()

    def __enter__(self) -> CFuncVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def spec_for(problem: Problem) -> TestSpec:
        meta: Mapping[str, Any] = problem.metadata or {}
        if meta.get("signature") not in SIGNATURES or not meta.get("entry_point") or not meta.get("tests"):
            raise ValueError(f"problem {problem.id!r} is not a CFunc problem (needs metadata signature, "
                             "entry_point and tests)")
        return TestSpec(tests=meta["tests"], language="c", timeout_s=float(meta.get("timeout_s", 2.0)),
                        flags=GCC_FLAGS)

    def __call__(self, problem: Problem, completion: str) -> VerifierResult:
        return self.batch([problem], [completion])[0]

    def batch(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]:
        """Verify many completions in parallel (through the sandbox's ``run_many``); results in input order."""
        if len(problems) != len(completions):
            raise ValueError(f"got {len(problems)} problems but {len(completions)} completions")
        specs = [self.spec_for(p) for p in problems]
        codes = [extract_code(str(c), mode=self.extract, language="c") for c in completions]
        programs = [code if code is None or not code.strip() else
                    assemble(code, p.metadata["signature"], p.metadata["entry_point"])
                    for p, code in zip(problems, codes)]
        results = self.code.verify_code(programs, specs)
        return [self._explain(p, code or "", r) for p, code, r in zip(problems, codes, results)]

    # ----- feedback ------------------------------------------------------------------------------------------
    def _explain(self, problem: Problem, code: str, result: VerifierResult) -> VerifierResult:
        details = dict(result.details)
        compiled = details.get("compile") or {}
        text = None
        if result.status == "compile_error" and compiled.get("trace"):
            diagnostics = parse_gcc(str(compiled["trace"]))
            details["diagnostics"] = [d.to_dict() for d in diagnostics[:20]]
            rendered = render_diagnostics(diagnostics, code, max_errors=self.max_errors)
            if rendered:
                text = "Compilation failed (gcc):\n" + rendered
        elif result.status != "passed" and details.get("tests"):
            text = self._tests_feedback(problem, details)
        if text is None:
            return VerifierResult(result.score, result.status, result.feedback, details)
        return VerifierResult(result.score, result.status, _clip(text, self.feedback_chars), details)

    def _tests_feedback(self, problem: Problem, details: Mapping[str, Any]) -> str:
        meta = problem.metadata
        sig = SIGNATURES[meta["signature"]]
        total = len(meta["tests"])
        lines = [f"{int(details.get('tests_passed', 0))} of {total} tests passed."]
        for entry in list(details.get("tests") or [])[:MAX_SHOWN_TESTS]:
            i = int(entry.get("index", 0))
            call = meta["calls"][i] if 0 <= i < len(meta.get("calls", [])) else f"test {i + 1}"
            status = entry.get("status")
            if status == "failed":
                lines += [f"Test {i + 1} failed: {call}", f"  expected: {meta['shown'][i]}",
                          f"  actual:   {self._shown(sig.key, str(entry.get('actual', '')))}"]
            elif status == "error":
                lines += [f"Test {i + 1} crashed: {call}", f"  {entry.get('error', 'runtime error')}"]
                if str(entry.get("stderr", "")).strip():
                    lines.append(f"  stderr: {_clip(entry['stderr'], 300)}")
            else:
                what = {"timeout": f"ran out of time ({float(meta.get('timeout_s', 2.0)):g} s of CPU)",
                        "memory_limit": "used too much memory", "output_limit": "printed too much"}.get(
                    str(status), str(status))
                lines.append(f"Test {i + 1} {what}: {call}")
        return "\n".join(lines)

    @staticmethod
    def _shown(key: str, actual: str) -> str:
        text = actual.strip()
        if key == "void(char*)" and actual.count("\n") <= 1:
            return f'"{_clip(actual.rstrip(chr(10)), 300)}"'
        if not text:
            return "(nothing printed)"
        if key == "void(int*,int)" and all(t.lstrip("-").isdigit() for t in text.split()):
            return "{" + ", ".join(text.split()) + "}"
        return _clip(text, 300)
