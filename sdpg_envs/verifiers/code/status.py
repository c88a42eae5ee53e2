"""The status taxonomy shared by every language, and its mapping to other harnesses' categories.

Every verdict has exactly one status:

========================  ============================================================================
``passed``                every test ran and passed (score 1.0); the only status with a non-zero score
``wrong_answer``          the program ran but a test failed (assert false, wrong stdout, or the test choked
                          on the returned value, e.g. ``TypeError`` on ``None``)
``compile_error``         the compiler rejected the program (Python ``compile()``: ``SyntaxError``,
                          ``IndentationError``, ``TabError``, null bytes; gcc/g++ errors), or the
                          completion held no program at all
``runtime_error``         an exception or crash: at import (``NameError``, ``ModuleNotFoundError`` ...),
                          inside a tested call, a function the tests need is missing, a non-zero exit or
                          a signal (C), or the program interfered with the harness
``timeout``               the CPU or wall-clock budget ran out
``memory_limit``          ``MemoryError`` or the memory cap killed the program
``output_limit``          the program wrote more output than allowed
``sandbox_error``         the sandbox or harness failed (not the program's fault)
========================  ============================================================================

Mapping to other harnesses (``STATUS_MAPPING``), for comparing numbers across papers:

- **SandboxFusion** ``RunCodeResponse``: top-level ``status`` is ``Success | Failed | SandboxError``; the
  ``compile_result``/``run_result`` each have ``status`` ``Finished | Error | TimeLimitExceeded`` and a
  ``return_code``. It has no separate memory/output category (they show up as ``Finished`` with a non-zero
  return code or ``Error``), and it reports a compile result only for compiled languages: a Python
  ``SyntaxError`` is a run failure there.
- **LiveCodeBench** (``lcb_runner/evaluation/testing_util.py``): per test ``True`` (pass), ``-2`` wrong
  answer, ``-3`` time limit exceeded, ``-4`` runtime error (its Python path also reports compile failures
  as ``-4``), and ``-1`` when the whole run was killed by the outer timeout.
- **verl** (``verl/utils/reward_score/sandbox_fusion/utils.py``): per test ``True``/``False`` (wrong
  answer), ``-1`` API/sandbox error, ``-2`` runtime error, ``-3`` timeout, ``-4`` compile error.
"""

from __future__ import annotations

import enum


class CodeStatus(str, enum.Enum):
    """How one program fared against its tests."""

    PASSED = "passed"
    WRONG_ANSWER = "wrong_answer"
    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SANDBOX_ERROR = "sandbox_error"


STATUSES: tuple[str, ...] = tuple(s.value for s in CodeStatus)
"""All status strings, in a fixed order (used for histograms)."""

STATUS_MAPPING: dict[str, dict[str, str]] = {
    "passed": {"sandboxfusion": "Success (run Finished, return_code 0)", "livecodebench": "True",
               "verl": "True"},
    "wrong_answer": {"sandboxfusion": "Success with wrong stdout, or Failed (run Finished, assert exit 1)",
                     "livecodebench": "-2 (Wrong Answer)", "verl": "False"},
    "compile_error": {"sandboxfusion": "Failed (compile_result Error / Finished with return_code != 0)",
                      "livecodebench": "-4 (Runtime Error; Python compile failures land here)",
                      "verl": "-4 (compile error)"},
    "runtime_error": {"sandboxfusion": "Failed (run_result Error / Finished with return_code != 0)",
                      "livecodebench": "-4 (Runtime Error)", "verl": "-2 (runtime error)"},
    "timeout": {"sandboxfusion": "Failed (run_result TimeLimitExceeded)",
                "livecodebench": "-3 (Time Limit Exceeded), or -1 when the outer timeout fired",
                "verl": "-3 (timeout)"},
    "memory_limit": {"sandboxfusion": "Failed (run Finished with return_code != 0, e.g. 137)",
                     "livecodebench": "-4 (Runtime Error: MemoryError)", "verl": "-2 (runtime error)"},
    "output_limit": {"sandboxfusion": "Failed (run Error, output truncated)",
                     "livecodebench": "-4 (Runtime Error)", "verl": "-2 (runtime error)"},
    "sandbox_error": {"sandboxfusion": "SandboxError", "livecodebench": "-1", "verl": "-1 (API/sandbox error)"},
}

VERL_CODES: dict[str, bool | int] = {"passed": True, "wrong_answer": False, "compile_error": -4,
                                     "runtime_error": -2, "timeout": -3, "memory_limit": -2, "output_limit": -2,
                                     "sandbox_error": -1}
"""verl's per-test result value for each status."""

LCB_CODES: dict[str, bool | int] = {"passed": True, "wrong_answer": -2, "compile_error": -4, "runtime_error": -4,
                                    "timeout": -3, "memory_limit": -4, "output_limit": -4, "sandbox_error": -1}
"""LiveCodeBench's per-test result value for each status."""
