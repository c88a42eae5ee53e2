"""sdpg Python test harness, runner half (see ``_harness_judge.py``). Runs inside the sandbox; stdlib only.

Two processes, so the candidate never shares an interpreter with the tests or the verdict:

* the **judge** (``_harness_judge.py``) compiles ``solution.py`` (``SyntaxError``, ``IndentationError`` and
  ``TabError`` become a compile error with the compiler's trace), forks the **runner**, and only then reads its
  config (tests, nonce, budget) from stdin. It runs the trusted test code itself; every name the program
  defines is a proxy that asks the runner to call the real function and send back the result as plain data
  (``marshal`` of exact builtin types, validated on arrival). Comparisons, ``assert`` and the report all
  happen in the judge.
* the **runner** (forked child) has stdin closed, stdout redirected to stderr, imports the candidate and serves
  calls. Whatever it does (``os._exit``, ``sys.exit``, patched builtins or ``AssertionError``, ``__eq__``
  overrides, printed fake results, reading files) it cannot reach the judge's memory (the judge is
  non-dumpable), never sees the nonce (read after the fork) nor the tests (never on disk), and its values
  arrive as plain data, so the worst it can do is fail.

The judge prints one line ``@@sdpg-result <nonce> <json report>`` on stdout; nothing else counts.
"""

import marshal
import os
import select
import struct
import sys
import time
import traceback

SOLUTION = "solution.py"
HANDLE, ITER, BUILTIN = b"\x00sdpg:handle", b"\x00sdpg:iter", b"\x00sdpg:builtin"
SCALARS = (type(None), bool, int, float, complex, str, bytes)
MAX_MSG, MAX_DEPTH = 64 << 20, 200


class Fatal(BaseException):
    """The runner is gone (timeout, crash, exit): stop testing. BaseException so test code cannot swallow it."""

    def __init__(self, kind, detail):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


# ----- framing (both processes) ------------------------------------------------------------------------------
def send(fd, obj, deadline=None):
    data = marshal.dumps(obj)
    buf = memoryview(struct.pack("<I", len(data)) + data)
    while buf:
        if deadline is not None and not select.select([], [fd], [], max(0.0, deadline - time.monotonic()))[1]:
            raise Fatal("timeout", "the program stopped reading requests")
        buf = buf[os.write(fd, buf):]


def read_exact(fd, n, wait):
    chunks, got = [], 0
    while got < n:
        wait()
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(fd, wait=lambda: None):
    (size,) = struct.unpack("<I", read_exact(fd, 4, wait))
    if size > MAX_MSG:
        raise ValueError(f"message of {size} bytes is too large")
    return marshal.loads(read_exact(fd, size, wait))


# ----- runner (the forked child that hosts the candidate) ----------------------------------------------------
def short_repr(value, limit=200):
    try:
        text = repr(value)
    except BaseException:  # noqa: B036 - a hostile __repr__ must not break the runner
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Runner:
    def __init__(self, namespace):
        self.ns, self.handles = namespace, {}

    def ref(self, obj):
        self.handles[id(obj)] = obj
        return (HANDLE, id(obj), type(obj).__name__[:60], short_repr(obj, 120))

    def enc(self, v, depth=0):
        t = type(v)
        if t in SCALARS:
            return v
        if depth > MAX_DEPTH:
            raise ValueError("value nested too deeply (or cyclic) to be returned")
        if t is list or t is tuple or t is set or t is frozenset:
            return t(self.enc(x, depth + 1) for x in v)
        if t is dict:
            return {self.enc(k, depth + 1): self.enc(x, depth + 1) for k, x in v.items()}
        for base, conv in ((int, int.__int__), (float, float.__float__), (str, str.__str__),
                           (bytes, bytes), (complex, complex)):
            if isinstance(v, base):  # subclasses of plain types arrive as the plain type (overrides dropped)
                return conv(v)
        for base in (tuple, list, dict, set, frozenset):  # namedtuple, OrderedDict, Counter, defaultdict ...
            if isinstance(v, base):
                return self.enc(base(v), depth)
        if is_builtin(v):
            return (BUILTIN, v.__name__)
        if hasattr(t, "__next__") and hasattr(t, "__iter__"):
            return (ITER, [self.enc(x, depth + 1) for x, _ in zip(v, range(100_000))])
        return self.ref(v)

    def dec(self, v):
        t = type(v)
        if t is tuple and len(v) >= 2 and type(v[0]) is bytes and v[0] == HANDLE:
            return self.handles[v[1]]
        if t is tuple and len(v) == 2 and type(v[0]) is bytes and v[0] == ITER:
            return iter([self.dec(x) for x in v[1]])
        if t is tuple and len(v) == 2 and type(v[0]) is bytes and v[0] == BUILTIN:
            return getattr(__import__("builtins"), v[1])
        if t in (list, tuple, set, frozenset):
            return t(self.dec(x) for x in v)
        if t is dict:
            return {self.dec(k): self.dec(x) for k, x in v.items()}
        return v

    def describe(self):
        """Each global's kind. Values are sent only when the tests name them (op ``value``): encoding every global
        up front would consume global iterators (``itertools.count()``) and copy large tables for nothing."""
        names = {}
        for name, value in list(self.ns.items()):
            if name.startswith("__"):
                continue
            if type(value) is type(sys):
                names[name] = ("module", getattr(value, "__name__", ""))
            else:
                names[name] = ("callable" if callable(value) else "value", None)
        return names

    def serve(self, request):
        op, target = request[0], request[1]
        obj = self.ns[target[1]] if target[0] == "name" else self.handles[target[1]]
        if op == "bool":
            return ("ok", bool(obj), [])
        if op == "value":
            return ("ok", self.enc(obj), [])
        if op == "getattr":
            return ("ok", self.enc(getattr(obj, request[2])), [])
        if op == "setattr":
            setattr(obj, request[2], self.dec(request[3]))
            return ("ok", None, [])
        args, kwargs = [self.dec(a) for a in request[2]], {k: self.dec(v) for k, v in request[3].items()}
        result = obj(*args, **kwargs)
        mutated = [self.enc(args[i]) if type(args[i]) in (list, dict, set) else None for i in request[4]]
        return ("ok", self.enc(result), mutated)


def is_builtin(value):
    """A builtin type or function, passed by name (e.g. ``remove_datatype(xs, int)``)."""
    name = getattr(value, "__name__", None)
    try:
        return isinstance(name, str) and getattr(__import__("builtins"), name, None) is value
    except Exception:  # noqa: BLE001 - hostile __getattr__/__eq__
        return False


def format_candidate_error(exc, source_lines):
    """``Traceback`` limited to frames in the candidate's file, then ``Type: message``."""
    lines = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == SOLUTION:
            lines.append(f'  File "{SOLUTION}", line {frame.lineno}, in {frame.name}')
            if frame.lineno and 0 < frame.lineno <= len(source_lines):
                lines.append("    " + source_lines[frame.lineno - 1].strip())
    try:
        message = str(exc)
    except BaseException:  # noqa: B036
        message = ""
    head = type(exc).__name__ + (f": {message}" if message else "")
    trace = ("Traceback (most recent call last):\n" + "\n".join(lines) + "\n" if lines else "") + head
    return type(exc).__name__, message[:1000], trace[-3000:]


def runner_main(code, source_lines, req_r, resp_w):
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    for fd in range(3, 256):
        if fd not in (req_r, resp_w):
            try:
                os.close(fd)
            except OSError:
                pass
    sys.path.insert(0, os.getcwd())
    module = type(sys)("solution")
    module.__file__ = SOLUTION
    sys.modules["solution"] = module
    runner = Runner(module.__dict__)
    try:
        exec(code, module.__dict__)
        reply = ("ready", runner.describe())
    except BaseException as exc:  # noqa: B036 - anything the candidate raises at import is reported
        reply = ("import_error", *format_candidate_error(exc, source_lines))
    send(resp_w, reply)
    if reply[0] != "ready":
        os._exit(0)
    while True:
        try:
            request = recv(req_r)
        except EOFError:
            os._exit(0)
        try:
            reply = runner.serve(request)
        except BaseException as exc:  # noqa: B036
            reply = ("raise", *format_candidate_error(exc, source_lines))
        try:
            send(resp_w, reply)
        except ValueError:  # unmarshallable (should not happen after enc): report as a runner error
            send(resp_w, ("raise", "ValueError", "the result could not be transferred", "ValueError"))
