"""sdpg C/C++ test harness. Runs inside the sandbox as ``python _sdpg_c.py``; standard library only.

Reads its config (nonce, tests, limits) from stdin, marks itself non-dumpable and a subreaper, compiles
``solution.c`` or ``solution.cpp`` with gcc/g++ (compile and link as separate steps so every diagnostic names
only ``solution.*`` files, never temp paths), then runs the binary once per test with the test's stdin, under
its own CPU/address-space/file-size limits, and compares stdout. A test's CPU is that of every process it
started (children never waited for and orphans included); all of them are killed when the test ends. The
binary is a separate exec'd process: it never holds the nonce, cannot read this process's memory, and its
output goes to files, so it cannot forge the one ``@@sdpg-result <nonce> <json>`` line this harness prints.
"""
# ruff: noqa: F821 - descendants, kill_descendants come from _harness_procs.py, put in front of this file

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

sys.path[:] = [p for p in sys.path if p not in ("", ".") and os.path.abspath(p) != os.getcwd()]  # no work-dir imports
PATH = "/usr/local/bin:/usr/bin:/bin"
ENV = {"PATH": PATH, "LC_ALL": "C", "LANG": "C", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
LANGS = {
    "c": ("gcc", "solution.c", ["-std=gnu11"], ["-lm"]),
    "cpp": ("g++", "solution.cpp", ["-std=gnu++17"], ["-lm"]),
}
_DIAG = re.compile(r"^(solution\.\w+):(\d+):(\d+): (?:fatal )?error: (.*)$", re.M)
TICK = os.sysconf("SC_CLK_TCK")
SIGNALS = {4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 24: "SIGXCPU",
           25: "SIGXFSZ"}


def _no_dump():
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    except Exception:  # noqa: BLE001 - best effort; the nonce still guards the verdict
        pass


def clip(text, limit):
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compile_program(cfg):
    compiler, source, std, libs = LANGS[cfg["language"]]
    exe = shutil.which(compiler, path=PATH)
    if exe is None:
        return {"ok": False, "sandbox_error": f"{compiler} is not installed in the sandbox"}
    flags = ["-O2", "-pipe", "-fdiagnostics-color=never", "-fdiagnostics-urls=never",
             "-fno-diagnostics-show-line-numbers", "-fmax-errors=5", *std, *cfg.get("flags", [])]
    steps = [[exe, *flags, "-c", source, "-o", "solution.o"], [exe, "solution.o", "-o", "prog", *libs]]
    deadline = time.monotonic() + float(cfg.get("compile_timeout_s", 30.0))
    for step in steps:
        try:
            proc = subprocess.run(step, stdin=subprocess.DEVNULL, capture_output=True, env=ENV,
                                  timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return {"ok": False, "timeout": True, "trace": "compilation timed out"}
        except OSError as exc:
            return {"ok": False, "sandbox_error": f"could not run {compiler}: {exc}"}
        trace = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            first, lines = _DIAG.search(trace), trace.strip().splitlines()
            return {"ok": False, "trace": clip(trace, 6000), "line": int(first.group(2)) if first else None,
                    "message": first.group(4) if first else (lines[-1] if lines else "")}
    return {"ok": True, "warnings": trace.count("warning:")}


def _limits(cpu_s, memory_mb, max_output):
    def apply():
        cpu = max(1, int(cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_output, max_output))
        os.setsid()
    return apply


def normalise(text, mode):
    """Only ``\\n`` ends a line and only ASCII blanks are whitespace (``str.splitlines``/``str.split`` would also
    break on ``\\x0c``, ``\\x1c`` ... and let a program print its answer with other separators)."""
    if mode == "exact":
        return text
    if mode == "tokens":
        return text.encode("utf-8", "surrogateescape").split()
    return [line.rstrip(" \t\r") for line in text.rstrip(" \t\r\n").split("\n")]


def run_one(stdin_text, cfg):
    timeout, max_output = float(cfg["timeout_s"]), int(cfg.get("max_output_bytes", 1 << 20))
    with open("_in", "wb") as fh:
        fh.write(stdin_text.encode())
    with open("_in", "rb") as fin, open("_out", "wb") as fout, open("_err", "wb") as ferr:
        proc = subprocess.Popen(["./prog"], stdin=fin, stdout=fout, stderr=ferr, env={"PATH": PATH},
                                preexec_fn=_limits(timeout, int(cfg.get("memory_mb", 512)), max_output),
                                close_fds=True)
    deadline = time.monotonic() + timeout * float(cfg.get("wall_factor", 3.0)) + 1.0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    killed, checked, status = False, time.monotonic(), None
    while status is None:
        pid, wstatus, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status = wstatus
            break
        now = time.monotonic()
        if now - checked > 0.05:  # every process of the test counts, also children it never waits for
            checked = now
            if sum(descendants(os.getpid()).values()) / TICK > timeout + 0.5:
                killed = True
        if now > deadline:
            killed = True
        if killed:
            kill_descendants(os.getpid())
            status = _reaped_status(proc.pid)
            break
        time.sleep(0.002)
    kill_descendants(os.getpid())  # leftovers of the test (we are their subreaper), reaped: their CPU counts
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open("_out", "rb") as fh:
        out = fh.read(max_output + 1).decode("utf-8", "replace")
    with open("_err", "rb") as fh:
        err = fh.read(4000).decode("utf-8", "replace")
    return status, cpu, killed, out, err


def _reaped_status(pid):
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:  # already reaped by kill_descendants
        return signal.SIGKILL  # the wait status of a process killed by SIGKILL


def judge_one(index, test, cfg):
    stdin_text, expected = test
    status, cpu, killed, out, err = run_one(stdin_text, cfg)
    entry = {"index": index, "input": clip(stdin_text, 300), "expected": clip(expected, 300)}
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if killed or sig == 24 or cpu > float(cfg["timeout_s"]):
        entry["status"] = "timeout"
    elif sig == 9:
        entry["status"] = "memory_limit"  # SIGKILL we did not send: the memory cap (cgroup OOM)
    elif sig == 25 or len(out.encode()) > int(cfg.get("max_output_bytes", 1 << 20)):
        entry["status"] = "output_limit"
    elif sig is not None:
        entry.update(status="error", error=f"killed by signal {SIGNALS.get(sig, sig)}", stderr=clip(err, 500))
    elif os.WEXITSTATUS(status) != 0:
        entry.update(status="error", error=f"exit code {os.WEXITSTATUS(status)}", stderr=clip(err, 500))
    elif normalise(out, cfg.get("compare", "lines")) == normalise(expected, cfg.get("compare", "lines")):
        entry["status"] = "passed"
    else:
        entry.update(status="failed", actual=clip(out, 300))
    return entry


def run_tests(cfg):
    passed, failures = 0, []
    for index, test in enumerate(cfg["tests"]):
        entry = judge_one(index, test, cfg)
        if entry["status"] == "passed":
            passed += 1
            continue
        failures.append(entry)
        if entry["status"] in ("timeout", "memory_limit", "output_limit") or len(failures) >= 5:
            break
    return {"passed": passed, "failed": len(failures), "failures": failures,
            "completed": passed + len(failures) == len(cfg["tests"])}


def main():
    _no_dump()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans stay below us
    except Exception:  # noqa: BLE001 - best effort (the sandbox's own CPU account is the backstop)
        pass
    cfg = json.loads(sys.stdin.read())
    report = {"compile": compile_program(cfg)}
    if report["compile"]["ok"]:
        report["tests"] = run_tests(cfg)
    sys.stdout.write(f"@@sdpg-result {cfg['nonce']} {json.dumps(report)}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
