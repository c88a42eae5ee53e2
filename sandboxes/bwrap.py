"""``bwrap`` backend: bubblewrap jails with warm fork servers (the default on Linux).

What it isolates:
  * File system: the jail's root is an empty tmpfs with, read-only, only the system dirs the interpreter,
    /bin/sh and gcc/g++ need (``SYSTEM_DIRS``, ``ETC_FILES``) and the interpreter's prefix (its site-packages
    hidden): never the project, /work, shared data, the venv, /home, /root, /opt, /var or /run. A fresh /dev,
    a /proc of the jail's pid namespace with host-wide files masked, no host /sys. Every run gets its own mount
    and IPC namespace with a fresh size-capped tmpfs on /tmp (the work dir is /tmp/work) and /dev/shm, gone when
    the run ends; the worker's cgroup dirs are hidden from it.
  * Network: a private network namespace with no interfaces up; loopback and public addresses fail.
  * Processes: own pid, ipc and uts namespaces; programs run as an unprivileged uid (leased per worker
    slot from 60000-65534 when the caller is root) with no capabilities, ``no_new_privs`` and the seccomp
    filter of ``sandboxes/seccomp.py`` (no ptrace, keyrings, namespaces, bpf, perf ...), in a new session with
    a fresh session keyring and a cleared environment; every process left after the run (daemons, setsid,
    double forks) is SIGKILLed; the jail dies with its parent (``--die-with-parent``). As non-root: a user
    namespace with ``--disable-userns``.
  * Resources: rlimits for CPU, address space, file size, open files and processes; per-worker memory, pids
    and CPU cgroups (v1 or v2) when the cgroup tree is writable; the run's CPU budget counts every process it
    started (orphans included); a wall-clock deadline.

What it does not isolate: the kernel is shared (a kernel exploit escapes); the string hash seed is per
worker, not per run; host-wide load and ``flock`` on the read-only system files are channels between
concurrent runs.

Warm strategy: each worker slot is one jail running a fork server with the interpreter already started
and common stdlib modules imported. A program runs in a child forked from a template process that never held
a request (see ``_zygote.py``), used exactly once, so no data leaks from one run to the next.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable

from sandboxes import cgroups, uids
from sandboxes._common import CLEAN_ENV, PRELOAD, base_python, kernel_config, python_prefix
from sandboxes._forkserver import ZYGOTE_SOURCE, ForkServerPool, PooledSandbox, Worker
from sandboxes.base import Limits

SYSTEM_DIRS = ("/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/include", "/usr/lib32")
"""What the interpreter, /bin/sh and gcc/g++ need (shared libraries, compilers, headers), read-only."""
TOP_LINKS = ("/bin", "/lib", "/lib64", "/lib32", "/sbin")
"""Top-level dirs: re-created as the same symlink (merged /usr) or bound read-only when they are real dirs."""
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives")
"""The dynamic loader's cache and the ``cc``/``c++`` alternatives links; nothing else of /etc."""
MASKED_PROC = ("/proc/keys", "/proc/key-users", "/proc/kallsyms", "/proc/modules", "/proc/timer_list",
               "/proc/sched_debug", "/proc/kcore", "/proc/sysrq-trigger", "/proc/latency_stats", "/proc/vmallocinfo")
"""Host-wide /proc files a run has no use for (replaced by /dev/null); /proc/sys, /proc/bus, /proc/irq,
/proc/fs, /proc/acpi, /proc/scsi are hidden behind empty read-only tmpfs."""
MASKED_PROC_DIRS = ("/proc/sys", "/proc/bus", "/proc/irq", "/proc/fs", "/proc/acpi", "/proc/scsi", "/proc/asound",
                    "/proc/driver", "/proc/tty")


def root_mounts(python: str, extra: Iterable[str] = ()) -> list[str]:
    """bwrap arguments building the jail's root: an empty tmpfs holding only the system dirs, the interpreter's
    prefix (its site-packages hidden) and ``extra`` paths, all read-only; a fresh /dev, /proc (masked) and /tmp.
    Never the host's /home, /root, /work, /sys, /run, /var or /opt."""
    argv: list[str] = []
    made: set[str] = {"/"}

    def bind(src: str, dest: str, *how: str) -> None:
        parents, parent = [], os.path.dirname(dest)
        while parent not in made:  # bwrap would create missing parents 0700: make them traversable
            parents.insert(0, parent)
            made.add(parent)
            parent = os.path.dirname(parent)
        for directory in parents:
            argv.extend(["--perms", "0755", "--dir", directory])
        argv.extend([*how, src, dest])

    for top in TOP_LINKS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            bind(top, top, "--ro-bind")
    for path in (*SYSTEM_DIRS, *ETC_FILES):
        if os.path.lexists(path) and not os.path.islink(path):
            bind(path, path, "--ro-bind")
    prefix = python_prefix()
    if not any(prefix == d or prefix.startswith(d + "/") for d in SYSTEM_DIRS):
        bind(prefix, prefix, "--ro-bind")
    site = os.path.join(prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    if os.path.isdir(site):
        argv += ["--tmpfs", site, "--remount-ro", site]  # installed packages are not part of the sandbox
    python_dir = os.path.dirname(python)
    if not (python.startswith(prefix + "/") or any(python_dir.startswith(d) for d in SYSTEM_DIRS)):
        bind(python, python, "--ro-bind")
    for path in extra:
        bind(path, path, "--ro-bind")
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in MASKED_PROC:
        if os.path.exists(path):
            argv += ["--ro-bind", "/dev/null", path]
    for path in MASKED_PROC_DIRS:
        if os.path.isdir(path):
            argv += ["--tmpfs", path, "--remount-ro", path]
    return argv


class BwrapSandbox(PooledSandbox):
    """Runs programs in bubblewrap jails; see the module docstring for the exact guarantees."""

    name = "bwrap"
    isolated = True

    def __init__(self, limits: Limits | None = None, *, workers: int | None = None, bwrap: str | None = None,
                 python: str | None = None, expose: Iterable[str] = (), use_cgroups: bool = True,
                 preload: Iterable[str] = PRELOAD) -> None:
        """Args:
            limits: default limits for every run (a program may override them).
            workers: concurrent jails (default: CPU count).
            bwrap: path to the bwrap binary (default: found on PATH).
            python: interpreter used for ``command[0] == "python"`` (default: the caller's base CPython).
            expose: extra host paths bound read-only into the jail (nothing but the system dirs and the
                interpreter's prefix is visible otherwise).
            use_cgroups: create per-worker memory/pids cgroups when the tree is writable.
            preload: stdlib modules imported once per worker before any program runs.
        """
        self.limits = limits or Limits()
        self.bwrap = bwrap or shutil.which("bwrap")
        if self.bwrap is None:
            raise RuntimeError("bwrap not found; install bubblewrap (apt-get install bubblewrap)")
        self.python = python or base_python()
        self.expose = tuple(os.path.realpath(p) for p in expose)
        self.preload = list(preload)
        self.workers = workers or os.cpu_count() or 1
        self._use_cgroups = use_cgroups
        self._cgroups: dict[int, cgroups.WorkerCgroups | None] = {}
        self._uids = uids.allocate(self.workers) if os.geteuid() == 0 else None
        self._pool = ForkServerPool(self._start, self.workers, self.name, True, self.limits, self._cleanup)

    def _start(self, slot: int) -> Worker:
        return Worker(*self._launch(slot), slot)

    def _launch(self, slot: int) -> tuple[list[str], dict[str, str]]:
        root = os.geteuid() == 0
        uid = self._uids.uids[slot] if self._uids else None
        if slot not in self._cgroups:
            self._cgroups[slot] = cgroups.create(f"sdpg-bwrap-{os.getpid()}-{id(self):x}-{slot}") \
                if self._use_cgroups else None
        cg = self._cgroups[slot]
        config = {"fs": "mount", "kill": "all", "uid": uid, "gid": uid, "python": self.python,
                  "env": CLEAN_ENV, "preload": self.preload, "cgroups": cg.config() if cg else {}, **kernel_config()}
        argv = [self.bwrap, *root_mounts(self.python, self.expose)]
        for directory in (cg.dirs.values() if cg else ()):
            argv += ["--bind", directory, directory]
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--hostname", "sandbox",
                 "--die-with-parent", "--new-session", "--clearenv", "--chdir", "/"]
        if not root:
            argv += ["--unshare-user", *(["--disable-userns"] if _supports(self.bwrap, "--disable-userns") else [])]
        for key, value in CLEAN_ENV.items():
            argv += ["--setenv", key, value]
        argv += [self.python, "-c", ZYGOTE_SOURCE, json.dumps(config)]
        return argv, dict(CLEAN_ENV)

    def _cleanup(self) -> None:
        self._release_uids_and_cgroups(self._cgroups)



@functools.cache
def _supports(bwrap: str, option: str) -> bool:
    try:
        return option in subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


def probe(bwrap: str | None = None) -> tuple[bool, str]:
    """Whether bwrap can build a jail here (runs ``true`` in one), with a plain reason."""
    path = bwrap or shutil.which("bwrap")
    if path is None:
        return False, "bwrap not installed (apt-get install bubblewrap)"
    argv = [path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-ipc", "--unshare-pid",
            "--unshare-net", "--unshare-uts", "--die-with-parent"]
    if os.geteuid() != 0:
        argv.append("--unshare-user")
    try:
        proc = subprocess.run(argv + ["true"], capture_output=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap failed to start: {exc}"
    if proc.returncode != 0:
        return False, f"bwrap cannot create namespaces here: {proc.stderr.decode(errors='replace').strip()[:200]}"
    return True, f"bubblewrap at {path}; {cgroups.describe()}"
