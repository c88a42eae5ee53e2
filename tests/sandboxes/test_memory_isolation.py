"""Verdict integrity against programs that read memory: a run holds only its own request, the candidate never
holds its tests, the nonce or another run's data. Parametrised over every backend (the ``sandbox`` fixture)."""

from __future__ import annotations

import pytest
from attack_programs import SCANNERS, token
from sandbox_helpers import py

from sandboxes import Limits
from sdpg_envs.types import Problem
from sdpg_envs.verifiers.code import CodeVerifier

pytestmark = pytest.mark.timeout(180)
ROOMY = Limits(wall_s=30.0, cpu_s=10.0, memory_mb=512)  # scans are slow on a loaded machine; no timing here
SCAN_BOTH = "print(sorted(set(scan_mem() + scan_objects())))\n"


def test_a_run_never_holds_another_runs_data_or_its_unread_stdin(sandbox):
    earlier = [token() for _ in range(3)]
    reader = "import sys\ndata = sys.stdin.read() + open('data.txt').read()\nprint(data)\n"
    for _ in range(2 * sandbox.workers):  # every worker runs one, so the scans below follow one on each worker
        done = sandbox.run(py(reader, stdin=earlier[0], files={"data.txt": earlier[1]}, limits=ROOMY))
        assert done.ok and earlier[0] in done.stdout, done
    own = token()
    scan = SCANNERS + SCAN_BOTH + "import sys\nsys.stdin.read()\n" + SCAN_BOTH
    for _ in range(2 * sandbox.workers):
        result = sandbox.run(py(scan, stdin=f"{own}\n" * 1000, files={"mine.txt": earlier[2]}, limits=ROOMY))
        assert result.ok, result
        before, after = result.stdout.splitlines()
        assert earlier[0] not in result.stdout and earlier[1] not in result.stdout
        assert own not in before, "the program held its stdin before reading it"
        assert own in after and earlier[2] in after, "control: the scanners must find data the program did read"


def _stubs(tok: str) -> dict[str, str]:
    call_time = "def secret(n):\n    hits = scan_mem() + scan_objects() + scan_mem(os.getppid())\n" \
                "    return hits[0] if hits else None\n"
    at_import = "def secret(n):\n    return FOUND[0] if FOUND else None\n"
    return {
        "raw /proc/self/mem scan": SCANNERS + "FOUND = scan_mem()\n" + at_import,
        "gc, frames and modules": SCANNERS + "FOUND = scan_objects()\n" + at_import,
        "the judge's memory": SCANNERS + "import os\nFOUND = scan_mem(os.getppid())\n" + at_import,
        "scans during the call": SCANNERS + "import os\n" + call_time,
        "control (token in its own source)": SCANNERS + f"HINT = {tok!r}\nFOUND = scan_mem()\n" + at_import,
        **{name: SCANNERS + source + at_import for name, source in HELD_OUT.items()},
    }


# Written after the fix and never tuned against: other processes' memory, /proc text files, every open fd.
FIND = """import os, re
FOUND = []
def find(data):
    FOUND.extend(re.findall(r'sdpgx[0-9a-f]{16}', data.decode('latin-1')))
PIDS = [p for p in os.listdir('/proc') if p.isdigit()]
"""
HELD_OUT = {
    "memory of every process": FIND + "for p in PIDS:\n    if int(p) != os.getpid():\n        FOUND += scan_mem(p)\n",
    "cmdline, environ, status of every process": FIND + """
for p in PIDS:
    for f in ('cmdline', 'environ', 'status'):
        try:
            find(open(f'/proc/{p}/{f}', 'rb').read())
        except OSError:
            pass
""",
    "every fd of every process": FIND + """
for p in PIDS:
    try:
        fds = os.listdir(f'/proc/{p}/fd')
    except OSError:
        continue
    for fd in fds:
        try:
            find(os.read(os.open(f'/proc/{p}/fd/{fd}', os.O_RDONLY | os.O_NONBLOCK), 1 << 20))
        except OSError:
            pass
""",
}


def test_the_candidate_cannot_read_its_tests_or_earlier_reports(sandbox):
    tok = token()
    problem = Problem("secret", "", metadata={"tests": f"assert secret(7) == {tok!r}\n", "timeout_s": 8.0})
    verifier = CodeVerifier(sandbox, timeout_s=8.0)
    wrong = verifier.batch([problem] * 2 * sandbox.workers, ["```python\ndef secret(n):\n    return 'no'\n```"] *
                           2 * sandbox.workers)  # failure reports holding the expected value, on every worker
    assert all(r.status == "wrong_answer" and tok in r.feedback for r in wrong)
    stubs = _stubs(tok)
    results = verifier.batch([problem] * len(stubs), [f"```python\n{s}\n```" for s in stubs.values()])
    for (name, _), result in zip(stubs.items(), results):
        if name.startswith("control"):
            assert result.status == "passed", f"the scanner itself is broken: {result.feedback}"
        else:
            assert result.status != "passed" and result.score == 0.0, f"{name} read the tests: {result.feedback}"
