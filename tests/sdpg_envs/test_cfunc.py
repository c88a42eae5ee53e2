"""CFunc: references pass through real gcc in the sandbox, gcc diagnostics are parsed and trimmed into feedback,
hostile C is contained, and CFuncRepair feeds the diagnostics back."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import sdpg_envs
from sdpg_envs.tasks.cfunc import CFAMILIES, CFuncConfig, cdiv, cfunc_eval_source, cfunc_problem, cmod
from sdpg_envs.verifiers.cfunc import CFuncVerifier
from sdpg_envs.verifiers.gcc_diagnostics import Diagnostic, parse_gcc, render_diagnostics

gym.register_envs(sdpg_envs)
EVAL = cfunc_eval_source()
GCD = next(p for p in EVAL.problems if p.id == "cfunc/eval/gcd")


@pytest.fixture(scope="module")
def verifier():
    with CFuncVerifier() as v:
        yield v


@pytest.mark.timeout(240)
def test_every_eval_reference_and_every_family_passes_its_tests(verifier):
    problems = list(EVAL.problems) + [cfunc_problem(0, 0, CFuncConfig(families=(f.name,))) for f in CFAMILIES]
    results = verifier.batch(problems, [p.solution for p in problems])
    failed = [(p.id, r.status, r.feedback[:300]) for p, r in zip(problems, results) if not r.passed]
    assert not failed, failed
    assert len(EVAL) == 18 and len({p.metadata["signature"] for p in EVAL.problems}) == 6
    assert all(len(p.metadata["tests"]) >= 5 for p in EVAL.problems)


def test_oracles_use_c_division_and_problems_are_deterministic():
    assert [cdiv(-7, 2), cmod(-7, 2), cdiv(7, -2), cmod(7, -2)] == [-3, -1, -3, 1]
    a, b = cfunc_problem("s", 3, CFuncConfig(level=3)), cfunc_problem("s", 3, CFuncConfig(level=3))
    assert a == b and a.metadata["level"] == 3
    with pytest.raises(ValueError, match="families"):
        CFuncConfig(families=("nope",))


def test_parse_gcc_keeps_diagnostics_and_linker_errors_and_trims():
    out = ("solution.c: In function 'f':\n"
           "solution.c:2:12: warning: unused variable 'y' [-Wunused-variable]\n"
           "solution.c:3:5: error: 'z' undeclared (first use in this function)\n"
           "solution.c:3:5: note: each undeclared identifier is reported only once\n"
           "solution.c:4:1: error: expected ';' before '}' token\n"
           "solution.c:5:1: error: expected declaration or statement at end of input\n"
           "/usr/bin/ld: solution.o: in function `main':\n"
           "solution.c:(.text.startup+0x1c): undefined reference to `g'\n"
           "collect2: error: ld returned 1 exit status\n")
    diags = parse_gcc(out)
    assert [d.kind for d in diags] == ["warning", "error", "note", "error", "error", "link error"]
    assert diags[0].message == "unused variable 'y'" and diags[-1] == Diagnostic(
        "solution.c", 0, 0, "link error", "undefined reference to 'g' (the program must define it)")
    text = render_diagnostics(diags, "int f(int x) {\n    int y;\n    z = x;\n}\n", max_errors=2)
    assert text.splitlines() == ["solution.c:3:5: error: 'z' undeclared (first use in this function)",
                                 "    z = x;", "    ^",
                                 "solution.c:3:5: note: each undeclared identifier is reported only once",
                                 "solution.c:4:1: error: expected ';' before '}' token", "}", "^", "(2 more)"]
    assert render_diagnostics(diags[:1], "").startswith("solution.c:2:12: warning:")  # no error: warnings
    assert parse_gcc("") == [] and render_diagnostics([], "") == ""
    other = parse_gcc("test_driver.c:2:5: error: conflicting types\n/usr/include/x.h:7:1: error: bad\n")
    assert render_diagnostics(other, "").splitlines() == ["test driver: error: conflicting types",
                                                          "/usr/include/x.h:7:1: error: bad"]


@pytest.mark.timeout(120)
def test_feedback_from_real_gcc_and_runs_and_hostile_programs_are_contained(verifier):
    fast = dataclasses.replace(GCD, metadata={**GCD.metadata, "timeout_s": 0.5})
    cases = [
        (GCD, "```c\nint gcd(int a, int b) {\n    int t = a % b\n    return t;\n}\n```", "compile_error"),
        (GCD, "long gcd(int a, int b) { return a; }", "compile_error"),
        (GCD, "int gcd(int a, int b) {\n    return a;\n", "compile_error"),
        (GCD, "int gdc(int a, int b) { return a; }", "compile_error"),
        (GCD, "int gcd(int a, int b) { return a; }", "wrong_answer"),
        (GCD, "int gcd(int a, int b) { int *p = 0; return *p + a; }", "runtime_error"),
        (fast, "#include <unistd.h>\nint gcd(int a, int b) { while (1) fork(); }", "timeout"),
        (fast, "int gcd(int a, int b) { for (;;); }", "timeout"),
        (GCD, "#include <stdlib.h>\nint gcd(int a, int b) { exit(0); }", "wrong_answer"),
        (GCD, "int main(void) { return 1; }\nint gcd(int a, int b) { return b ? gcd(b, a % b) : a; }", "passed"),
    ]
    results = verifier.batch([c[0] for c in cases], [c[1] for c in cases])
    assert [r.status for r in results] == [c[2] for c in cases], [r.feedback for r in results]
    syntax, types, unclosed, link, wrong, crash = (r.feedback for r in results[:6])
    assert syntax == ("Compilation failed (gcc):\nsolution.c:3:5: error: expected ',' or ';' before 'return'\n"
                      "    return t;\n    ^")
    assert results[0].details["diagnostics"][0] == {"file": "solution.c", "line": 3, "column": 5, "kind": "error",
                                                    "message": "expected ',' or ';' before 'return'"}
    assert types.splitlines()[1:] == ["solution.c:1:6: error: conflicting types for 'gcd'; have 'long int(int,  int)'",
                                      "long gcd(int a, int b) { return a; }", "     ^",
                                      "test driver: note: previous declaration of 'gcd' with type 'int(int,  int)'"]
    assert unclosed.splitlines()[1] == "solution.c:2:5: error: expected declaration or statement at end of input"
    assert link.endswith("linker: link error: undefined reference to 'gcd' (the program must define it)")
    assert wrong.splitlines()[:4] == ["2 of 6 tests passed.", "Test 1 failed: gcd(12, 18)", "  expected: 6",
                                      "  actual:   12"]
    assert "Test 1 crashed: gcd(12, 18)" in crash and "SIGSEGV" in crash
    assert results[6].feedback.startswith("0 of 6 tests passed.\nTest 1 ran out of time (0.5 s of CPU)")


@pytest.mark.timeout(120)
def test_cfunc_repair_feeds_gcc_diagnostics_back_and_a_fix_scores():
    env = gym.make("sdpg/CFuncRepair-v0", split="eval", prompt_template="compact", discount=0.5)
    env.reset(options={"index": 0})
    problem = env.unwrapped.problem
    obs, reward, terminated, _, info = env.step("int gcd(int a, int b) { return a }\n")
    assert obs == "# compile_error: solution.c:1:33: error: expected ';' before '}' token\n" and not terminated
    assert "Reference solution:\nint gcd" in info["privileged_context"]
    assert "solution.c:1:33: error: expected ';'" in info["privileged_context"]
    obs, reward, terminated, _, info = env.step("int gcd(int a, int b) { return a; }\n")
    assert obs == "# wrong_answer: Test 1 failed: gcd(12, 18) | expected: 6 | actual: 12\n"
    _, reward, terminated, _, info = env.step(problem.solution)
    assert terminated and reward == 0.25
    assert [t["status"] for t in info["turns"]] == ["compile_error", "wrong_answer", "passed"]
    env.close()


@pytest.mark.timeout(120)
def test_repair_loop_example_runs(capsys):
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).resolve().parents[2] / "examples" / "repair_loop.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "attempt 1: compile_error" in out and "attempt 3: passed, reward 0.64" in out
    assert "solution.c:2:17: error: expected ';' before '}' token" in out
