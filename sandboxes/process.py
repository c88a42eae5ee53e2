"""``process`` backend: the same limits as ``bwrap`` without namespaces (for machines without bubblewrap).

Every result says ``isolated=False`` and the first use logs a warning.

What it does: warm fork servers (one per worker slot); each program runs in a freshly forked child (from a
template that never held a request) in a new session, with a cleared environment, the seccomp filter of
``sandboxes/seccomp.py``, a fresh session keyring, rlimits (CPU, address space, file size, open files,
processes), per-worker memory/pids/CPU cgroups where writable (the CPU budget then counts every process of
the run), a wall-clock deadline, output caps, and a fresh work dir removed after the run. When the caller is
root the program runs as a dedicated unprivileged uid (leased per worker slot from 60000-65534, see ``uids``)
with no capabilities and ``no_new_privs``: it cannot write the caller's files, and afterwards every process
of that uid is SIGKILLed and the files it left in /tmp, /var/tmp and /dev/shm and its SysV IPC objects are
removed. When the interpreter is not reachable by that uid (pyenv under a 0700 /root), a hard-linked mirror
of the base CPython's stdlib is used instead.

What it does not isolate: the network (loopback and public addresses are reachable), the host's
process table and world-writable directories (writes there are cleaned up only when running as a
dedicated uid), and everything readable by that uid. As a non-root caller the program runs with the
caller's own uid and leftovers are found by walking the process tree (a daemon that escapes the
tree, which the template's subreaper role makes hard but not impossible, is not found). Use ``bwrap``
or ``docker`` for untrusted code.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable

from sandboxes import cgroups, uids
from sandboxes._common import CLEAN_ENV, PRELOAD, base_python, kernel_config
from sandboxes._forkserver import ZYGOTE_SOURCE, ForkServerPool, PooledSandbox, Worker
from sandboxes._pymirror import python_mirror, reachable_by
from sandboxes.base import ExecutionResult, Limits, Program

log = logging.getLogger(__name__)
SHARED_TMP = ["/tmp", "/var/tmp", "/dev/shm"]
_warned = False


class ProcessSandbox(PooledSandbox):
    """Runs programs as plain (limited) processes; NOT isolated — see the module docstring."""

    name = "process"
    isolated = False

    def __init__(self, limits: Limits | None = None, *, workers: int | None = None, python: str | None = None,
                 drop_privileges: bool = True, use_cgroups: bool = True, preload: Iterable[str] = PRELOAD) -> None:
        """Args:
            limits: default limits for every run (a program may override them).
            workers: concurrent fork servers (default: CPU count).
            python: interpreter for ``command[0] == "python"`` (default: the caller's base CPython).
            drop_privileges: when root, run programs as a dedicated unprivileged uid.
            use_cgroups: create per-worker memory/pids cgroups when the tree is writable.
            preload: stdlib modules imported once per worker before any program runs.
        """
        self.limits = limits or Limits()
        self.workers = workers or os.cpu_count() or 1
        self.drop = drop_privileges and os.geteuid() == 0
        self.python = python or base_python()
        self.preload = list(preload)
        self._env = dict(CLEAN_ENV)
        if self.drop and not reachable_by(uids.FIRST, self.python):
            self.python = python_mirror()
            self._env["LD_LIBRARY_PATH"] = os.path.join(os.path.dirname(os.path.dirname(self.python)), "lib")
        self._root = tempfile.mkdtemp(prefix="sdpg-process-")
        os.chmod(self._root, 0o711)
        weakref.finalize(self, shutil.rmtree, self._root, True)  # removed even if close() never runs
        self._use_cgroups = use_cgroups
        self._cgroups: dict[int, cgroups.WorkerCgroups | None] = {}
        self._uids = uids.allocate(self.workers) if self.drop else None
        self._pool = ForkServerPool(self._start, self.workers, self.name, False, self.limits, self._cleanup)

    def _start(self, slot: int) -> Worker:
        return Worker(*self._launch(slot), slot)

    def _launch(self, slot: int) -> tuple[list[str], dict[str, str]]:
        uid = self._uids.uids[slot] if self._uids else None
        if slot not in self._cgroups:
            self._cgroups[slot] = cgroups.create(f"sdpg-process-{os.getpid()}-{id(self):x}-{slot}") \
                if self._use_cgroups else None
        cg = self._cgroups[slot]
        config = {"fs": "dir", "kill": "uid" if uid is not None else "tree", "uid": uid, "gid": uid,
                  "python": self.python, "env": self._env, "preload": self.preload, "work_root": self._root,
                  "shared_tmp": SHARED_TMP, "die_with_parent": True, "cgroups": cg.config() if cg else {},
                  **kernel_config()}
        return [self.python, "-c", ZYGOTE_SOURCE, json.dumps(config)], dict(self._env)

    def _cleanup(self) -> None:
        self._release_uids_and_cgroups(self._cgroups)
        shutil.rmtree(self._root, ignore_errors=True)

    def run(self, program: Program) -> ExecutionResult:
        """Run one program (not isolated); invalid programs raise ``ValueError``."""
        global _warned
        if not _warned:
            _warned = True
            log.warning("sandboxes: the 'process' backend does NOT isolate programs from the host "
                        "(no namespaces); use 'bwrap' or 'docker' for untrusted code")
        return self._pool.run(program)


def probe() -> tuple[bool, str]:
    """The process backend works wherever fork and Linux /proc exist; the reason says what it lacks."""
    if not hasattr(os, "fork") or not os.path.isdir("/proc"):
        return False, "needs a Linux host (fork and /proc)"
    who = "dedicated unprivileged uid" if os.geteuid() == 0 else "the caller's uid"
    return True, f"not isolated (no namespaces, network open); runs as {who}; {cgroups.describe()}"
