"""Kernel surface: the seccomp filter, keyrings, namespaces, SysV IPC and covert channels between runs.
Parametrised over every backend (the filter is installed by the fork server, so it holds everywhere)."""

from __future__ import annotations

import platform

import pytest
from attack_programs import token
from sandbox_helpers import py

from sandboxes import Limits

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86_64's")]

SYSCALL = """import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return 'ok' if r != -1 else ctypes.get_errno()
"""
DENIED = {  # name: (call, errno)
    "unshare(CLONE_NEWUSER)": ("sc(272, 0x10000000)", 1), "unshare(CLONE_NEWNET)": ("sc(272, 0x40000000)", 1),
    "clone(CLONE_NEWUSER)": ("sc(56, 0x10000000 | 17, 0, 0, 0, 0)", 1), "setns": ("sc(308, 0, 0)", 1),
    "clone3": ("sc(435, 0, 0)", 38), "ptrace(TRACEME)": ("sc(101, 0, 0, 0, 0)", 1),
    "process_vm_readv": ("sc(310, os.getppid(), 0, 0, 0, 0, 0)", 1), "keyctl": ("sc(250, 0, -3, 0)", 1),
    "add_key": ("sc(248, b'user', b'k', b'v', 1, -3)", 1), "bpf": ("sc(321, 0, 0, 0)", 1),
    "perf_event_open": ("sc(298, 0, 0, -1, -1, 0)", 1), "userfaultfd": ("sc(323, 0)", 1),
    "io_uring_setup": ("sc(425, 1, 0)", 1), "mount": ("sc(165, b'none', b'/tmp', b'tmpfs', 0, 0)", 1),
    "i386 ABI (int 0x80 arch)": ("sc(0x40000000 + 39)", 1),
}


def test_dangerous_syscalls_are_denied_and_ordinary_ones_work(sandbox):
    source = SYSCALL + "".join(f"print({name!r}, {call})\n" for name, (call, _) in DENIED.items()) + \
        "pid = os.fork()\nif pid == 0:\n    os._exit(7)\nprint('fork', os.waitpid(pid, 0)[1] >> 8)\n" \
        "import subprocess, threading\nt = threading.Thread(target=print, args=('thread',))\nt.start()\nt.join()\n" \
        "print(subprocess.run(['sh', '-c', 'echo shell'], capture_output=True, text=True).stdout.strip())\n"
    result = sandbox.run(py(source))
    assert result.ok, result
    got = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines() if " " in line)
    for name, (_, errno) in DENIED.items():
        assert got[name] == str(errno), f"{name}: {got[name]}"
    assert got["fork"] == "7" and "thread" in result.stdout and "shell" in result.stdout


def _plant(tok: str) -> str:
    """Leave ``tok`` in every kernel object that could outlive a run (keyrings, SysV IPC, abstract socket)."""
    return SYSCALL + f"""
tok = {tok!r}.encode()
for ring in (-3, -4, -5):  # session, user, user-session keyrings
    sc(248, b'user', b'sdpg-' + tok, tok, len(tok), ring)
libc.msgget.restype = libc.shmget.restype = ctypes.c_int
q = libc.msgget(0x5D96, 0o1666)
if q >= 0:
    buf = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + len(tok))
    ctypes.memmove(ctypes.addressof(buf), ctypes.byref(ctypes.c_long(1)), ctypes.sizeof(ctypes.c_long))
    ctypes.memmove(ctypes.addressof(buf) + ctypes.sizeof(ctypes.c_long), tok, len(tok))
    libc.msgsnd(q, buf, len(tok), 0o4000)
libc.shmat.restype = ctypes.c_void_p
s = libc.shmget(0x5D97, 4096, 0o1666)
if s >= 0:
    addr = libc.shmat(s, None, 0)
    if addr not in (None, ctypes.c_void_p(-1).value):
        ctypes.memmove(addr, tok, len(tok))
for path in ('/tmp/sdpg-cc', '/dev/shm/sdpg-cc', '/var/tmp/sdpg-cc'):
    try:
        open(path, 'wb').write(tok)
    except OSError:
        pass
print('planted')
"""


LOOK = SYSCALL + """
import socket, time
found = []
libc.msgget.restype = libc.shmget.restype = ctypes.c_int
libc.shmat.restype = ctypes.c_void_p
def look():
    q = libc.msgget(0x5D96, 0)
    if q >= 0:
        buf = ctypes.create_string_buffer(256)
        n = libc.msgrcv(q, buf, 200, 0, 0o4000)
        if n > 0:
            found.append(buf.raw[ctypes.sizeof(ctypes.c_long):ctypes.sizeof(ctypes.c_long) + n])
    s = libc.shmget(0x5D97, 0, 0)
    if s >= 0:
        addr = libc.shmat(s, None, 0o10000)
        if addr not in (None, ctypes.c_void_p(-1).value):
            found.append(ctypes.string_at(addr, 64))
    for path in ('/tmp/sdpg-cc', '/dev/shm/sdpg-cc', '/var/tmp/sdpg-cc', '/proc/keys'):
        try:
            found.append(open(path, 'rb').read())
        except OSError:
            pass
    for ring in (-3, -4, -5):
        buf = ctypes.create_string_buffer(4096)
        if libc.syscall(250, 11, ctypes.c_long(ring), buf, 4096) > 0:  # KEYCTL_READ: the ring's key ids
            found.append(buf.raw)
for _ in range(LOOPS):
    look()
    time.sleep(0.05)
print(repr(b'|'.join(found)))
"""


def test_nothing_outlives_a_run_on_the_same_worker(sandbox):
    tok = token()
    for _ in range(2 * sandbox.workers):  # each worker gets a planter, then a looker
        assert sandbox.run(py(_plant(tok))).ok
    for _ in range(2 * sandbox.workers):
        result = sandbox.run(py(LOOK.replace("LOOPS", "1")))
        assert result.ok, result
        if sandbox.isolated:
            assert tok not in result.stdout, f"a later run read what an earlier one left: {result.stdout[:300]}"


def test_no_covert_channel_between_concurrent_runs(sandbox):
    if not sandbox.isolated:
        pytest.skip("the process backend shares /tmp and the IPC namespace with the host (documented)")
    tok = token()
    roomy = Limits(wall_s=20.0, cpu_s=5.0)
    planter = py(_plant(tok) + "import time\ntime.sleep(2)\n", limits=roomy)
    looker = py(LOOK.replace("LOOPS", "40"), limits=roomy)
    results = dict(sandbox.run_many([planter, looker], max_workers=2))
    assert results[0].ok and results[1].ok, results
    assert tok not in results[1].stdout, f"a concurrent run received data: {results[1].stdout[:300]}"


def test_the_program_cannot_signal_trace_or_rewrite_its_server(sandbox):
    """The fork server and template run under another uid (or are non-dumpable): a run cannot take them over."""
    if not sandbox.uids:
        pytest.skip("needs a sandbox that drops privileges (root)")
    source = ("import os\npid, touched = os.getppid(), []\nwhile pid > 1:\n"
              "    for how in ('kill', 'mem'):\n        try:\n"
              "            os.kill(pid, 0) if how == 'kill' else open(f'/proc/{pid}/mem', 'r+b').close()\n"
              "            touched.append((pid, how))\n        except OSError:\n            pass\n"
              "    pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
              "print('touched', touched)\n")
    result = sandbox.run(py(source))
    assert result.ok and result.stdout == "touched []\n", result
