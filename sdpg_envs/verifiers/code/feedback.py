"""Feedback text for the self-teacher: short, bounded and deterministic (no temp paths, pids or timings).

One of: the compiler error with the offending line; a runtime error's exception with only the frames inside
the candidate's code (and the call that triggered it); a timeout with the input; or up to two failing tests
with input, expected and actual output. Built only from the harness report, whose texts already refer to the
program as ``solution.py`` / ``solution.c``.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MAX_CHARS = 2000
MAX_SHOWN_FAILURES = 2
_MARK = "\n... [truncated]"


def clip_head(text: str, limit: int) -> str:
    """Keep the beginning of ``text`` (at most ``limit`` characters, marker included)."""
    text = str(text).rstrip()
    return text if len(text) <= limit else text[: max(0, limit - len(_MARK))].rstrip() + _MARK


def clip_tail(text: str, limit: int) -> str:
    """Keep the end of ``text`` (where a traceback names the error)."""
    text = str(text).rstrip()
    return text if len(text) <= limit else "[truncated] ...\n" + text[-max(0, limit - 16):].lstrip("\n")


def _calls(entry: dict[str, Any], show_result: bool) -> list[str]:
    lines = []
    for call in entry.get("calls") or []:
        if not isinstance(call, dict):
            continue
        text = f"Call: {call.get('call', '')}"
        if show_result and "returned" in call:
            text += f" -> {call['returned']}"
        lines.append(text)
    return lines[-2:]


def _where(entry: dict[str, Any]) -> str:
    source = str(entry.get("source") or "").strip()
    if source:
        return f"in test: {clip_head(source, 300)}"
    if entry.get("input") is not None:
        return "on input:\n" + clip_head(str(entry["input"]), 300)
    return "while running the tests"


def _failure(entry: dict[str, Any], language: str) -> str:
    if language != "python":
        actual = entry.get("actual", "")
        return "\n".join([f"Test {int(entry.get('index', 0)) + 1} failed.", "Input:",
                          clip_head(entry.get("input", ""), 300), "Expected output:",
                          clip_head(entry.get("expected", ""), 300), "Actual output:",
                          clip_head(actual, 300) if actual.strip() else "(nothing)"])
    lines = [f"Test failed: {clip_head(str(entry.get('source', '')), 300)}"]
    has_values = "expected" in entry and "actual" in entry
    lines += _calls(entry, show_result=not has_values)
    if has_values:
        lines += [f"Expected: {entry['expected']}", f"Actual: {entry['actual']}"]
    if entry.get("status") == "test_error":
        lines.append(f"The test raised {entry.get('error', '')}")
    return "\n".join(lines)


def _runtime(entry: dict[str, Any], language: str, phase: str) -> str:
    if phase == "import":
        head = "Runtime error while loading the program:"
    elif phase == "harness":
        return f"Runtime error: {entry.get('error', '')}"
    else:
        head = f"Runtime error {_where(entry)}"
    lines = [head, *_calls(entry, show_result=False)]
    trace = entry.get("trace") or entry.get("error") or entry.get("detail") or ""
    if language != "python" and entry.get("stderr"):
        trace = f"{entry.get('error', '')}\nstderr:\n{entry['stderr']}"
    lines.append(clip_tail(str(trace), 900))
    return "\n".join(line for line in lines if line)


def _limit(status: str, entry: dict[str, Any], details: dict[str, Any], timeout_s: float | None) -> str:
    what = {"timeout": "Time limit exceeded", "memory_limit": "Memory limit exceeded",
            "output_limit": "Output limit exceeded (the program printed too much)"}[status]
    if status == "timeout" and timeout_s:
        what += f" ({timeout_s:g} s of CPU time)"
    if not entry:
        return what + "."
    if entry.get("phase") == "import":
        return what + " while loading the program."
    lines = [f"{what} {_where(entry)}", *_calls(entry, show_result=False)]
    return "\n".join(lines)


def _first_problem(details: dict[str, Any]) -> dict[str, Any]:
    tests = details.get("tests") or []
    return tests[0] if tests else (details.get("runtime") or {})


def feedback_text(status: str, details: dict[str, Any], *, max_chars: int = DEFAULT_MAX_CHARS,
                  timeout_s: float | None = None) -> str:
    """The feedback for one verdict, at most ``max_chars`` characters."""
    language = details.get("language", "python")
    compiled = details.get("compile") or {}
    if status == "passed":
        n = int(details.get("tests_passed", 0))
        text = f"All tests passed ({n} check{'' if n == 1 else 's'})."
    elif status == "compile_error":
        if compiled.get("no_code"):
            text = f"No program found in the completion: {compiled.get('message', '')}"
        else:
            tool = "gcc" if language == "c" else "g++" if language == "cpp" else "Python"
            text = f"Compilation failed ({tool}):\n" + clip_head(str(compiled.get("trace", "")), max_chars - 40)
    elif status == "wrong_answer":
        shown = [t for t in details.get("tests") or [] if t.get("status") in ("failed", "test_error")]
        shown = shown[:MAX_SHOWN_FAILURES]
        if not shown:
            entry = details.get("runtime") or {}
            return clip_head(f"Wrong answer: {entry.get('error', 'the tests did not pass')}", max_chars)
        head = f"{details.get('tests_failed', len(shown))} failing, {details.get('tests_passed', 0)} passing checks."
        text = "\n\n".join([head, *(_failure(t, language) for t in shown)])
    elif status == "runtime_error":
        entry = _first_problem(details)
        text = _runtime(entry, language, entry.get("phase", "tests") if entry is details.get("runtime") else "tests")
    elif status in ("timeout", "memory_limit", "output_limit"):
        text = _limit(status, _first_problem(details), details, timeout_s)
    else:
        error = (details.get("sandbox") or {}).get("error") or "the sandbox failed to run the program"
        text = f"Sandbox error (not the program's fault): {error}"
    return clip_head(text, max_chars)
