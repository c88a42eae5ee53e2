"""Process accounting shared by the in-jail harness scripts (stdlib only).

``programs._script`` puts this source in front of ``_harness_runner.py`` and ``_harness_c.py``: each script
runs alone in the sandbox and imports nothing from the work dir, so the shared code travels inside it. Uses
``TICK`` (clock ticks per second), which each script defines.
"""

import os
import signal
import time


def descendants(root):
    """``{pid: CPU ticks}`` of every live process below ``root`` (own time plus its reaped children's). With
    ``root`` a subreaper, children nobody waits for and orphans stay below it, so none escapes the count. Walks
    ``/proc/PID/task/TID/children`` (cost: the tree's size); a full ``/proc`` scan where that file is missing."""
    below, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                    kids = [int(x) for x in fh.read().split()]
            except FileNotFoundError:
                return _descendants_by_scan(root)
            except (OSError, ValueError):
                continue
            for kid in kids:
                if kid not in below:
                    below[kid] = _ticks(kid)
                    todo.append(kid)
    return {pid: ticks for pid, ticks in below.items() if ticks is not None}


def _ticks(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return sum(int(x) for x in fh.read().rsplit(b")", 1)[1].split()[11:15])
    except (OSError, ValueError):
        return None


def _descendants_by_scan(root):
    parent, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                parent[int(entry)], ticks[int(entry)] = int(fields[1]), sum(int(x) for x in fields[11:15])
            except (OSError, IndexError, ValueError):
                pass
    below = {}
    for pid in parent:
        p, hops = parent.get(pid), 0
        while p and p != root and hops < 128:
            p, hops = parent.get(p), hops + 1
        if p == root:
            below[pid] = ticks[pid]
    return below


def kill_descendants(root):
    """SIGKILL every process below ``root`` and reap the ones that are its children, until none is left."""
    for _ in range(50):
        below = descendants(root)
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not below:
            return
        time.sleep(0.002)
