"""Normal programs, batches and bad input, on every available backend; plus the factory and probes."""

from __future__ import annotations

import pytest
from sandbox_helpers import py

from sandboxes import ExecutionResult, Limits, Program, Sandbox, Status, make_sandbox, probe_backends, python_program

pytestmark = pytest.mark.timeout(60)


def test_exit_codes(sandbox):
    assert sandbox.run(py("print('hi')")).exit_code == 0
    assert sandbox.run(py("import sys\nsys.exit(3)")).exit_code == 3
    result = sandbox.run(py("import sys\nsys.exit('bad input')"))
    assert result.exit_code == 1 and "bad input" in result.stderr and result.status is Status.OK
    result = sandbox.run(py("raise ValueError('boom')"))
    assert result.exit_code == 1 and result.stderr.rstrip().endswith("ValueError: boom")
    assert "run_python_inline" not in result.stderr  # the runner's own frame is hidden


def test_stdin_and_stream_separation(sandbox):
    source = "import sys\nfor line in sys.stdin:\n    print(line.strip()[::-1])\nprint('err', file=sys.stderr)\n"
    result = sandbox.run(py(source, stdin="abc\nxyz\n"))
    assert result.ok and result.stdout == "cba\nzyx\n" and result.stderr == "err\n"
    assert sandbox.run(py("print(repr(input()))", stdin=b"bytes in\n")).stdout == "'bytes in'\n"


def test_unicode_and_large_allowed_output(sandbox):
    result = sandbox.run(py("print('héllo ✓ 日本 🐍')"))
    assert result.ok and result.stdout == "héllo ✓ 日本 🐍\n"
    result = sandbox.run(py("import sys\nsys.stdout.write('z' * 900_000)"))
    assert result.ok and len(result.stdout) == 900_000 and not result.stdout_truncated


def test_files_args_and_result_fields(sandbox):
    program = Program(command=("python", "pkg/run.py", "a", "b"),
                      files={"pkg/run.py": "import sys, helper\nprint(sys.argv[1:], helper.X, __name__)",
                             "pkg/helper.py": "X = 7", "data.bin": b"\x00\xff"})
    result = sandbox.run(program)
    assert result.ok and result.stdout == "['a', 'b'] 7 __main__\n", result
    assert result.isolated is sandbox.isolated and result.backend == sandbox.name
    assert result.wall_s > 0 and result.cpu_s is not None and isinstance(result, ExecutionResult)
    result = sandbox.run(Program(command=("python", "-c", "import os; print(sorted(os.listdir('.')))")))
    assert result.stdout == "[]\n"  # a fresh, empty work dir: nothing from the previous run


def test_run_many_yields_every_index(sandbox):
    programs = [py(f"print({i} * {i})") for i in range(12)]
    seen = dict(sandbox.run_many(programs, max_workers=2))
    assert sorted(seen) == list(range(12))
    assert all(seen[i].stdout == f"{i * i}\n" for i in range(12))


def test_bad_input(sandbox):
    for bad in (Program(command=()), Program(command=("python", "a\x00b")),
                Program(command=("python", "x.py"), files={"../escape.py": "x"}),
                Program(command=("python", "x.py"), files={"/abs.py": "x"}), "print(1)"):
        with pytest.raises(ValueError):
            sandbox.run(bad)
    with pytest.raises(ValueError):
        list(sandbox.run_many([py("print(1)"), Program(command=())]))
    garbage = sandbox.run(python_program(bytes(range(256)) * 4))
    assert garbage.status is Status.OK and garbage.exit_code == 1 and "Error" in garbage.stderr
    huge = sandbox.run(python_program("# " + "x" * (sandbox.limits.tmpfs_mb << 20)))
    assert huge.status is Status.SANDBOX_ERROR and "tmpfs_mb" in huge.error
    big_ok = sandbox.run(python_program("x = 1\n" + "# pad\n" * 500_000 + "print(x)"))
    assert big_ok.ok and big_ok.stdout == "1\n"
    missing = sandbox.run(Program(command=("no-such-binary-xyz",)))
    assert missing.status is Status.OK and missing.exit_code == 127


def test_invalid_limits_and_kinds():
    with pytest.raises(ValueError):
        Limits(wall_s=0)
    with pytest.raises(ValueError):
        Limits(memory_mb=-5)
    with pytest.raises(ValueError):
        make_sandbox("firecracker")
    with pytest.raises(ValueError):
        make_sandbox("process", limits={"wall_s": 1})
    with pytest.raises(ValueError):
        python_program(123)


def test_probe_backends_and_auto():
    probes = probe_backends()
    assert set(probes) == {"bwrap", "process", "docker"}
    assert all(isinstance(ok, bool) and isinstance(why, str) and why for ok, why in probes.values())
    assert probes["process"][0]
    with make_sandbox("auto", workers=1) as sandbox:
        assert isinstance(sandbox, Sandbox)
        assert sandbox.name == ("bwrap" if probes["bwrap"][0] else "process")
        assert sandbox.run(py("print(1)")).stdout == "1\n"


@pytest.mark.timeout(120)
def test_build_image_command(docker_engine):
    from sdpg_train.cli import main

    assert main(["sandbox", "build-image", "--docker-host", docker_engine, "--tag", "sdpg-sandbox:clitest"]) == 0
    assert main(["sandbox", "build-image", "--docker-host", "unix:///nonexistent/docker.sock"]) == 1
