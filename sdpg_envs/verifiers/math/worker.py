"""Worker process for sympy comparisons: ``python .../sdpg_envs/verifiers/math/worker.py``.

Run as a script, it registers bare package objects for ``sdpg_envs``, ``sdpg_envs.verifiers`` and
``sdpg_envs.verifiers.math`` so that only the comparison modules are imported, not the package ``__init__``
files (which import gymnasium and register environments): a worker is ready after ~0.5 s instead of ~1.5 s.

Protocol on stdin/stdout: length-prefixed pickle frames. Parent sends ``(function_name, args)``; worker answers
``("ok", value)`` or ``("error", message)``. A ``("ready", pid)`` frame is sent once sympy is imported.
The worker limits its own address space and dies with its parent (``PR_SET_PDEATHSIG``); the parent kills it
with SIGKILL on timeout, so nothing here needs to be interruptible.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import struct
import sys
import types
from pathlib import Path
from typing import Any, BinaryIO

MEMORY_LIMIT_BYTES = int(os.environ.get("SDPG_MATH_WORKER_MEMORY_MB", "3072")) * 2**20
_HEADER = struct.Struct("!Q")


def write_frame(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("parent closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _limit_memory() -> None:
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        pass


def _dispatch(name: str, args: tuple) -> Any:
    from sdpg_envs.verifiers.math import sympy_scalar

    if name == "compare":
        return sympy_scalar.compare_in_worker(*args)
    if name == "sleep":  # used by tests to exercise the timeout path
        import time

        time.sleep(float(args[0]))
        return True
    raise ValueError(f"unknown worker function {name!r}")


def _light_packages() -> None:
    """Make ``sdpg_envs.verifiers.math.*`` importable without running the package ``__init__`` files."""
    here = Path(__file__).resolve().parent
    for name, path in (("sdpg_envs", here.parents[1]), ("sdpg_envs.verifiers", here.parent),
                       ("sdpg_envs.verifiers.math", here)):  # fmt: skip
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module


def main() -> None:
    _die_with_parent()
    _limit_memory()
    sys.setrecursionlimit(10_000)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    from sdpg_envs.verifiers.math import sympy_scalar  # noqa: F401  (warm import before "ready")

    write_frame(stdout, ("ready", os.getpid()))
    while True:
        try:
            (size,) = _HEADER.unpack(_read_exact(stdin, _HEADER.size))
            name, args = pickle.loads(_read_exact(stdin, size))
        except EOFError:
            return
        try:
            reply = ("ok", _dispatch(name, args))
        except MemoryError:
            reply = ("error", "out of memory")
        except RecursionError:
            reply = ("error", "expression too deep")
        except Exception as exc:  # noqa: BLE001 - any sympy failure becomes a verdict, never a crash
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:160]}")
        write_frame(stdout, reply)


if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[3])
    _light_packages()
    main()
