"""Hard limits: killable worker pool, timeouts, hostile inputs, no leaked processes, thread safety."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from sdpg_envs.verifiers.math import MathOptions, WorkerPool, default_pool, verify_math


def _children(pid: int) -> set[int]:
    """Live (non-zombie) direct children of ``pid``, read from /proc."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(size=2)
    p.warm()
    yield p
    p.close()


@pytest.mark.timeout(120)
def test_timeout_kills_and_replaces_worker(pool: WorkerPool) -> None:
    before = set(pool.pids())
    start = time.monotonic()
    assert pool.call("sleep", (30,), timeout_s=0.5) == ("timeout", None)
    assert time.monotonic() - start < 1.5
    for pid in before - set(pool.pids()):
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert pool.call("sleep", (0,), timeout_s=60) == ("ok", True)  # the replacement works


@pytest.mark.timeout(180)
def test_slow_sympy_times_out_within_budget(pool: WorkerPool) -> None:
    opts = MathOptions(timeout_s=1.0)
    start = time.monotonic()
    v = verify_math("(x+1)^{9000}", "(x+2)^{9000} - 1", opts, pool=pool)
    elapsed = time.monotonic() - start
    assert v.status == "timeout" and v.score == 0.0, v
    assert elapsed < opts.timeout_s + 1.0, elapsed
    pool.warm()  # the killed worker's replacement imports sympy (a call waits for that only within its timeout)
    assert verify_math("x^2", "x \\cdot x", opts, pool=pool).status == "correct"


HOSTILE = [
    "\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}",
    "\\boxed{10^{10}!}",
    "\\boxed{(10^{10})!!}",
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{x^{10^{10^{10}}}}",
    "\\boxed{" + "{" * 1000 + "1" + "}" * 1000 + "}",
    "\\boxed{" + "(" * 1000 + "1" + ")" * 1000 + "}",
    "1" * 50_000,
    "\\boxed{" + "9" * 50_000 + "}",
    "\\frac{" * 5000,
    "-" * 10_000 + "1",
    "\\sqrt{" * 3000 + "2" + "}" * 3000,
    "\\boxed{" * 2000,
    "$" * 20_000,
    "x" + "^x" * 5000,
    "\\boxed{1/0}",
    "\\boxed{0^{-1}}",
    "\\boxed{\\infty - \\infty}",
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("prediction", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_inputs_get_a_verdict_in_time(pool: WorkerPool, prediction: str) -> None:
    opts = MathOptions(timeout_s=2.0)
    start = time.monotonic()
    v = verify_math("3", prediction, opts, pool=pool)
    assert time.monotonic() - start < opts.timeout_s + 1.0
    assert v.status in {"incorrect", "unparsable", "timeout", "error"} and v.score == 0.0
    assert len(v.reason) < 300


@pytest.mark.timeout(300)
def test_thread_safe_from_many_threads(pool: WorkerPool) -> None:
    cases = [
        ("\\frac{1}{2}", "\\boxed{0.5}"), ("x^2-1", "(x-1)(x+1)"), ("\\sqrt{8}", "2\\sqrt{2}"), ("3", "4"),
        ("[0,1)", "[0,1)"), ("\\sin^2 x", "1-\\cos^2 x"), ("7", "#### 7"), ("\\pi", "3.14"),
    ]  # fmt: skip
    expected = [verify_math(g, p, pool=pool).status for g, p in cases]
    results: dict[int, list[str]] = {}

    def work(k: int) -> None:
        results[k] = [verify_math(g, p, pool=pool).status for g, p in cases]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert all(results[k] == expected for k in range(6))
    assert expected == ["correct", "correct", "correct", "incorrect", "correct", "correct", "correct", "incorrect"]


@pytest.mark.timeout(120)
def test_close_leaves_no_worker_processes() -> None:
    p = WorkerPool(size=2)
    p.warm()
    pids = set(p.pids())
    assert len(pids) == 2 and pids <= _children(os.getpid())
    p.call("sleep", (30,), timeout_s=0.2)
    p.close()
    assert not (pids & _children(os.getpid()))
    with pytest.raises(RuntimeError):
        p.call("sleep", (0,), timeout_s=1)


@pytest.mark.timeout(60)
def test_default_pool_is_shared() -> None:
    assert default_pool() is default_pool()


@pytest.mark.timeout(120)
def test_forked_child_gets_its_own_workers(pool: WorkerPool) -> None:
    """A forked child (e.g. an async vector env) must not talk to, or kill, the parent's workers."""
    parent_pids = set(pool.pids())
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        ok = verify_math("x^2-1", "(x-1)(x+1)", pool=pool).status == "correct"
        ok = ok and not (set(pool.pids()) & parent_pids)
        pool.close()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(child, 0)
    assert answer == b"1"
    assert parent_pids <= set(pool.pids())  # the parent's workers are alive and still ours
    assert verify_math("x^2-1", "(x-1)(x+1)", pool=pool).status == "correct"
