"""Helpers shared by every backend: program validation, status classification, batch execution."""

from __future__ import annotations

import base64
import os
import platform
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import PurePosixPath

from sandboxes.base import ExecutionResult, Limits, Program, Status

SIGXCPU, SIGKILL = 24, 9
MAX_FILES_BYTES_FACTOR = 1 << 20  # files must fit the tmpfs (tmpfs_mb MiB)
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
             "PYTHONDONTWRITEBYTECODE": "1"}
PRELOAD = ["math", "re", "collections", "itertools", "functools", "typing", "string", "heapq", "bisect",
           "random", "json", "hashlib", "fractions", "decimal", "statistics", "copy", "operator", "datetime",
           "io", "traceback", "threading", "types", "builtins"]


def base_python() -> str:
    """The real CPython behind the caller's venv (a venv's bin/python is a symlink the jail may not see)."""
    base = os.path.realpath(os.path.join(sys.base_exec_prefix, "bin", f"python{sys.version_info[0]}."
                                         f"{sys.version_info[1]}"))
    return base if os.path.exists(base) else os.path.realpath(sys.executable)


def python_prefix() -> str:
    """Directory holding the base interpreter's installation (bind-mounted into jails)."""
    return os.path.realpath(sysconfig.get_config_var("prefix") or sys.base_prefix)


def kernel_config() -> dict:
    """Fork-server config keys hardening the kernel surface of every run: the seccomp filter and keyctl's number."""
    from sandboxes import seccomp

    program = seccomp.filter_program()
    arch = seccomp.ARCHES.get(platform.machine())
    return {"seccomp": base64.b64encode(program).decode() if program else None,
            "keyctl": seccomp.DENIED["keyctl"][arch[0]] if arch else None}


def validate_program(program: Program) -> None:
    """Raise ``ValueError`` with a clear message when ``program`` cannot be run by any backend."""
    if not isinstance(program, Program):
        raise ValueError(f"expected a sandboxes.Program, got {type(program).__name__}")
    cmd = program.command
    if not isinstance(cmd, (tuple, list)) or not cmd:
        raise ValueError("Program.command must be a non-empty sequence of strings")
    for arg in cmd:
        if not isinstance(arg, str):
            raise ValueError(f"Program.command items must be str, got {type(arg).__name__}")
        if "\x00" in arg:
            raise ValueError("Program.command items must not contain NUL bytes")
    if not cmd[0]:
        raise ValueError("Program.command[0] must not be empty")
    if not isinstance(program.files, dict) and not hasattr(program.files, "items"):
        raise ValueError("Program.files must be a mapping of relative path -> str | bytes")
    for rel, content in program.files.items():
        if not isinstance(rel, str) or not rel or "\x00" in rel:
            raise ValueError(f"invalid file name {rel!r}")
        parts = PurePosixPath(rel).parts
        if rel.startswith("/") or ".." in parts or not parts:
            raise ValueError(f"file name {rel!r} must be relative and stay inside the work dir")
        if not isinstance(content, (str, bytes)):
            raise ValueError(f"content of {rel!r} must be str or bytes, got {type(content).__name__}")
    if program.stdin is not None and not isinstance(program.stdin, (str, bytes)):
        raise ValueError(f"Program.stdin must be str, bytes or None, got {type(program.stdin).__name__}")
    if program.limits is not None and not isinstance(program.limits, Limits):
        raise ValueError("Program.limits must be a sandboxes.Limits or None")


def to_bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data


def files_size(program: Program) -> int:
    return sum(len(to_bytes(c)) for c in program.files.values())


def encode_request(program: Program, limits: Limits) -> dict:
    """The JSON request a fork server understands."""
    return {
        "argv": list(program.command),
        "files": {k: base64.b64encode(to_bytes(v)).decode() for k, v in program.files.items()},
        "stdin": base64.b64encode(to_bytes(program.stdin)).decode() if program.stdin else None,
        "limits": {name: getattr(limits, name) for name in Limits.__dataclass_fields__},
    }


def too_big(program: Program, limits: Limits, backend: str, isolated: bool) -> ExecutionResult | None:
    """A ``sandbox_error`` result when the program's files cannot fit the work dir, else None."""
    size = files_size(program)
    if size <= limits.tmpfs_mb * MAX_FILES_BYTES_FACTOR:
        return None
    return error_result(f"program files are {size} bytes, more than the work dir holds (tmpfs_mb="
                        f"{limits.tmpfs_mb})", backend, isolated)


def error_result(message: str, backend: str, isolated: bool, wall_s: float = 0.0) -> ExecutionResult:
    return ExecutionResult(status=Status.SANDBOX_ERROR, exit_code=None, stdout="", stderr="", wall_s=wall_s,
                           isolated=isolated, backend=backend, error=message)


def _memory_error(stderr: str) -> bool:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return bool(lines) and lines[-1].startswith("MemoryError")


def classify(facts: dict, limits: Limits) -> Status:
    """Turn raw facts from a backend into one ``Status`` (the order below is the precedence)."""
    if facts.get("setup_error"):
        return Status.SANDBOX_ERROR
    if facts.get("output_limited"):
        return Status.OUTPUT_LIMIT
    sig = facts.get("signal")
    cpu = facts.get("cpu_s") or 0.0
    if facts.get("timed_out") or sig == SIGXCPU or (sig == SIGKILL and cpu >= limits.cpu_s - 0.05):
        return Status.TIMEOUT
    if facts.get("oom_killed"):
        return Status.MEMORY_LIMIT
    if facts.get("exit_code") not in (None, 0) and _memory_error(facts.get("stderr_text", "")):
        return Status.MEMORY_LIMIT
    if sig is not None:
        return Status.KILLED_BY_SIGNAL
    return Status.OK


def facts_to_result(facts: dict, limits: Limits, backend: str, isolated: bool) -> ExecutionResult:
    """Build the frozen result from the fork server's reply."""
    if "internal_error" in facts:
        return error_result(f"sandbox worker failed: {facts['internal_error']}", backend, isolated)
    stdout = base64.b64decode(facts["stdout"]).decode("utf-8", "replace")
    stderr = base64.b64decode(facts["stderr"]).decode("utf-8", "replace")
    facts["stderr_text"] = stderr
    status = classify(facts, limits)
    peaks = [p for p in (facts.get("peak_memory_mb"), facts.get("maxrss_mb")) if p]
    peak = max(peaks) if peaks else None
    return ExecutionResult(
        status=status, exit_code=facts.get("exit_code"), stdout=stdout, stderr=stderr,
        stdout_truncated=bool(facts.get("stdout_truncated")), stderr_truncated=bool(facts.get("stderr_truncated")),
        wall_s=float(facts.get("wall_s", 0.0)), cpu_s=facts.get("cpu_s"), peak_memory_mb=peak,
        signal=facts.get("signal"), isolated=isolated, backend=backend, error=facts.get("setup_error", ""),
    )


def run_batch(run: Callable[[Program], ExecutionResult], programs: Iterable[Program], max_workers: int
              ) -> Iterator[tuple[int, ExecutionResult]]:
    """Run ``programs`` on a bounded thread pool (at most ``max_workers`` in flight); yield as they finish.

    Every program is validated first, so a bad one raises ``ValueError`` before anything runs.
    """
    items = list(programs)
    for program in items:
        validate_program(program)
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sandbox")
    try:
        pending: dict[Future, int] = {}
        queue = iter(enumerate(items))
        for index, program in queue:
            pending[pool.submit(run, program)] = index
            if len(pending) >= max_workers * 2:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                yield index, future.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(run, nxt[1])] = nxt[0]
    except BaseException:  # interrupted (Ctrl-C) or abandoned: do not wait for the runs in flight
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
