"""Sandbox result + harness report -> ``(status, details)`` in the shared taxonomy (see :mod:`.status`).

``details`` is JSON-friendly: ``language``, ``tests_passed``, ``tests_failed``, ``tests`` (failing tests: status,
``source`` or ``input``, ``call``, ``expected``, ``actual``, ``error``, ``trace``), ``compile`` (``ok``, ``trace``,
``line``, ``message``), ``runtime`` (an error outside any test: at import, a crash, a timeout), and ``sandbox``
(backend, isolation, exit code). No timings anywhere, so the same program gives the same details.
"""

from __future__ import annotations

from typing import Any

from sandboxes import ExecutionResult, Status

_SANDBOX_STATUS = {Status.TIMEOUT: "timeout", Status.MEMORY_LIMIT: "memory_limit",
                   Status.OUTPUT_LIMIT: "output_limit", Status.SANDBOX_ERROR: "sandbox_error"}
_TEST_STATUS = {"failed": "wrong_answer", "test_error": "wrong_answer", "error": "runtime_error",
                "timeout": "timeout", "memory_limit": "memory_limit", "output_limit": "output_limit"}


def _exception_status(exc_type: str | None) -> str:
    return "memory_limit" if exc_type == "MemoryError" else "runtime_error"


def _fatal_status(kind: str, detail: str) -> str:
    if kind == "timeout":
        return "timeout"
    if kind == "died" and "SIGKILL" in detail:
        return "memory_limit"
    if kind == "died" and "SIGXCPU" in detail:
        return "timeout"
    return "runtime_error"


def _test_status(entry: dict[str, Any]) -> str:
    status = _TEST_STATUS.get(entry.get("status", ""), "runtime_error")
    error = str(entry.get("error", ""))
    if entry.get("status") == "error":
        return _exception_status(error.split(":", 1)[0])
    if entry.get("status") == "test_error" and error.startswith("NameError"):
        return "runtime_error"  # the tests need a name the program does not define
    return status


def sandbox_details(result: ExecutionResult) -> dict[str, Any]:
    return {"status": result.status.value, "exit_code": result.exit_code, "backend": result.backend,
            "isolated": result.isolated, "error": result.error}


def _classify_tests(tests: dict[str, Any], details: dict[str, Any]) -> str:
    failures = [f for f in tests.get("failures", []) if isinstance(f, dict)]
    details.update(tests_passed=int(tests.get("passed", 0)), tests_failed=len(failures), tests=failures)
    if failures:
        return _test_status(failures[0])
    fatal, error = tests.get("fatal"), tests.get("error")
    if isinstance(fatal, dict):
        details["runtime"] = {"phase": "tests", **fatal}
        return _fatal_status(str(fatal.get("kind")), str(fatal.get("detail", "")))
    if isinstance(error, dict):
        details["runtime"] = {"phase": "tests", **error}
        return _test_status(error)
    if details["tests_passed"] < 1:
        details["runtime"] = {"phase": "tests", "error": "no test assertion was executed"}
        return "wrong_answer"
    return "passed" if tests.get("completed", False) else "wrong_answer"


def classify(result: ExecutionResult, report: dict[str, Any] | None, language: str) -> tuple[str, dict[str, Any]]:
    """Map one sandbox run (and its verified report, if any) to ``(status, details)``."""
    details: dict[str, Any] = {"language": language, "tests_passed": 0, "tests_failed": 0, "tests": [],
                               "sandbox": sandbox_details(result)}
    if result.status in _SANDBOX_STATUS:
        if report is not None and not report.get("compile", {}).get("ok", True):
            details["compile"] = report["compile"]
            return "compile_error", details
        return _SANDBOX_STATUS[result.status], details
    if report is None:
        details["runtime"] = {"phase": "harness", "error": "the test harness gave no verdict (the program "
                              "interfered with it or it was killed)"}
        return "runtime_error", details
    compiled = report["compile"]
    details["compile"] = compiled
    if compiled.get("sandbox_error"):
        details["sandbox"]["error"] = compiled["sandbox_error"]
        return "sandbox_error", details
    if compiled.get("timeout"):
        return "timeout", details
    if not compiled.get("ok"):
        return "compile_error", details
    imported = report.get("import", {"ok": True})
    if not imported.get("ok"):
        details["runtime"] = {"phase": "import", **imported}
        if imported.get("kind") == "exception":
            return _exception_status(imported.get("exc_type")), details
        return _fatal_status(str(imported.get("kind")), str(imported.get("detail", ""))), details
    status = _classify_tests(report.get("tests") or {}, details)
    if status == "passed" and not (result.status is Status.OK and result.exit_code == 0):
        return "runtime_error", details  # a verdict line alone is not enough: the run must also end cleanly
    return status, details


def no_program_details(language: str, reason: str) -> dict[str, Any]:
    """Details for a completion in which no program was found (status ``compile_error``)."""
    return {"language": language, "tests_passed": 0, "tests_failed": 0, "tests": [],
            "compile": {"ok": False, "no_code": True, "message": reason}}
