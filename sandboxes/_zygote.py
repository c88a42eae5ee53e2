"""sdpg-sandbox-server: fork server executed inside the jail/container (or on the host for ``process``); stdlib only.

The host launches ``python -c <this source> <config json>``. Three kinds of process, so that a program never
runs in memory that held anything but its own request:

* the **server** warms the interpreter (imports a few stdlib modules), forks the template, then loops: read one
  length-prefixed JSON request from fd 0, write the run's own part (argv, files, limits) into a fresh memfd,
  hand the template that memfd and the run's pipes, pump stdin (which therefore never enters the program's
  address space before it reads it), enforce the wall deadline and output caps, reset the file system and
  write one JSON reply to fd 1. Requests and replies of every run live here, and nothing is ever forked from
  here after the first request.
* the **template** is forked before the first request and never reads data: it receives file descriptors,
  forks one **run child** per run, waits for it, kills and reaps every process the run left (it is their
  subreaper) and reports the exit status and rusage (numbers only).
* the **run child** reads its request from the memfd, sets up (namespaces, tmpfs, cgroups, rlimits, uid
  drop) and runs the program, exactly once.

Server and template are non-dumpable (no ptrace, no /proc/PID/mem for a program of the same uid).

Config keys: ``fs`` ("mount": per-run mount+IPC namespace with fresh tmpfs /tmp and /dev/shm, needs
CAP_SYS_ADMIN; "dir": a fresh work dir under ``work_root``, removed after the run), ``kill`` ("all": every
process of this pid namespace/container but pid 1, the server and the template; "uid": kill(-1) from a helper
that switches to ``uid``; "tree": SIGKILL every descendant of the template found in /proc), ``uid``/``gid``
(drop to them, or null), ``python`` (interpreter for argv[0] == "python"), ``env``, ``preload``, ``cgroups``
(cgroup dirs to join, keyed by kind), ``seccomp`` (base64 BPF filter installed last in the run child, or
null), ``keyctl`` (the keyctl syscall number: each run joins a fresh session keyring).
"""
# ruff: noqa: F821 - kill_leftovers, wipe_dirs ... come from _zygote_cleanup.py, concatenated in front of this file

import base64
import ctypes
import json
import math
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import traceback

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 1, 2, 4, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 36, 38, 22, 2
KEYCTL_JOIN_SESSION_KEYRING = 1
CONFIG = json.loads(sys.argv[1])
LIBC = ctypes.CDLL(None, use_errno=True)
MIB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05  # how often the server checks a run's CPU account while it runs
DONE = struct.Struct("<iddd")  # wait status, user CPU s, system CPU s, max RSS KiB
HANDOVER_S = 10.0


def _recv_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(fd):
    head = _recv_exact(fd, 8)
    if head is None:
        return None
    body = _recv_exact(fd, struct.unpack(">Q", head)[0])
    return None if body is None else json.loads(body)


def send(fd, obj):
    data = json.dumps(obj).encode()
    data = struct.pack(">Q", len(data)) + data
    while data:
        data = data[os.write(fd, data):]


# ---------------------------------------------------------------- cgroups (host side creates, we only write)

def cgroup_prepare(limits):
    """Set per-run limits on the worker's cgroups; return (OOM-kill count, CPU seconds) before the run."""
    return _cgroup_limits(limits), cpu_account()


def cpu_account(template_pid=None):
    """CPU seconds used by the worker's cgroup so far (every process of every run, orphans included); without a
    cpu cgroup, in a pid namespace or container of its own (kill mode "all"): the sum over its processes (live
    ones plus what the template reaped); else None."""
    cpu = CONFIG["cgroups"].get("cpu")
    if cpu:
        try:
            if os.path.exists(os.path.join(cpu, "cpu.stat")):  # cgroup2 (also a v1 host's unified hierarchy)
                with open(os.path.join(cpu, "cpu.stat")) as fh:
                    return next(int(line.split()[1]) for line in fh if line.startswith("usage_usec")) / 1e6
            with open(os.path.join(cpu, "cpuacct.usage")) as fh:
                return int(fh.read()) / 1e9
        except (OSError, ValueError, StopIteration):
            return None
    if CONFIG["kill"] != "all" or template_pid is None:
        return None
    total, skip = 0, {1, os.getpid()}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in skip:
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            own = int(entry) != template_pid  # the template: only what it reaped (its children's time)
            total += sum(int(x) for x in fields[11:15]) if own else int(fields[13]) + int(fields[14])
    return total / TICK


def _cgroup_limits(limits):
    mem = CONFIG["cgroups"].get("memory")
    pids = CONFIG["cgroups"].get("pids")
    v2 = CONFIG["cgroups"].get("version") == 2
    if pids:
        _cg_write(pids, "pids.max", str(int(limits["max_processes"]) + 2))
    if not mem:
        return 0
    limit = str(int(limits["memory_mb"]) * MIB)
    if v2:
        _cg_write(mem, "memory.max", limit)
        _cg_write(mem, "memory.swap.max", "0")
        return _oom_count(mem, "memory.events")
    _cg_write(mem, "memory.limit_in_bytes", limit)
    _cg_write(mem, "memory.max_usage_in_bytes", "0")
    return _oom_count(mem, "memory.oom_control")


def _cg_write(directory, name, value):
    try:
        with open(os.path.join(directory, name), "w") as fh:
            fh.write(value)
    except OSError:
        pass


def _oom_count(directory, name):
    try:
        with open(os.path.join(directory, name)) as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cgroup_after(before):
    """Return (oom_killed, peak_mb) for the run that just ended."""
    mem = CONFIG["cgroups"].get("memory")
    if not mem:
        return False, None
    v2 = CONFIG["cgroups"].get("version") == 2
    oom = _oom_count(mem, "memory.events" if v2 else "memory.oom_control") > before
    peak = None
    try:
        with open(os.path.join(mem, "memory.peak" if v2 else "memory.max_usage_in_bytes")) as fh:
            peak = int(fh.read().split()[0]) / MIB
    except (OSError, ValueError, IndexError):
        pass
    return oom, peak


# ---------------------------------------------------------------- the child: becomes the program

def child_setup(req, workdir):
    """Runs in the forked child before the program: session, cgroups, namespaces, rlimits, uid drop."""
    os.setsid()
    for path in CONFIG["cgroups"].get("procs", []):
        with open(path, "w") as fh:
            fh.write("0")
    try:  # the OOM killer picks the program, never the server or template (they share docker's cgroup)
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    limits = req["limits"]
    uid, gid = CONFIG["uid"], CONFIG["gid"]
    if CONFIG["fs"] == "mount":
        if LIBC.unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        size = int(limits["tmpfs_mb"])
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,mode=1777")
        if os.path.isdir("/dev/shm"):
            _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={min(size, 64)}m,mode=1777")
        if os.path.isdir("/sys"):  # only the worker's own cgroup dirs are there (for the server); hide them too
            _mount("tmpfs", "/sys", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, gid)
    cpu = max(1, math.ceil(float(limits["cpu_s"])))
    for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                       (resource.RLIMIT_AS, int(limits["memory_mb"]) * MIB),
                       (resource.RLIMIT_FSIZE, int(limits["max_file_mb"]) * MIB),
                       (resource.RLIMIT_NOFILE, int(limits["max_open_files"])),
                       (resource.RLIMIT_NPROC, int(limits["max_processes"])),
                       (resource.RLIMIT_CORE, 0)):
        pair = value if isinstance(value, tuple) else (value, value)
        resource.setrlimit(res, pair)
    if uid is not None:
        for cap in range(64):
            LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.chdir(workdir)
    for rel, content in req["files"].items():
        path = os.path.join(workdir, rel)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(content))
    os.environ.clear()
    os.environ.update(CONFIG["env"])
    os.environ["TMPDIR"] = "/tmp" if CONFIG["fs"] == "mount" else workdir
    if CONFIG.get("keyctl"):  # a fresh, empty session keyring: nothing planted by an earlier run is reachable
        LIBC.syscall(CONFIG["keyctl"], KEYCTL_JOIN_SESSION_KEYRING, None)
    install_seccomp()


def install_seccomp():
    """The host-compiled filter (``sandboxes/seccomp.py``) for this process and all it starts; the last step."""
    if not CONFIG.get("seccomp"):
        return
    raw = base64.b64decode(CONFIG["seccomp"])
    program = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(raw) // 8, ctypes.addressof(program))
    if LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter")


def _mount(src, target, fstype, flags, data):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if LIBC.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def read_request(fd):
    """The run's own request (argv, files, limits, work dir) from the memfd the server filled; then close it."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return json.loads(b"".join(chunks))


def child_main(fds):
    """Never returns: read the request, set up, then run the program in this process (python fast path) or exec it."""
    in_r, out_w, err_w, st_w, req_fd = fds
    try:
        os.set_inheritable(st_w, False)  # closed by a successful exec: EOF tells the server setup went fine
        req = read_request(req_fd)
        child_setup(req, req["workdir"])
        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, st_w)
        os.closerange(st_w + 1, 1 << 16)
        argv = list(req["argv"])
        if _fast_python(argv):
            os.close(st_w)
            run_python_inline(argv)
        if argv[0] == "python":
            argv[0] = CONFIG["python"]
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
    except BaseException as exc:  # setup failed: report it as a sandbox error
        try:
            os.write(st_w, (f"sandbox setup failed: {type(exc).__name__}: {exc}").encode()[:2000])
        finally:
            os._exit(126)
    try:
        os.execvpe(argv[0], argv, os.environ)
    except OSError as exc:
        os.write(2, (f"sandbox: cannot execute {argv[0]!r}: {exc.strerror}\n").encode())
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


def _fast_python(argv):
    if argv[0] != "python" or len(argv) < 2 or CONFIG.get("no_fast_path"):
        return False
    if argv[1] == "-c":
        return len(argv) >= 3
    return not argv[1].startswith("-")


def run_python_inline(argv):
    """Behave like ``python SCRIPT args`` / ``python -c CODE args`` in this already-warm interpreter."""
    import builtins
    import types

    if argv[1] == "-c":
        source, filename, sys.argv, path0 = argv[2], "<string>", ["-c"] + argv[3:], ""
    else:
        filename, sys.argv = argv[1], argv[1:]
        path0 = os.path.dirname(os.path.abspath(filename))
    sys.path[0] = path0
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    if filename != "<string>":
        main.__file__ = filename
        main.__cached__ = None
    sys.modules["__main__"] = main
    code = 0
    try:
        if filename != "<string>":
            with open(filename, "rb") as fh:
                source = fh.read()
        exec(compile(source, filename, "exec"), main.__dict__)
    except SystemExit as exc:
        code = _exit_status(exc)
    except BaseException:
        etype, value, tb = sys.exc_info()
        try:
            tb = tb.tb_next if tb is not None else tb  # hide this runner's frame, as plain python would
            sys.excepthook(etype, value.with_traceback(tb), tb)
        except BaseException:
            pass
        code = 1
    code = _interpreter_shutdown(code)
    os._exit(code)


def _exit_status(exc):
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    try:
        print(exc.code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _interpreter_shutdown(code):
    try:
        import threading

        threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except SystemExit as exc:
        code = _exit_status(exc)
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            if stream is sys.stdout and code == 0:
                code = 120
    return code


# ---------------------------------------------------------------- the template: forks run children, holds no data

def template_main(sock, server_pid):
    """Loop: receive a run's fds, fork its child, wait for it, clean up after it, report numbers. Never returns."""
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    protected = (os.getpid(), server_pid)
    if CONFIG.get("kill_on_start"):
        kill_leftovers(CONFIG["kill"], CONFIG["uid"], None, protected)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 16, 8)
        except OSError:
            os._exit(0)
        if not msg or len(fds) != 5:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            sock.close()
            child_main(fds)
        for fd in fds:
            os.close(fd)
        sock.send(struct.pack("<i", pid))
        _, status, usage = os.wait4(pid, 0)
        kill_leftovers(CONFIG["kill"], CONFIG["uid"], CONFIG["cgroups"].get("pids"), protected)
        sock.send(DONE.pack(status, usage.ru_utime, usage.ru_stime, usage.ru_maxrss))


def start_template():
    """Fork the template now, before any request exists in this process; return our handle on it."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        ours.close()
        os.closerange(3, theirs.fileno())
        os.closerange(theirs.fileno() + 1, 1 << 16)
        try:
            template_main(theirs, server)
        finally:
            os._exit(0)
    theirs.close()
    return Template(ours, pid)


class Template:
    """The server's handle on the template: its socket (select/recv/send go to it) and its pid."""

    def __init__(self, sock, pid):
        self.sock, self.pid = sock, pid

    def fileno(self):
        return self.sock.fileno()

    def recv(self, size):
        return self.sock.recv(size)


# ---------------------------------------------------------------- the server: one run

def run_one(req, template):
    limits = req["limits"]
    oom_before, cpu_before = cgroup_prepare(limits)
    if cpu_before is None:
        cpu_before = cpu_account(template.pid)
    if CONFIG["fs"] == "mount":
        workdir = "/tmp/work"
    else:
        workdir = os.path.join(CONFIG["work_root"], f"run-{time.monotonic_ns()}")
        os.mkdir(workdir, 0o700)
        if CONFIG["uid"] is not None:
            os.chown(workdir, CONFIG["uid"], CONFIG["gid"])
    own = {"argv": req["argv"], "files": req["files"], "limits": limits, "workdir": workdir}
    req_fd = os.memfd_create("sdpg-run", os.MFD_CLOEXEC)
    os.write(req_fd, json.dumps(own).encode())
    os.lseek(req_fd, 0, os.SEEK_SET)
    del own
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    start = time.monotonic()
    try:
        socket.send_fds(template.sock, [b"run"], [in_r, out_w, err_w, st_w, req_fd])
    finally:
        for fd in (in_r, out_w, err_w, st_w, req_fd):
            os.close(fd)
    try:
        pid = struct.unpack("<i", _from_template(template, 4, HANDOVER_S))[0]
        facts = supervise(pid, template, req, start, (in_w, out_r, err_r, st_r), cpu_before)
    finally:
        for fd in (in_w, out_r, err_r, st_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if CONFIG["fs"] == "dir":  # no private mount/IPC namespace per run: clean up after it
            remove_ipc(CONFIG["uid"])
            remove_path(workdir)
            clean_shared_tmp(CONFIG.get("shared_tmp", []), CONFIG["uid"])
            wipe_dirs(CONFIG.get("wipe", []), CONFIG.get("work_root"))
    facts["oom_killed"], facts["peak_memory_mb"] = cgroup_after(oom_before)
    return facts


def _from_template(template, size, timeout):
    if not select.select([template], [], [], timeout)[0]:
        raise RuntimeError("the template process did not answer")
    data = template.recv(64)
    if len(data) != size:
        raise RuntimeError("the template process is gone")
    return data


def supervise(pid, template, req, start, fds, cpu_before):
    """Pump stdin/stdout/stderr until the run child exits, the deadline passes, the run's CPU account (all its
    processes) passes its budget or an output cap is hit."""
    in_w, out_r, err_r, st_r = fds
    limits = req["limits"]
    cpu_limit = float(limits["cpu_s"])
    used = lambda: None if cpu_before is None else cpu_account(template.pid) - cpu_before  # noqa: E731
    deadline = start + float(limits["wall_s"])
    cap = int(limits["max_output_bytes"])
    stdin = base64.b64decode(req["stdin"]) if req.get("stdin") else b""
    os.set_blocking(in_w, False)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    setup_error = bytearray()
    facts = {"timed_out": False, "output_limited": False, "stdout_truncated": False, "stderr_truncated": False}
    readers = [out_r, err_r, st_r]
    writer = in_w if stdin else None
    if writer is None:
        os.close(in_w)
    done = None
    try:
        while done is None:
            now = time.monotonic()
            if now >= deadline:
                facts["timed_out"] = True
                break
            r, w, _ = select.select(readers + [template], [writer] if writer is not None else [], [],
                                    min(deadline - now, POLL_S) if cpu_before is not None else deadline - now)
            if cpu_before is not None and not r and (used() or 0.0) > cpu_limit:
                facts["timed_out"] = facts["cpu_exceeded"] = True
                break
            if w:
                try:
                    stdin = stdin[os.write(in_w, stdin[: 1 << 16]):]
                except OSError:
                    stdin = b""
                if not stdin:
                    os.close(in_w)
                    writer = None
            for fd in r:
                if fd is template:
                    done = _from_template(template, DONE.size, HANDOVER_S)
                    continue
                data = os.read(fd, 1 << 16)
                if not data:
                    readers.remove(fd)
                elif fd == st_r:
                    setup_error += data
                else:
                    bufs[fd] += data
                    if len(bufs[fd]) > cap:
                        facts["output_limited"] = True
            if facts["output_limited"]:
                break
    finally:
        if writer is not None:
            try:
                os.close(in_w)
            except OSError:
                pass
    if done is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        done = _from_template(template, DONE.size, HANDOVER_S)
    facts["wall_s"] = time.monotonic() - start
    _drain(readers, bufs, setup_error, cap)
    for fd, key in ((out_r, "stdout"), (err_r, "stderr")):
        data = bytes(bufs[fd])
        facts[key + "_truncated"] = len(data) > cap
        facts[key] = base64.b64encode(data[:cap]).decode()
    wstatus, utime, stime, maxrss = DONE.unpack(done)
    facts["exit_code"] = os.waitstatus_to_exitcode(wstatus) if os.WIFEXITED(wstatus) else None
    facts["signal"] = os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None
    total = used()
    facts["cpu_s"] = max(utime + stime, total if total is not None else 0.0)
    facts["maxrss_mb"] = maxrss / 1024
    facts["setup_error"] = setup_error.decode("utf-8", "replace")
    return facts


def _drain(readers, bufs, setup_error, cap):
    """After the run ended (the template killed every leftover): read what is left in the pipes."""
    end = time.monotonic() + 2.0
    while readers and time.monotonic() < end:
        r, _, _ = select.select(readers, [], [], 0.2)
        for fd in r:
            data = os.read(fd, 1 << 16)
            if not data:
                readers.remove(fd)
            elif fd in bufs:
                if len(bufs[fd]) <= cap:
                    bufs[fd] += data
            else:
                setup_error += data


# ---------------------------------------------------------------- main loop

def main():
    ctl_in, ctl_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if CONFIG.get("die_with_parent"):
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if CONFIG.get("work_root"):
        os.makedirs(CONFIG["work_root"], mode=0o711, exist_ok=True)
        wipe_dirs(CONFIG.get("wipe", []), CONFIG["work_root"])
    for name in CONFIG.get("preload", []):
        try:
            __import__(name)
        except BaseException:
            pass
    sys.path[0] = ""
    os.set_inheritable(ctl_in, False)
    os.set_inheritable(ctl_out, False)
    template = start_template()
    send(ctl_out, {"ready": True, "pid": os.getpid(), "python": sys.version.split()[0]})
    while True:
        req = recv(ctl_in)
        if req is None:
            return
        try:
            reply = run_one(req, template)
        except BaseException as exc:
            reply = {"internal_error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"}
        send(ctl_out, reply)
        if "internal_error" in reply:
            return  # the host replaces this worker


main()
