"""Attack programs shared by the containment and verdict-integrity suites (sources run inside sandboxes).

Each scanner looks for tokens ``sdpgx`` + 16 hex digits anywhere it can reach, also inside base64 runs (requests
travel base64-encoded). A token found means the program read data it was never given.
"""

from __future__ import annotations

import secrets

SCANNERS = r'''
import base64, ctypes, gc, re, sys

TOKEN = re.compile(rb"sdpgx[0-9a-f]{16}")


def _tokens(data):
    found = TOKEN.findall(data)
    for run in re.findall(rb"[A-Za-z0-9+/]{28,}={0,2}", data):
        for shift in range(4):
            try:
                chunk = run[shift:]
                found += TOKEN.findall(base64.b64decode(chunk[: len(chunk) // 4 * 4]))
            except Exception:
                pass
    return [t.decode() for t in found]


def scan_mem(pid="self"):
    """Raw scan of every readable mapping through /proc/PID/mem (heap, stacks, anonymous memory)."""
    try:
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: make our own /proc entries readable
    except Exception:
        pass
    found = []
    try:
        with open(f"/proc/{pid}/maps") as fh:
            regions = [line.split() for line in fh]
        with open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for region in regions:
                lo, hi = (int(x, 16) for x in region[0].split("-"))
                if region[1][0] != "r" or hi - lo > 1 << 28 or (len(region) > 5 and region[5].startswith("/usr")):
                    continue
                try:
                    mem.seek(lo)
                    found += _tokens(mem.read(hi - lo))
                except (OSError, ValueError, OverflowError):
                    pass
    except OSError:
        pass
    return found


def scan_objects():
    """Every str/bytes reachable from the gc's objects and from the frame stack (locals and globals)."""
    found, seen = [], set()
    def walk(o, depth):
        if id(o) in seen or depth > 4:
            return
        seen.add(id(o))
        if isinstance(o, (str, bytes, bytearray)):
            if len(o) >= 21:
                found.extend(_tokens(o.encode("utf-8", "replace") if isinstance(o, str) else bytes(o)))
        elif isinstance(o, dict):
            for v in list(o.values()):
                walk(v, depth + 1)
        elif isinstance(o, (list, tuple, set, frozenset)):
            for v in list(o):
                walk(v, depth + 1)
    for o in gc.get_objects():
        walk(o, 0)
    frame = sys._getframe()
    while frame is not None:
        walk(dict(frame.f_locals), 0)
        walk(frame.f_globals, 0)
        frame = frame.f_back
    for module in list(sys.modules.values()):
        walk(getattr(module, "__dict__", {}), 0)
    return found
'''


def token() -> str:
    """A fresh value no program can compute."""
    return "sdpgx" + secrets.token_hex(8)
