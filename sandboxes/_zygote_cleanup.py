"""Cleanup half of the fork server (``_zygote.py``): kill and reap what a run left, remove its files; stdlib only.

Concatenated in front of ``_zygote.py`` into the one source the jail runs, so every function takes what it needs
as arguments (no module state).
"""

import os
import shutil
import signal
import time


def kill_leftovers(mode, uid, pids_cgroup, protected):
    """SIGKILL every process a run left behind, then reap them all (the caller is their subreaper).

    ``mode``: "all" (every process in this pid namespace/container except ``protected`` and pid 1), "uid" (every
    process of ``uid``, from a helper that switches to it), "tree" (every descendant of the caller).
    """
    if not reap_all() and cgroup_empty(pids_cgroup):
        return
    for _ in range(20):
        if mode == "all":
            _kill_all_but(protected)
        elif mode == "uid":
            _kill_as_uid(uid)
        else:
            _kill_tree()
        if not reap_all() and not (mode == "uid" and _uid_has_processes(uid)):
            return


def cgroup_empty(pids_cgroup):
    """True when the run's pids cgroup holds no process (lets us skip the slower kill paths)."""
    if not pids_cgroup:
        return False
    try:
        with open(os.path.join(pids_cgroup, "pids.current")) as fh:
            return int(fh.read().strip() or 0) == 0
    except (OSError, ValueError):
        return False


def reap_all():
    """Reap every child; return True if any process was still alive at the end."""
    while True:
        try:
            got, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if got == 0:
            time.sleep(0.001)
            try:
                got, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if got == 0:
                return True


def _kill_all_but(protected):
    keep = {1, *protected}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in keep:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def _kill_as_uid(uid):
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _uid_has_processes(uid):
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat("/proc/" + entry).st_uid == uid:
                    return True
            except OSError:
                pass
    return False


def _kill_tree():
    me = os.getpid()
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    for pid in parents:
        p, seen = parents.get(pid), 0
        while p and p != me and seen < 64:
            p, seen = parents.get(p), seen + 1
        if p == me:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def wipe_dirs(bases, keep):
    """Container mode: remove everything the run left in ``bases`` (except ``keep``, the work root)."""
    for base in bases:
        try:
            entries = os.listdir(base)
        except OSError:
            continue
        for name in entries:
            path = os.path.join(base, name)
            if path != keep:
                remove_path(path)


def remove_path(path):
    """Remove a file, link or directory tree; errors (already gone, busy) are ignored."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def clean_shared_tmp(bases, uid):
    """``dir`` mode with a dedicated uid: remove what that uid left in the shared temp dirs."""
    if uid is None:
        return
    for base in bases:
        try:
            entries = os.listdir(base)
        except OSError:
            continue
        for name in entries:
            path = os.path.join(base, name)
            try:
                owned = os.lstat(path).st_uid == uid
            except OSError:
                continue
            if owned:
                remove_path(path)


def remove_ipc(uid):
    """Remove every SysV message queue, shared memory segment and semaphore set ``uid`` owns (they would outlive
    the run in a shared IPC namespace). Done from a helper that switches to ``uid``: the owner may remove them."""
    if uid is None:
        return
    pid = os.fork()
    if pid == 0:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            removers = (("msg", lambda i: libc.msgctl(i, 0, None)), ("shm", lambda i: libc.shmctl(i, 0, None)),
                        ("sem", lambda i: libc.semctl(i, 0, 0, None)))  # IPC_RMID = 0
            for kind, remove in removers:
                for ident in _ipc_ids(kind, uid):
                    remove(ident)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _ipc_ids(kind, uid):
    try:
        with open(f"/proc/sysvipc/{kind}") as fh:
            header, *rows = [line.split() for line in fh]
    except (OSError, ValueError):
        return []
    at_id, at_uid = 1, header.index("uid")
    return [int(row[at_id]) for row in rows if len(row) > at_uid and int(row[at_uid]) == uid]
