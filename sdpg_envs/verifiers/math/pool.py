"""A thread-safe pool of killable sympy worker processes with a wall-clock timeout per call.

Each call takes an idle worker (or starts one), sends a pickled request over a pipe and waits with ``select``.
On timeout the worker is SIGKILLed, reaped and replaced: no ``signal.alarm``, no threads doing sympy work, and
no leaked processes (workers also die with their parent).
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sdpg_envs.verifiers.math.worker import write_frame

_HEADER = struct.Struct("!Q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
_WORKER_SCRIPT = str(Path(__file__).resolve().with_name("worker.py"))
START_TIMEOUT_S = 60.0


class WorkerTimeout(Exception):
    """The worker did not answer within the deadline (it has been killed)."""


class WorkerNotReady(Exception):
    """The worker was still importing sympy at the deadline (it is kept: nothing was sent or read)."""


class WorkerFailed(Exception):
    """The worker died or answered garbage (it has been killed)."""


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = _PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, _WORKER_SCRIPT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, close_fds=True, start_new_session=True,
        )  # fmt: skip
        self.ready = False

    def _read(self, n: int, deadline: float) -> bytes:
        fd, buf = self.proc.stdout.fileno(), b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerTimeout
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise WorkerFailed("worker exited")
            buf += chunk
        return buf

    def receive(self, deadline: float) -> Any:
        (size,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
        return pickle.loads(self._read(size, deadline))

    def wait_ready(self) -> None:
        if not self.ready:
            kind, _ = self.receive(time.monotonic() + START_TIMEOUT_S)
            if kind != "ready":
                raise WorkerFailed("worker did not start")
            self.ready = True

    def is_ready(self) -> bool:
        """Non-blocking: has the worker finished importing sympy?"""
        if not self.ready and select.select([self.proc.stdout.fileno()], [], [], 0)[0]:
            try:
                self.wait_ready()
            except (WorkerFailed, WorkerTimeout, OSError, EOFError, pickle.UnpicklingError, struct.error):
                return False
        return self.ready

    def call(self, name: str, args: tuple, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        if not self.ready and not select.select([self.proc.stdout.fileno()], [], [], max(0.0, timeout_s))[0]:
            raise WorkerNotReady  # still starting: the caller's budget (not START_TIMEOUT_S) bounds the wait
        self.wait_ready()
        write_frame(self.proc.stdin, (name, args))
        return self.receive(deadline)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class WorkerPool:
    """At most ``size`` concurrent sympy computations, each in its own killable process."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or max(1, min(4, os.cpu_count() or 1))
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        """In a forked child the parent's workers (and their pipes) are not ours: start afresh, touch nothing."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._slots = threading.BoundedSemaphore(self.size)
            self._idle = []

    def warm(self) -> None:
        """Start every worker and wait until each has imported sympy."""
        workers = [self._take() for _ in range(self.size)]
        for w in workers:
            w.wait_ready()
        with self._lock:
            self._idle.extend(workers)

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("worker pool is closed")
            for w in [w for w in self._idle if w.proc.poll() is not None]:
                self._idle.remove(w)
                w.kill()
            ready = [w for w in self._idle if w.is_ready()]
            if ready or self._idle:
                w = (ready or self._idle)[-1]
                self._idle.remove(w)
                return w
        return _Worker()

    def call(self, name: str, args: tuple, timeout_s: float) -> Any:
        """Run ``name(*args)`` in a worker. Returns ``("ok", value)``, ``("error", msg)`` or ``("timeout", None)``."""
        self._after_fork()
        with self._slots:
            worker = self._take()
            try:
                reply = worker.call(name, args, timeout_s)
            except WorkerNotReady:
                self._give_back(worker)
                return ("timeout", None)
            except WorkerTimeout:
                self._replace(worker)
                return ("timeout", None)
            except (WorkerFailed, OSError, EOFError, pickle.UnpicklingError, struct.error) as exc:
                self._replace(worker)
                return ("error", f"worker failed: {type(exc).__name__}")
            self._give_back(worker)
            return reply

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if not self._closed:
                self._idle.append(_Worker())  # starts importing now, so the next call waits less

    def pids(self) -> list[int]:
        """PIDs of the live idle workers (for tests and leak checks)."""
        with self._lock:
            return [w.proc.pid for w in self._idle if w.proc.poll() is None]

    def close(self) -> None:
        """Kill every idle worker; calls in flight finish and then kill theirs."""
        if os.getpid() != self._pid:
            return  # a forked child must not kill its parent's workers
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for w in idle:
            w.kill()


_DEFAULT: WorkerPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> WorkerPool:
    """The process-wide pool (created on first use, closed at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT._closed:
            _DEFAULT = WorkerPool()
            atexit.register(_DEFAULT.close)
        return _DEFAULT
