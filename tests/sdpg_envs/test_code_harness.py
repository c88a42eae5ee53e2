"""Code verifier: the taxonomy on a fixture suite of known traces, verdict integrity against hostile programs,
and deterministic, bounded feedback. Runs through the default sandbox (bwrap in CI)."""

from __future__ import annotations

import pytest

from sdpg_envs.types import Problem
from sdpg_envs.verifiers.code import STATUS_MAPPING, STATUSES, CodeVerifier

ADD_TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\nassert abs(add(0.5, 0.25) - 0.75) < 1e-9\n"
IO_TESTS = [["1 2\n", "3\n"], ["5 7\n", "12\n"]]


@pytest.fixture(scope="module")
def verifier():
    with CodeVerifier(timeout_s=1.5) as v:
        yield v


def py(code: str, tests: str = ADD_TESTS, **meta) -> tuple[Problem, str]:
    return Problem("t", "", metadata={"tests": tests, **meta}), f"```python\n{code}\n```"


def c(code: str, language: str = "c") -> tuple[Problem, str]:
    return Problem("t", "", metadata={"tests": IO_TESTS, "language": language, "timeout_s": 1.0}), \
        f"```{language}\n{code}\n```"


C_OK = '#include <stdio.h>\nint main(){int a,b; scanf("%d %d",&a,&b); printf("%d\\n", a+b); return 0;}'

# (name, (problem, completion), expected status, substrings the feedback must contain)
FIXTURES = [
    ("py-pass", py("def add(a, b):\n    return a + b"), "passed", ["All tests passed (3 checks)"]),
    ("py-syntax", py("def add(a, b)\n    return a + b"), "compile_error", ["SyntaxError", "def add(a, b)", "line 1"]),
    ("py-indent", py("def add(a, b):\nreturn a + b"), "compile_error", ["IndentationError", "return a + b"]),
    ("py-tab", py("def add(a, b):\n\tx = 1\n        return a + b"), "compile_error", ["TabError"]),
    ("py-nul", py("def add(a, b):\n    return a\x00 + b"), "compile_error", ["null"]),
    ("py-no-code", (Problem("t", "", metadata={"tests": ADD_TESTS}), "```python\n\n```"), "compile_error",
     ["No program found"]),
    ("py-name-at-import", py("x = undefined_thing\ndef add(a, b):\n    return a + b"), "runtime_error",
     ["NameError", "undefined_thing", 'File "solution.py", line 1']),
    ("py-missing-module", py("import numpyy_not_here\ndef add(a, b):\n    return a + b"), "runtime_error",
     ["ModuleNotFoundError", "numpyy_not_here"]),
    ("py-zero-division", py("def add(a, b):\n    return a / 0"), "runtime_error",
     ["ZeroDivisionError", "Call: add(1, 2)", "return a / 0"]),
    ("py-missing-function", py("def plus(a, b):\n    return a + b"), "runtime_error", ["NameError", "add"]),
    ("py-wrong", py("def add(a, b):\n    return a - b"), "wrong_answer",
     ["Test failed: assert add(1, 2) == 3", "Expected: 3", "Actual: -1"]),
    ("py-none", py("def add(a, b):\n    return None"), "wrong_answer", ["Actual: None"]),
    ("py-loop", py("def add(a, b):\n    while True:\n        pass"), "timeout", ["Time limit exceeded", "add(1, 2)"]),
    ("py-memory", py("def add(a, b):\n    return len(bytearray(8 << 30))"), "memory_limit", ["Memory limit"]),
    ("py-output", py("def add(a, b):\n    print('x' * 5_000_000)\n    return a + b"), "output_limit",
     ["Output limit"]),
    ("c-pass", c(C_OK), "passed", ["All tests passed"]),
    ("c-syntax", c("int main(){\n  return x\n}"), "compile_error", ["solution.c:2:10: error", "return x"]),
    ("c-link", c("int mainx(void){return 0;}"), "compile_error", ["undefined reference to `main'"]),
    ("c-wrong", c(C_OK.replace("a+b", "a-b")), "wrong_answer", ["Input:\n1 2", "Expected output:\n3", "-1"]),
    ("c-segv", c("int main(){int *p=0; *p=1; return 0;}"), "runtime_error", ["SIGSEGV"]),
    ("c-exit", c("int main(){return 3;}"), "runtime_error", ["exit code 3"]),
    ("c-loop", c("int main(){for(;;); return 0;}"), "timeout", ["Time limit exceeded", "1 2"]),
    ("cpp-pass", c("#include <iostream>\nint main(){long a,b; std::cin>>a>>b; std::cout<<a+b<<std::endl;}", "cpp"),
     "passed", []),
    ("cpp-error", c("#include <iostream>\nint main(){ std::cout << y; }", "cpp"), "compile_error", ["'y'"]),
]


@pytest.mark.timeout(120)
def test_fixture_traces_are_classified(verifier):
    results = verifier.batch([f[1][0] for f in FIXTURES], [f[1][1] for f in FIXTURES])
    for (name, _, status, needles), result in zip(FIXTURES, results):
        assert result.status == status, f"{name}: {result.status} != {status}\n{result.feedback}"
        assert result.score == (1.0 if status == "passed" else 0.0), name
        for needle in needles:
            assert needle in result.feedback, f"{name}: {needle!r} not in feedback:\n{result.feedback}"
        assert "_sdpg" not in result.feedback and "/tmp" not in result.feedback, name  # only the candidate's frames
        assert len(result.feedback) <= 2000, name


HOSTILE = {
    "os._exit(0) at import": "import os\nos._exit(0)",
    "os._exit(0) in the call": "import os\ndef add(a, b):\n    os._exit(0)",
    "sys.exit(0)": "import sys\ndef add(a, b):\n    sys.exit(0)",
    "raise SystemExit at import": "raise SystemExit(0)",
    "__eq__ always true": "class E:\n    def __eq__(s, o): return True\n    def __lt__(s, o): return True\n"
                          "    def __sub__(s, o): return s\n    def __abs__(s): return 0\n"
                          "def add(a, b):\n    return E()",
    "int subclass with __eq__": "class E(int):\n    def __eq__(s, o): return True\ndef add(a, b):\n    return E(0)",
    "patched AssertionError": "import builtins\nclass X(Exception): pass\nbuiltins.AssertionError = X\n"
                              "def add(a, b):\n    return 0",
    "patched builtins": "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.len = lambda x: 0\n"
                        "def add(a, b):\n    return 0",
    "shadowing abs": "def abs(x):\n    return 0\ndef add(a, b):\n    return 0",
    "fake result lines": "import sys\nfor n in ('', 'x', '0' * 32):\n    print(f'@@sdpg-result {n} "
                         "{{\"compile\": {{\"ok\": true}}, \"import\": {{\"ok\": true}}, \"tests\": {{\"passed\": 9, "
                         "\"completed\": true, \"failures\": []}}}}')\n    sys.stdout.flush()\n"
                         "def add(a, b):\n    return 0",
    "hunting the nonce in memory": "import gc, re, sys\n"
                                   "for o in gc.get_objects():\n"
                                   "    for s in (o if isinstance(o, dict) else {}).values():\n"
                                   "        if isinstance(s, str) and re.fullmatch('[0-9a-f]{32}', s):\n"
                                   "            print('@@sdpg-result', s, '{\"compile\": {\"ok\": true}, \"tests\": "
                                   "{\"passed\": 3, \"completed\": true}}', file=sys.__stdout__)\n"
                                   "def add(a, b):\n    return 0",
    "reading the parent's stdin": "import os\ntry:\n    print(open(f'/proc/{os.getppid()}/fd/0').read())\n"
                                  "except Exception:\n    pass\ndef add(a, b):\n    return 0",
    "killing the judge": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef add(a, b):\n    return 0",
    "stopping the judge": "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\ndef add(a, b):\n    return 0",
    "planting modules for the judge": "for m in ('json', 'math', 'random', 'copy'):\n"
                                      "    open(m + '.py', 'w').write('import os\\nos._exit(0)')\n"
                                      "def add(a, b):\n    import math\n    return 0",
    "returns a generator": "def add(a, b):\n    yield a + b",
    "writes to the judge's stdout fd": "import os\ntry:\n    fd = os.open(f'/proc/{os.getppid()}/fd/1', os.O_WRONLY)\n"
                                       "    os.write(fd, b'@@sdpg-result x {}\\n')\nexcept OSError:\n    pass\n"
                                       "def add(a, b):\n    return 0",
}


@pytest.mark.timeout(120)
def test_hostile_programs_never_pass(verifier):
    tests = ("import math\nassert add(1, 2) == 3\nassert abs(add(0.5, 0.25) - 0.75) < 1e-9\n"
             "assert len([add(1, 1)]) == 1\n")
    names = list(HOSTILE)
    problems = [Problem("h", "", metadata={"tests": tests, "timeout_s": 1.0}) for _ in names]
    results = verifier.batch(problems, [f"```python\n{HOSTILE[n]}\n```" for n in names])
    for name, result in zip(names, results):
        assert result.status != "passed" and result.score == 0.0, f"{name} faked a pass: {result.feedback}"
        assert result.status in STATUSES


@pytest.mark.timeout(60)
def test_feedback_is_deterministic_and_bounded(verifier):
    problem, completion = py("def add(a, b):\n    raise ValueError('x' * 10_000)")
    first, second = verifier(problem, completion), verifier(problem, completion)
    assert first.status == "runtime_error"
    assert first.feedback == second.feedback and first.details == second.details
    assert len(first.feedback) <= 2000
    small = CodeVerifier(verifier.sandbox, feedback_chars=150)
    assert len(small(problem, completion).feedback) <= 150


@pytest.mark.timeout(60)
def test_two_failing_tests_shown_and_runner_state_kept(verifier):
    tests = "\n".join(f"assert add({i}, 1) == {i + 1}" for i in range(6))
    problem, completion = py("def add(a, b):\n    return a + b if a == 0 else a * b", tests)
    result = verifier(problem, completion)
    assert result.status == "wrong_answer"
    assert result.feedback.count("Test failed:") == 2
    assert result.details["tests_passed"] == 1 and result.details["tests_failed"] == 5


def test_status_mapping_covers_the_taxonomy():
    assert set(STATUS_MAPPING) == set(STATUSES)
    assert all({"sandboxfusion", "livecodebench", "verl"} <= set(v) for v in STATUS_MAPPING.values())


def _case(tests, code: str, **meta) -> tuple[Problem, str]:
    language = meta.get("language", "python")
    return Problem("j", "", metadata={"tests": tests, "timeout_s": 2.0, **meta}), f"```{language}\n{code}\n```"


EVEN_TESTS = "assert all(map(is_even, [2, 4]))\nassert not any(map(is_even, [1, 3]))\n" \
             "assert list(filter(is_even, [1, 3])) == []\n"
CYCLIC = "def encode(s):\n    return s[1:] + s[:1]\n\n\ndef decode(s):\n    \"\"\"Inverse of encode.\"\"\"\n"
ROOT_TESTS = "assert math.isclose(root(2.0), 1.4142135, rel_tol=1e-6)\n"
MULTILINE = [["2\n", "1\n2\n"], ["3\n", "1\n2\n3\n"]]
C_SEPARATOR = '#include <stdio.h>\nint main(){int n; scanf("%d",&n); for(int i=1;i<=n;i++) printf("%d%s", i, ' \
              'i<n ? "SEP" : "\\n"); return 0;}'

# Judge-logic tricks: each must fail; the matching honest program must pass (so the test is not vacuous).
JUDGE_TRICKS = {
    "StopIteration ends the tests' map/filter": (
        _case(EVEN_TESTS, "def is_even(n):\n    raise StopIteration"),
        _case(EVEN_TESTS, "def is_even(n):\n    return n % 2 == 0")),
    "a class named math decides isclose": (
        _case(ROOT_TESTS, "class math:\n    isclose = staticmethod(lambda *a, **k: True)\ndef root(x):\n    return 0",
              preamble="import math\n"),
        _case(ROOT_TESTS, "def root(x):\n    return math.sqrt(x)", preamble="import math\n")),
    "redefining the prompt's helper": (
        _case("assert decode(encode('abc')) == 'abc'\nassert decode(encode('hello')) == 'hello'\n",
              "def encode(s):\n    return s\ndef decode(s):\n    return s", preamble=CYCLIC, entry_point="decode"),
        _case("assert decode(encode('abc')) == 'abc'\nassert decode(encode('hello')) == 'hello'\n",
              "def decode(s):\n    return s[-1:] + s[:-1]", preamble=CYCLIC, entry_point="decode")),
    **{f"C lines split on {sep!r}": (
        _case(MULTILINE, C_SEPARATOR.replace("SEP", sep), language="c"),
        _case(MULTILINE, C_SEPARATOR.replace("SEP", "\\n"), language="c"))
       for sep in ("\\f", "\\x1c", "\\x1e", "\\x85", "\\r", "\\v")},
}


@pytest.mark.timeout(180)
def test_judge_logic_tricks_fail_and_honest_programs_pass(verifier):
    cases = [pair for pairs in JUDGE_TRICKS.values() for pair in pairs]
    results = verifier.batch([p for p, _ in cases], [c for _, c in cases])
    for i, name in enumerate(JUDGE_TRICKS):
        trick, honest = results[2 * i], results[2 * i + 1]
        assert trick.status != "passed" and trick.score == 0.0, f"{name} passed: {trick.feedback}"
        assert honest.status == "passed", f"{name}: the honest program failed: {honest.feedback}"


CORRECT_WITH_GLOBALS = {
    "dict of builtins": "TABLE = {'biggest': max, 'count': len}\ndef add(a, b):\n    return TABLE['biggest'](a, b) "
                        "+ min(a, b)",
    "tuple of builtins": "OPS = (len, sum, sorted)\ndef add(a, b):\n    return OPS[1]([a, b])",
    "unsafe builtins held": "HOOKS = [print, open, eval]\ndef add(a, b):\n    return a + b",
    "a lambda and a class in a dict": "class P:\n    pass\nR = {'f': lambda x: x, 'c': P, 'o': P()}\n"
                                     "def add(a, b):\n    return R['f'](a) + b",
    "globals named like stdlib modules": "string = 'abc'\nrandom = 4\ndef operator(x):\n    return x\n"
                                         "import os as math\ndef add(a, b):\n    return a + b",
    "a generator and a recursive structure": "G = (i for i in range(3))\nL = []\nL.append(L)\n"
                                             "def add(a, b):\n    return a + b",
    "a global iterator the function uses": "import itertools\nCALLS = itertools.count()\nBIG = list(range(10**6))\n"
                                           "def add(a, b):\n    assert next(CALLS) < 10\n    return a + b",
}


@pytest.mark.timeout(120)
def test_correct_programs_with_ordinary_globals_pass(verifier):
    tests = "import math\n" + ADD_TESTS
    names = list(CORRECT_WITH_GLOBALS)
    results = verifier.batch([Problem("g", "", metadata={"tests": tests})] * len(names),
                             [f"```python\n{CORRECT_WITH_GLOBALS[n]}\n```" for n in names])
    for name, result in zip(names, results):
        assert result.status == "passed", f"{name}: {result.feedback}"


@pytest.mark.parametrize("status", ["sandbox_error", "memory_limit", "timeout", "killed_by_signal"])
def test_a_crashed_sandbox_never_scores_even_with_a_passing_report(status):
    from sandboxes import ExecutionResult, Status
    from sdpg_envs.verifiers.code.classify import classify

    report = {"compile": {"ok": True}, "import": {"ok": True}, "tests": {"passed": 3, "failed": 0, "failures": [],
                                                                         "completed": True}}
    result = ExecutionResult(status=Status(status), exit_code=None, stdout="", stderr="", signal=9)
    verdict, _ = classify(result, report, "python")
    assert verdict != "passed"


# The answer is right, but only returned once an orphaned grandchild (setsid, never waited for) has burnt 0.7 s of
# CPU, more than the 0.5 s budget: counting only the program's own process (and the children it waited for)
# would pass it.
CPU_DODGE_PY = """import os, time
def add(a, b):
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            while True:
                pass
        os._exit(0)
    pid = int(os.read(r, 32))
    while True:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            break
        if int(fields[11]) + int(fields[12]) >= 0.7 * os.sysconf("SC_CLK_TCK"):
            break
        time.sleep(0.01)
    return a + b
"""
CPU_DODGE_C = r"""#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(){int a, b, fd[2]; long pid = 0, ut, st; char path[64];
  if (scanf("%d %d", &a, &b) != 2 || pipe(fd)) return 1;
  if (fork() == 0) { setsid();
    if (fork() == 0) { pid = getpid(); write(fd[1], &pid, sizeof pid); for (;;); }
    return 0; }
  read(fd[0], &pid, sizeof pid); snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  for (;;) { FILE *f = fopen(path, "r"); if (!f) break;
    int n = fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st); fclose(f);
    if (n != 2 || ut + st >= 0.7 * sysconf(_SC_CLK_TCK)) break; usleep(10000); }
  printf("%d\n", a + b); return 0; }
"""


@pytest.mark.timeout(180)
def test_cpu_burnt_in_orphans_counts_against_the_budget(verifier):
    """The harness counts every process a test started, also orphans nobody waits for."""
    py_problem = Problem("cpu", "", metadata={"tests": "assert add(1, 2) == 3\n", "timeout_s": 0.5})
    c_problem = Problem("cpu", "", metadata={"tests": IO_TESTS[:1], "language": "c", "timeout_s": 0.5})
    results = verifier.batch([py_problem, c_problem], [f"```python\n{CPU_DODGE_PY}\n```", f"```c\n{CPU_DODGE_C}\n```"])
    for result in results:
        assert result.status == "timeout", result.feedback
