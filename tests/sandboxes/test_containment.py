"""Adversarial containment suite, run against every available backend (bwrap, process, docker)."""

from __future__ import annotations

import os
import resource
import socket
import sys
import uuid
from pathlib import Path

import pytest
from sandbox_helpers import REPO, SECRET, assert_no_leftovers, host_snapshot, py

from sandboxes import Status

pytestmark = pytest.mark.timeout(60)


def _token() -> str:
    return f"sdpg-escape-{uuid.uuid4().hex[:10]}"


def _no_trace(token: str) -> None:
    assert not [n for n in host_snapshot() if token in n], f"{token} appeared on the host"


def _still_works(sandbox) -> None:
    result = sandbox.run(py("print(6 * 7)"))
    assert result.ok and result.stdout == "42\n", result


def test_infinite_loop_times_out(sandbox):
    result = sandbox.run(py("while True:\n    pass\n"))
    assert result.status is Status.TIMEOUT
    assert result.wall_s < sandbox.limits.wall_s + 2
    assert_no_leftovers(sandbox)


def test_sleep_forever_times_out(sandbox):
    from sandboxes import Limits

    result = sandbox.run(py("import time\ntime.sleep(10**6)\n", limits=Limits(wall_s=1.0)))
    assert result.status is Status.TIMEOUT
    assert 0.9 < result.wall_s < 3.0
    assert_no_leftovers(sandbox)


def test_fork_bomb_is_contained(sandbox):
    source = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = sandbox.run(py(source))
    assert result.status in (Status.TIMEOUT, Status.KILLED_BY_SIGNAL, Status.MEMORY_LIMIT)
    assert_no_leftovers(sandbox)
    assert os.fork  # the host can still start processes:
    _still_works(sandbox)


def test_huge_allocation_hits_memory_limit(sandbox):
    result = sandbox.run(py("x = bytearray(8 << 30)\nprint(len(x))\n"))
    assert result.status is Status.MEMORY_LIMIT, result
    assert result.stdout == ""
    assert_no_leftovers(sandbox)


def test_huge_file_write_is_limited(sandbox):
    token = _token()
    source = (f"with open('{token}', 'wb') as f:\n"
              "    for _ in range(2048):\n        f.write(b'x' * (1 << 20))\nprint('wrote 2 GB')\n")
    result = sandbox.run(py(source))
    assert "wrote 2 GB" not in result.stdout
    assert result.exit_code != 0 or result.status is not Status.OK
    assert "File too large" in result.stderr or "No space left" in result.stderr or result.signal is not None
    _no_trace(token)
    assert_no_leftovers(sandbox)


def test_flooding_stdout_hits_output_limit(sandbox):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    flood = "import sys\nchunk = 'y' * (1 << 20)\nfor _ in range(500):\n    sys.stdout.write(chunk)\n"
    result = sandbox.run(py(flood))
    assert result.status is Status.OUTPUT_LIMIT
    assert result.stdout_truncated and len(result.stdout) == sandbox.limits.max_output_bytes
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"parent memory grew by {grown_mb:.0f} MB"
    assert_no_leftovers(sandbox)


def test_writes_outside_the_work_dir_fail(sandbox):
    token = _token()
    targets = [f"/tmp/{token}", f"/var/tmp/{token}", str(REPO / token), f"/{token}", f"/etc/{token}"]
    source = ("import sys\nok = []\n"
              f"for path in {targets!r}:\n"
              "    try:\n        open(path, 'w').write('pwned')\n        ok.append(path)\n"
              "    except OSError:\n        pass\n"
              "print('WROTE', ok)\nopen('inside.txt', 'w').write('fine')\nprint(open('inside.txt').read())\n")
    result = sandbox.run(py(source))
    assert result.ok and result.stdout.endswith("fine\n"), result
    if sandbox.isolated:
        # only the jail's private /tmp is writable; the rest of the root is read-only
        assert f"WROTE ['/tmp/{token}']" in result.stdout or "WROTE []" in result.stdout
    else:
        assert str(REPO / token) not in result.stdout and f"/etc/{token}" not in result.stdout
    _no_trace(token)
    assert_no_leftovers(sandbox)


def test_network_is_unreachable(sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    source = (f"import socket\nfor addr in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
              "    s = socket.socket()\n    s.settimeout(1.0)\n"
              "    try:\n        s.connect(addr)\n        print('CONNECTED', addr)\n"
              "    except OSError as e:\n        print('blocked', addr[0], type(e).__name__)\n")
    try:
        result = sandbox.run(py(source))
    finally:
        server.close()
    assert result.ok, result
    if sandbox.isolated:
        assert "CONNECTED" not in result.stdout and result.stdout.count("blocked") == 3
    else:
        assert result.isolated is False  # the process backend says it does not isolate the network
    assert_no_leftovers(sandbox)


def test_parent_environment_secret_is_absent(sandbox):
    assert os.environ.get("SDPG_TEST_SECRET") == SECRET
    source = ("import os\nprint(sorted(os.environ))\n"
              f"print(any('{SECRET}' in open(f'/proc/{{p}}/environ', errors='replace').read()\n"
              "          for p in os.listdir('/proc') if p.isdigit() and os.access(f'/proc/{p}/environ', os.R_OK)))\n")
    result = sandbox.run(py(source))
    assert result.ok, result
    assert "SDPG_TEST_SECRET" not in result.stdout and SECRET not in result.stdout
    assert result.stdout.splitlines()[-1] == "False"


def test_daemons_are_killed_with_the_run(sandbox):
    source = ("import os, time\n"
              "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1000)\n"
              "    os._exit(0)\n"
              "os.wait()\nprint('parent done')\n")
    result = sandbox.run(py(source))
    assert result.ok and result.stdout == "parent done\n", result
    assert result.wall_s < 3
    assert_no_leftovers(sandbox)


def test_killing_the_parent_is_harmless(sandbox):
    source = ("import os, signal\nfor pid in (os.getppid(), 1):\n"
              "    try:\n        os.kill(pid, signal.SIGKILL)\n        print('killed', pid)\n"
              "    except OSError as e:\n        print('denied', pid, e.errno)\n")
    result = sandbox.run(py(source))
    assert result.status in (Status.OK, Status.SANDBOX_ERROR)
    assert_no_leftovers(sandbox)
    _still_works(sandbox)


def test_sigterm_ignoring_children_are_killed(sandbox):
    from sandboxes import Limits

    source = ("import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "for _ in range(3):\n    if os.fork() == 0:\n        time.sleep(1000)\n"
              "time.sleep(1000)\n")
    result = sandbox.run(py(source, limits=Limits(wall_s=1.0)))
    assert result.status is Status.TIMEOUT
    assert_no_leftovers(sandbox)


def _fingerprint(paths: list[str]) -> str:
    """Source printing, for each path, a digest of what is there (a dir's names, a file's first 4 KiB) or '-'."""
    return ("import hashlib, os\nfor path in " + repr(paths) + ":\n"
            "    try:\n"
            "        data = '\\n'.join(sorted(os.listdir(path))).encode() if os.path.isdir(path) else "
            "open(path, 'rb').read(4096)\n"
            "    except OSError:\n        data = b''\n"
            "    print(path, hashlib.sha256(data).hexdigest()[:16] if data else '-')\n")


def test_host_files_are_not_visible(sandbox, shared_data_dir):
    """Reconnaissance: the project, its venv, the shared datasets, home dirs, host /sys (NICs, sibling cgroups),
    /etc and host-wide /proc files: nothing the jail shows may be the host's (compared by content)."""
    targets = [str(REPO), str(REPO / "pyproject.toml"), str(shared_data_dir), "/home", "/work", "/opt", "/var",
               "/run", "/etc", "/etc/passwd", "/etc/hostname", "/sys/class/net", "/sys/fs/cgroup",
               "/sys/fs/cgroup/memory", "/sys/devices/system/cpu", "/proc/keys", "/proc/sys/kernel/hostname",
               str(Path.home()), "/usr/local"]
    targets += [sys.prefix] if sys.prefix != sys.base_prefix else []  # the venv
    source = _fingerprint(targets) + "import json, math, ctypes, sqlite3, decimal\nprint('stdlib ok')\n"
    result = sandbox.run(py(source))
    assert result.ok and result.stdout.endswith("stdlib ok\n"), result
    if sandbox.isolated:
        ns: dict = {}
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()) as host:
            exec(_fingerprint(targets), ns)
        host_view = dict(line.split(" ", 1) for line in host.getvalue().splitlines())
        jail_view = dict(line.split(" ", 1) for line in result.stdout.splitlines()[:-1])
        leaked = [p for p in targets if jail_view[p] != "-" and jail_view[p] == host_view[p]]
        assert not leaked, f"host paths visible in the jail: {leaked}"


CPU_DODGES = {
    "children never waited for": "import os, time\nfor _ in range(2):\n    if os.fork() == 0:\n"
                                 "        while True:\n            pass\ntime.sleep(60)\n",
    "an orphaned grandchild": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                              "        while True:\n            pass\n    os._exit(0)\nos.wait()\ntime.sleep(60)\n",
}


@pytest.mark.parametrize("dodge", list(CPU_DODGES))
def test_cpu_budget_counts_every_process_of_the_run(sandbox, dodge):
    from sandboxes import Limits

    # 0.3 s of CPU in all: below any one process's RLIMIT_CPU (1 s), so only the run's CPU account can end it
    result = sandbox.run(py(CPU_DODGES[dodge], limits=Limits(wall_s=60.0, cpu_s=0.3, max_processes=32)))
    assert result.status is Status.TIMEOUT, result
    assert result.cpu_s is not None and result.cpu_s >= 0.3, result
    assert result.wall_s < 55.0, "ended by the wall deadline: the CPU of the other processes was not counted"
    assert_no_leftovers(sandbox)


def test_out_of_memory_kills_the_program_not_the_server(sandbox):
    """Processes that together exceed the memory cap: the OOM killer picks them, not the server or template, so
    the run never ends as ``sandbox_error`` (which must not be a way to dodge a zero reward)."""
    source = """import os, time
for _ in range(6):
    if os.fork() == 0:
        x = bytearray(300 << 20)
        for i in range(0, len(x), 4096):
            x[i] = 1
        time.sleep(5)
        os._exit(0)
for _ in range(6):
    os.wait()
print('survived')
"""
    result = sandbox.run(py(source))
    assert result.status is not Status.SANDBOX_ERROR, result
    _still_works(sandbox)
    assert_no_leftovers(sandbox)
