"""Turn (program text, test spec) into a sandbox :class:`~sandboxes.Program`, and a sandbox result back into a
verdict: ``(status, details)``.

The harness scripts (``_harness_judge.py`` + ``_harness_runner.py`` for Python, ``_harness_c.py`` for C/C++)
are written into the sandbox's work dir next to the program. The config (tests, budget and a fresh random
nonce) travels on stdin, so it is never on disk where the program could read it. Only the line
``@@sdpg-result <nonce> <json>`` on stdout counts, and a pass also needs the run itself to have ended normally.
"""

from __future__ import annotations

import json
import secrets
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from sandboxes import ExecutionResult, Limits, Program

LANGUAGES = ("python", "c", "cpp")
_HERE = Path(__file__).resolve().parent
_SOURCE_NAME = {"python": "solution.py", "c": "solution.c", "cpp": "solution.cpp"}
RESULT_TAG = "@@sdpg-result"


_SHARED = ("_harness_runner.py", "_harness_c.py")
"""Scripts that carry ``_harness_procs.py`` (process accounting) in front of their own source."""


@cache
def _script(name: str) -> str:
    source = (_HERE / name).read_text(encoding="utf-8")
    if name in _SHARED:
        source = (_HERE / "_harness_procs.py").read_text(encoding="utf-8") + "\n\n" + source
    return source


@dataclass(frozen=True)
class TestSpec:
    """What a program is tested against.

    Attributes:
        tests: Python test code (asserts, optionally ``def check(candidate)``), or for C/C++ a list of
            ``(stdin, expected_stdout)`` pairs.
        language: ``"python"``, ``"c"`` or ``"cpp"``.
        entry_point: Python only: when the tests define ``check``, it is called as ``check(<entry_point>)``.
        preamble: Python only: code placed before the program (e.g. HumanEval's prompt with its imports and
            helpers); a program whose first line is indented continues the preamble directly.
        timeout_s: CPU-time budget: for Python the whole test run, for C/C++ each test case.
        compare: C/C++ stdout comparison: ``"lines"`` (trailing whitespace ignored), ``"tokens"`` or ``"exact"``.
    """

    __test__ = False  # not a pytest class

    tests: str | tuple[tuple[str, str], ...]
    language: str = "python"
    entry_point: str | None = None
    preamble: str = ""
    timeout_s: float = 10.0
    compare: str = "lines"
    flags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"unknown language {self.language!r}; choose from {', '.join(LANGUAGES)}")
        if not (isinstance(self.timeout_s, (int, float)) and 0 < self.timeout_s <= 3600):
            raise ValueError(f"timeout_s must be in (0, 3600], got {self.timeout_s!r}")
        if self.compare not in ("lines", "tokens", "exact"):
            raise ValueError(f"compare must be 'lines', 'tokens' or 'exact', got {self.compare!r}")
        if self.language == "python":
            if not isinstance(self.tests, str):
                raise ValueError("Python tests must be a string of test code (asserts)")
            try:
                with warnings.catch_warnings():  # e.g. invalid escapes in MBPP's regex tests
                    warnings.simplefilter("ignore")
                    compile(self.tests, "<tests>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                raise ValueError(f"the test code does not compile: {exc}") from None
        else:
            object.__setattr__(self, "tests", normalise_io_tests(self.tests))


def normalise_io_tests(tests: Any) -> tuple[tuple[str, str], ...]:
    """Accept ``[[stdin, expected], ...]``, ``[{"input", "output"}, ...]``, ``{"inputs": [...], "outputs": [...]}``
    or any of those as a JSON string; return a tuple of ``(stdin, expected)`` string pairs."""
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError as exc:
            raise ValueError(f"stdin/stdout tests are not valid JSON: {exc.msg}") from None
    if isinstance(tests, Mapping) and "inputs" in tests and "outputs" in tests:
        tests = list(zip(tests["inputs"], tests["outputs"], strict=True))
    if not isinstance(tests, Sequence) or isinstance(tests, str) or not tests:
        raise ValueError("stdin/stdout tests must be a non-empty list of (input, expected output) pairs")
    pairs = []
    for i, item in enumerate(tests):
        if isinstance(item, Mapping):
            item = (item.get("input", item.get("stdin")), item.get("output", item.get("expected")))
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2 or \
                not all(isinstance(x, str) for x in item):
            raise ValueError(f"test {i} must be an (input, expected output) pair of strings, got {item!r:.100}")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def assemble_python(code: str, preamble: str) -> str:
    """The file the harness compiles: ``preamble`` + the program (a continuation if it starts indented)."""
    if not preamble:
        return code
    preamble = preamble if preamble.endswith("\n") else preamble + "\n"
    first = next((line for line in code.splitlines() if line.strip()), "")
    return preamble + code if first[:1] in (" ", "\t") else preamble + "\n" + code


def build_program(code: str, spec: TestSpec, base: Limits, *, wall_factor: float = 3.0,
                  compile_timeout_s: float = 30.0) -> tuple[Program, str]:
    """The sandbox program that tests ``code`` against ``spec``, and the nonce its verdict line must carry."""
    nonce = secrets.token_hex(16)
    cfg: dict[str, Any] = {"nonce": nonce, "timeout_s": float(spec.timeout_s), "wall_factor": wall_factor}
    if spec.language == "python":
        source = assemble_python(code, spec.preamble).encode("utf-8", "replace")
        cfg.update(tests=spec.tests, entry_point=spec.entry_point, preamble=spec.preamble)
        files = {"solution.py": source, "_sdpg_judge.py": _script("_harness_judge.py"),
                 "_sdpg_runner.py": _script("_harness_runner.py")}
        command = ("python", "_sdpg_judge.py")
        wall = spec.timeout_s * wall_factor + 10.0
        cpu = spec.timeout_s + 5.0
    else:
        cfg.update(tests=[list(t) for t in spec.tests], language=spec.language, compare=spec.compare,
                   flags=list(spec.flags), compile_timeout_s=compile_timeout_s,
                   memory_mb=max(64, base.memory_mb // 2), max_output_bytes=base.max_output_bytes)
        files = {_SOURCE_NAME[spec.language]: code.encode("utf-8", "replace"), "_sdpg_c.py": _script("_harness_c.py")}
        command = ("python", "_sdpg_c.py")
        wall = compile_timeout_s + len(spec.tests) * (spec.timeout_s * wall_factor + 1.5) + 10.0
        cpu = wall
    limits = replace(base, wall_s=max(base.wall_s, wall), cpu_s=max(base.cpu_s, cpu))
    return Program(command=command, files=files, stdin=json.dumps(cfg), limits=limits), nonce


def parse_report(result: ExecutionResult, nonce: str) -> dict[str, Any] | None:
    """The harness report carried by the nonce-tagged line, or None (missing, duplicated or unreadable)."""
    prefix = f"{RESULT_TAG} {nonce} "
    lines = [line[len(prefix):] for line in result.stdout.splitlines() if line.startswith(prefix)]
    if len(lines) != 1:
        return None
    try:
        report = json.loads(lines[0])
    except json.JSONDecodeError:
        return None
    return report if isinstance(report, dict) and isinstance(report.get("compile"), dict) else None
