"""Host side of the warm fork servers used by the ``bwrap`` and ``process`` backends (and ``docker``).

A pool owns up to ``size`` worker slots. Each slot runs one fork server (``_zygote.py``) that executes
one program at a time, each in a freshly forked child that is used exactly once. Workers start lazily
from one long-lived thread (so ``PR_SET_PDEATHSIG``/``--die-with-parent`` stay tied to the pool, not
to a short-lived caller thread) and are replaced when they die.
"""

from __future__ import annotations

import json
import os
import queue
import select
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path

from sandboxes._common import encode_request, error_result, facts_to_result, run_batch, too_big, validate_program
from sandboxes.base import ExecutionResult, Limits, Program

ZYGOTE_PARTS = ("_zygote_cleanup.py", "_zygote.py")  # one source: cleanup helpers, then the server
ZYGOTE_SOURCE = "\n\n".join(Path(__file__).with_name(name).read_text() for name in ZYGOTE_PARTS)
START_TIMEOUT_S = 30.0


class WorkerDied(RuntimeError):
    """The fork server stopped answering (crashed, was killed, or missed its deadline)."""


class Worker:
    """One fork-server process speaking length-prefixed JSON over its stdin/stdout."""

    def __init__(self, argv: list[str], env: dict[str, str], slot: int) -> None:
        self.slot = slot
        self._errlog = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errlog,
                                     env=env, close_fds=True, start_new_session=True)
        self.hello = self._recv(time.monotonic() + START_TIMEOUT_S)

    def call(self, request: dict, timeout_s: float) -> dict:
        """Send one request and wait for its reply; raise ``WorkerDied`` on EOF or timeout."""
        data = json.dumps(request).encode()
        try:
            self.proc.stdin.write(struct.pack(">Q", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise WorkerDied(f"could not send the program to the worker: {exc}; {self.stderr_tail()}") from exc
        return self._recv(time.monotonic() + timeout_s)

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerDied("worker did not answer in time")
            chunk = os.read(fd, min(n - len(out), 1 << 20))
            if not chunk:
                raise WorkerDied(f"worker exited (code {self.proc.poll()}); {self.stderr_tail()}")
            out += chunk
        return bytes(out)

    def _recv(self, deadline: float) -> dict:
        size = struct.unpack(">Q", self._read(8, deadline))[0]
        return json.loads(self._read(size, deadline))

    def stderr_tail(self) -> str:
        try:
            self._errlog.seek(0)
            text = self._errlog.read()[-800:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            text = ""
        return f"worker stderr: {text}" if text else "worker wrote nothing to stderr"

    def kill(self) -> None:
        self.proc.kill()

    def close(self) -> None:
        """Ask the server to exit (EOF on its stdin), then make sure it is gone."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._errlog.close()


class _Spawner:
    """A long-lived daemon thread that starts workers (parent-death signals follow this thread)."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="sandbox-spawner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future = job
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def submit(self, fn: Callable[[], Worker]) -> Worker:
        future: Future = Future()
        self._jobs.put((fn, future))
        return future.result()

    def stop(self) -> None:
        self._jobs.put(None)


class ForkServerPool:
    """Up to ``size`` warm fork servers; ``start(slot)`` starts the server for a slot (``Worker``-like)."""

    def __init__(self, start: Callable[[int], Worker], size: int, backend: str,
                 isolated: bool, limits: Limits, on_close: Callable[[], None] | None = None) -> None:
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self._start_fn, self.size, self.backend, self.isolated, self.limits = start, size, backend, isolated, limits
        self._on_close = on_close
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()  # running a program now; killed by close() so their callers return
        self._free_slots = list(range(size))
        self._cond = threading.Condition()
        self._spawner = _Spawner()
        self._closed = False

    def _start(self, slot: int) -> Worker:
        return self._spawner.submit(lambda: self._start_fn(slot))

    def _acquire(self) -> Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise WorkerDied("sandbox is closed")
                if self._idle:
                    return self._idle.pop()
                if self._free_slots:
                    slot = self._free_slots.pop()
                    break
                self._cond.wait()
        try:
            return self._start(slot)
        except BaseException:
            self._release_slot(slot)
            raise

    def _release_slot(self, slot: int) -> None:
        with self._cond:
            self._free_slots.append(slot)
            self._cond.notify()

    def _release(self, worker: Worker, healthy: bool) -> None:
        with self._cond:
            self._busy.discard(worker)
        if healthy and not self._closed:
            with self._cond:
                self._idle.append(worker)
                self._cond.notify()
            return
        worker.kill()
        worker.close()
        self._release_slot(worker.slot)

    def warm(self, n: int | None = None) -> None:
        """Start ``n`` (default: all) workers now so the first runs do not pay start-up."""
        workers = [self._acquire() for _ in range(min(n or self.size, self.size))]
        for worker in workers:
            self._release(worker, True)

    def run(self, program: Program) -> ExecutionResult:
        """Execute one program on an idle worker (starting one if a slot is free)."""
        validate_program(program)
        limits = program.limits or self.limits
        early = too_big(program, limits, self.backend, self.isolated)
        if early is not None:
            return early
        try:
            worker = self._acquire()
        except Exception as exc:
            return error_result(f"could not start a {self.backend} worker: {exc}", self.backend, self.isolated)
        with self._cond:
            self._busy.add(worker)
        start = time.monotonic()
        try:
            facts = worker.call(encode_request(program, limits), timeout_s=limits.wall_s + 15.0)
        except WorkerDied as exc:
            self._release(worker, False)
            return error_result(f"sandbox worker died during the run ({exc})", self.backend, self.isolated,
                                wall_s=time.monotonic() - start)
        self._release(worker, "internal_error" not in facts)
        return facts_to_result(facts, limits, self.backend, self.isolated)

    def close(self) -> None:
        """Stop every worker and run the backend's cleanup; safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
            self._cond.notify_all()
        for worker in busy:  # a run in flight (e.g. the caller was interrupted): its caller gets WorkerDied
            worker.kill()
        for worker in idle:
            worker.close()
        self._spawner.stop()
        if self._on_close is not None:
            self._on_close()


class PooledSandbox:
    """The plumbing every backend shares: a :class:`ForkServerPool` of ``workers`` warm servers and leased uids.

    Backends set ``self.workers``, ``self._uids`` and ``self._pool`` in ``__init__`` and describe their own
    isolation in their module docstring; this class only forwards to the pool.
    """

    workers: int
    _pool: ForkServerPool
    _uids: object | None

    @property
    def uids(self) -> tuple[int, ...]:
        """The unprivileged uids this sandbox's programs run as (empty when not dropping privileges)."""
        return tuple(self._uids.uids) if self._uids is not None else ()

    def warm(self, n: int | None = None) -> None:
        """Start ``n`` workers now (default: all) so the first runs do not pay start-up."""
        self._pool.warm(n)

    def run(self, program: Program) -> ExecutionResult:
        """Run one program; invalid programs raise ``ValueError``, sandbox failures give ``sandbox_error``."""
        return self._pool.run(program)

    def run_many(self, programs: Iterable[Program], *, max_workers: int | None = None
                 ) -> Iterator[tuple[int, ExecutionResult]]:
        """Run a batch on at most ``max_workers`` workers (default: ``workers``); yield ``(index, result)``."""
        return run_batch(self.run, programs, min(max_workers or self.workers, self.workers))

    def _release_uids_and_cgroups(self, cgroups: dict) -> None:
        """Give back the leased uids and remove the per-worker cgroups (called from the pool's teardown)."""
        if self._uids is not None:
            self._uids.release()
        for cg in cgroups.values():
            if cg is not None:
                cg.remove()
        cgroups.clear()

    def close(self) -> None:
        """Stop the workers and release their resources (always safe to call twice)."""
        self._pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
