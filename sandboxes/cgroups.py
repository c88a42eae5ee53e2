"""Per-worker memory, pids and CPU-accounting cgroups (v1 or v2), created under the caller's own cgroup when writable.

The CPU account (v1 ``cpuacct.usage``, v2 ``cpu.stat`` ``usage_usec``) counts every process of a run, including
children it never waits for and orphans, until the fork server kills them after the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

ROOT = "/sys/fs/cgroup"


@dataclass
class WorkerCgroups:
    """Cgroup dirs for one worker slot; ``config()`` is what the fork server needs."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict:
        procs = [os.path.join(d, "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]
        return {"version": self.version, **self.dirs, "procs": procs}

    def remove(self) -> None:
        """Remove the dirs (kill anything left first); errors are ignored, it is cleanup."""
        for directory in dict.fromkeys(self.dirs.values()):
            for _ in range(50):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    _kill_members(directory)
                    time.sleep(0.02)


def _kill_members(directory: str) -> None:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as fh:
            pids = [int(line) for line in fh if line.strip()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for ``controller`` ("" = the v2 hierarchy)."""
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, names, path = line.rstrip("\n").split(":", 2)
                if controller in names.split(","):
                    return path
    except OSError:
        return None
    return None


def _v1_dir(controller: str, name: str) -> str | None:
    base_root = os.path.join(ROOT, controller)
    own = _own_path(controller)
    if own is None or not os.path.exists(os.path.join(base_root, "cgroup.procs")):
        return None
    target = os.path.join(base_root + own, name)
    try:
        os.makedirs(target, exist_ok=True)
    except OSError:
        return None
    return target if os.access(os.path.join(target, "cgroup.procs"), os.W_OK) else None


def _v2_dir(name: str) -> str | None:
    if not os.path.exists(os.path.join(ROOT, "cgroup.controllers")):
        return None
    own = _own_path("")
    if own is None:
        return None
    parent = ROOT + own
    try:
        with open(os.path.join(parent, "cgroup.subtree_control"), "w") as fh:
            fh.write("+memory +pids")
    except OSError:
        pass
    target = os.path.join(parent, name)
    try:
        os.makedirs(target, exist_ok=True)
    except OSError:
        return None
    if not os.path.exists(os.path.join(target, "memory.max")):
        os.rmdir(target)
        return None
    return target


def _hybrid_cpu_dir(name: str) -> str | None:
    """A v1 host's cgroup2 hierarchy (``unified``): its ``cpu.stat`` counts CPU without any controller (v1
    ``cpuacct`` may be mounted yet count nothing, as in some VMs)."""
    own = _own_path("")
    root = os.path.join(ROOT, "unified")
    if own is None or not os.path.exists(os.path.join(root, "cgroup.procs")):
        return None
    target = os.path.join(root + own, name)
    try:
        os.makedirs(target, exist_ok=True)
    except OSError:
        return None
    if not os.path.exists(os.path.join(target, "cpu.stat")):
        os.rmdir(target)
        return None
    return target


def create(name: str) -> WorkerCgroups | None:
    """Create memory+pids(+cpu) cgroups named ``name`` for one worker, or None when the tree is not writable."""
    if os.environ.get("SDPG_SANDBOX_NO_CGROUPS"):
        return None
    v2 = _v2_dir(name)
    if v2 is not None:
        return WorkerCgroups(2, {"memory": v2, "pids": v2, "cpu": v2})  # cpu.stat exists in every v2 cgroup
    dirs = {kind: d for kind in ("memory", "pids") if (d := _v1_dir(kind, name)) is not None}
    if dirs and (cpu := _hybrid_cpu_dir(name) or _v1_dir("cpuacct", name)) is not None:
        dirs["cpu"] = cpu
    return WorkerCgroups(1, dirs) if dirs else None


def describe() -> str:
    """One line saying which cgroup limits are available here."""
    probe = create(f"sdpg-probe-{os.getpid()}")
    if probe is None:
        return "no writable cgroup tree (rlimits only)"
    kinds = "+".join(sorted(probe.dirs))
    probe.remove()
    return f"cgroup v{probe.version} {kinds}"
