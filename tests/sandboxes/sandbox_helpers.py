"""Process-table and host-filesystem checks used by the containment suite."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sandboxes import Program, python_program

SECRET = "sdpg-test-secret-7f3a"
REPO = Path(__file__).resolve().parents[2]
SERVER_MARKERS = (b"sdpg-sandbox-server", b"sdpg-sandbox-idle")


def leftover_processes(uids: set[int]) -> list[str]:
    """Host processes owned by one of ``uids`` that are not a fork server or a container's idle init."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid not in uids:
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and not any(m in cmdline for m in SERVER_MARKERS):
            found.append(f"{entry}: {cmdline[:80]!r}")
    return found


def assert_no_leftovers(sandbox, timeout_s: float = 3.0) -> None:
    """No process of the sandbox's uids is alive except its servers (process table check)."""
    uids = set(sandbox.uids)
    assert uids, "the test needs a sandbox that drops privileges (run as root)"
    deadline = time.monotonic() + timeout_s
    while (left := leftover_processes(uids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes left behind: {left}"


def host_snapshot() -> set[str]:
    """Names directly under the host's /tmp, /var/tmp, /dev/shm and the repo root."""
    names = set()
    for base in ("/tmp", "/var/tmp", "/dev/shm", str(REPO)):
        try:
            names |= {f"{base}/{n}" for n in os.listdir(base)}
        except OSError:
            pass
    return names


def py(source: str, **kw) -> Program:
    return python_program(source, **kw)
