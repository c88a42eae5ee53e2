"""Cross-process allocation of the unprivileged uids programs run as (one per worker slot).

Two sandboxes must never share a uid: cleanup kills every process of a run's uid, and RLIMIT_NPROC
counts processes per uid across the whole host. Each uid is leased by holding an ``flock`` on a lock
file, so leases are released automatically when the owning process exits.
"""

from __future__ import annotations

import fcntl
import os
import tempfile

FIRST, LAST = 65534, 60000  # allocated downwards: 65534 (nobody), 65533, ...


class UidLease:
    """Uids leased to one sandbox; ``release()`` gives them back."""

    def __init__(self, uids: list[int], fds: list[int]) -> None:
        self.uids, self._fds = uids, fds

    def release(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []


def _lock_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"sdpg-uid-locks-{os.geteuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.geteuid():
        raise OSError(f"refusing to use {path}: not a directory owned by uid {os.geteuid()}")
    return path


def allocate(n: int) -> UidLease:
    """Lease ``n`` uids nobody else (in any process) holds; raises ``RuntimeError`` when none are left."""
    directory = _lock_dir()
    uids: list[int] = []
    fds: list[int] = []
    for uid in range(FIRST, LAST - 1, -1):
        if len(uids) == n:
            break
        fd = os.open(os.path.join(directory, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        uids.append(uid)
        fds.append(fd)
    if len(uids) < n:
        UidLease(uids, fds).release()
        raise RuntimeError(f"no free sandbox uids left in {LAST}..{FIRST}")
    return UidLease(uids, fds)
