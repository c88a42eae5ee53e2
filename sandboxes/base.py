"""The sandbox contract: limits in, a frozen result out, one protocol for every backend."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Status(str, enum.Enum):
    """How a run ended. ``ok`` means the program exited by itself (any exit code)."""

    OK = "ok"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    KILLED_BY_SIGNAL = "killed_by_signal"
    SANDBOX_ERROR = "sandbox_error"


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to one run. Validated on construction (bad values raise ``ValueError``)."""

    wall_s: float = 10.0
    """Wall-clock deadline; the whole process tree is SIGKILLed when it passes."""
    cpu_s: float = 10.0
    """CPU seconds (RLIMIT_CPU)."""
    memory_mb: int = 1024
    """Address space / cgroup memory cap in MiB."""
    max_processes: int = 64
    """Processes/threads the program may create (RLIMIT_NPROC or pids cgroup)."""
    max_output_bytes: int = 1_000_000
    """Cap on captured stdout and on stderr, each; beyond it the run ends with ``output_limit``."""
    max_file_mb: int = 64
    """Largest file the program may write (RLIMIT_FSIZE)."""
    max_open_files: int = 256
    """RLIMIT_NOFILE."""
    tmpfs_mb: int = 128
    """Size of the private writable /tmp and work dir where the backend can cap it."""

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_mb", "max_processes", "max_output_bytes", "max_file_mb",
                     "max_open_files", "tmpfs_mb"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class Program:
    """What to run: files written into a fresh work dir, then ``command`` executed there."""

    command: tuple[str, ...]
    """argv; ``"python"`` as argv[0] means the sandbox's Python interpreter."""
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    """Relative path -> content, written into the work dir before the run."""
    stdin: str | bytes | None = None
    limits: Limits | None = None
    """Per-program override of the sandbox's limits."""


@dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one run. ``isolated`` says whether the backend isolates the program from the host."""

    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_s: float = 0.0
    cpu_s: float | None = None
    peak_memory_mb: float | None = None
    signal: int | None = None
    isolated: bool = False
    backend: str = ""
    error: str = ""
    """Why the sandbox itself failed (status ``sandbox_error``), else empty."""

    @property
    def ok(self) -> bool:
        """True when the program exited by itself with code 0."""
        return self.status is Status.OK and self.exit_code == 0


@runtime_checkable
class Sandbox(Protocol):
    """Runs untrusted programs. Use as a context manager so teardown always runs."""

    name: str
    isolated: bool
    limits: Limits

    def run(self, program: Program) -> ExecutionResult: ...

    def run_many(self, programs: Iterable[Program], *, max_workers: int | None = None
                 ) -> Iterator[tuple[int, ExecutionResult]]:
        """Run a batch in parallel; yield ``(index, result)`` as each finishes."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Sandbox: ...

    def __exit__(self, *exc: object) -> None: ...
