"""Measured acceptance of the code verifier (issue 5): correctness sweeps and throughput.

Prints one JSON object per line:

- ``humaneval_canonical`` / ``mbpp_full`` / ``mbpp_sanitized``: references that pass (``passed``/``total``);
- ``*_mutant:<kind>``: mutants that (wrongly) pass, with their ids (genuinely equivalent mutants are listed);
- ``throughput``: HumanEval verifications per second through ``CodeVerifier.batch`` (default sandbox) and
  through ``sdpg verify`` (subprocess, end to end), each with ``ratio`` to an unisolated baseline measured in
  the same run (one plain ``python`` subprocess per problem, 2 at a time, as simple harnesses do);
  ``--repeats`` runs with a busy loop on another core, counting timeouts.

Usage: ``python benchmarks/code_verify.py [--only humaneval,mbpp,throughput] [--repeats 5] [--sandbox auto]``
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import tokenize
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdpg_envs.tasks.humaneval import load_humaneval  # noqa: E402
from sdpg_envs.tasks.mbpp import load_mbpp  # noqa: E402
from sdpg_envs.verifiers.code import CodeVerifier  # noqa: E402


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def off_by_one(code: str) -> str | None:
    """Add 1 to the first integer literal of ``code`` (None when there is none)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    lines = code.splitlines(keepends=True)
    for tok in tokens:
        if tok.type == tokenize.NUMBER and tok.string.isdigit():
            (row, col), (_, end) = tok.start, tok.end
            line = lines[row - 1]
            lines[row - 1] = line[:col] + str(int(tok.string) + 1) + line[end:]
            return "".join(lines)
    return None


def humaneval_mutants(problem) -> dict[str, str | None]:
    prompt = problem.metadata["preamble"]
    body = problem.solution[len(prompt):]
    shifted = off_by_one(body)
    return {"return_none": prompt + "    return None\n", "pass": prompt + "    pass\n",
            "syntax_error": problem.solution + "\n)\n", "off_by_one": prompt + shifted if shifted else None}


def mbpp_mutants(problem) -> dict[str, str | None]:
    code, name = problem.solution, problem.metadata.get("entry_point")
    none = None
    try:
        fn = next((n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    except SyntaxError:
        fn = None
    if fn is not None and fn.body[0].lineno > fn.lineno:
        lines = code.splitlines(keepends=True)
        first = fn.body[0].lineno - 1
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        none = "".join(lines[:first]) + f"{indent}return None\n" + "".join(lines[first:])
    return {"return_none": none, "syntax_error": code + "\n)\n", "off_by_one": off_by_one(code)}


def sweep(name: str, problems, mutants, verifier: CodeVerifier) -> None:
    t0 = time.perf_counter()
    results = verifier.batch(problems, [f"```python\n{p.solution}\n```" for p in problems])
    failed = [(p.id, r.status, r.feedback[:200]) for p, r in zip(problems, results) if not r.passed]
    emit(check=f"{name}_canonical", passed=len(problems) - len(failed), total=len(problems), failures=failed,
         seconds=round(time.perf_counter() - t0, 1))
    kinds = sorted({k for p in problems for k in mutants(p)})
    for kind in kinds:
        pairs = [(p, mutants(p)[kind]) for p in problems if mutants(p)[kind] is not None]
        res = verifier.batch([p for p, _ in pairs], [f"```python\n{code}\n```" for _, code in pairs])
        passing = [p.id for (p, _), r in zip(pairs, res) if r.passed]
        emit(check=f"{name}_mutant:{kind}", mutants=len(pairs), passed=len(passing), passing_ids=passing,
             statuses=dict(sorted({s: sum(r.status == s for r in res) for s in {r.status for r in res}}.items())))


def _baseline_one(problem) -> bool:
    test = problem.metadata["tests"][len(problem.metadata["preamble"]) + 1:]  # the original check() only
    code = problem.solution + "\n" + test + f"\ncheck({problem.metadata['entry_point']})\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.py"
        path.write_text(code)
        return subprocess.run([sys.executable, str(path)], capture_output=True, timeout=60).returncode == 0


def _busy() -> None:
    while True:
        pass


def throughput(problems, sandbox: str, repeats: int) -> None:
    with ThreadPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        ok = sum(pool.map(_baseline_one, problems))
        base = len(problems) / (time.perf_counter() - t0)
    emit(check="throughput_baseline", runs_per_s=round(base, 1), passed=ok, total=len(problems))
    rows = [{"id": p.id, "program": p.solution, "tests": p.metadata["tests"], "entry_point": p.metadata["entry_point"],
             "timeout_s": 10} for p in problems]
    with tempfile.TemporaryDirectory() as tmp, CodeVerifier(sandbox) as verifier:
        src, dst = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
        verifier.batch(problems[:4], [p.solution for p in problems[:4]])  # warm the sandbox pool
        for rep in range(repeats):
            busy = multiprocessing.Process(target=_busy, daemon=True) if rep > 0 else None
            if busy:
                busy.start()
            try:
                t0 = time.perf_counter()
                res = verifier.batch(problems, [p.solution for p in problems])
                api = len(problems) / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "sdpg_train.cli", "verify", "--task", "code", "--input",
                                       str(src), "--output", str(dst), "--no-progress"], capture_output=True,
                                      text=True, cwd=ROOT, env={**os.environ, "SDPG_SANDBOX": sandbox})
                cli = len(problems) / (time.perf_counter() - t0)
                out = [json.loads(line) for line in dst.read_text().splitlines()]
            finally:
                if busy:
                    busy.terminate()
            backend = res[0].details["sandbox"]["backend"]
            emit(check="throughput", repeat=rep, other_core_busy=busy is not None, sandbox=backend,
                 runs_per_s=round(api, 1), cli_runs_per_s=round(cli, 1), baseline_runs_per_s=round(base, 1),
                 ratio=round(api / base, 2), cli_ratio=round(cli / base, 2), passed=sum(r.passed for r in res),
                 cli_passed=sum(r["status"] == "passed" for r in out), total=len(problems),
                 timeouts=sum(r.status == "timeout" for r in res) + sum(r["status"] == "timeout" for r in out),
                 cli_rc=proc.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="humaneval,mbpp,throughput")
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    only = set(args.only.split(","))
    humaneval = load_humaneval()
    with CodeVerifier(args.sandbox, timeout_s=30) as verifier:
        if "humaneval" in only:
            sweep("humaneval", humaneval, humaneval_mutants, verifier)
        if "mbpp" in only:
            sweep("mbpp_full", load_mbpp(split="all"), mbpp_mutants, verifier)
            sweep("mbpp_sanitized", load_mbpp(variant="sanitized", split="all"), mbpp_mutants, verifier)
    if "throughput" in only:
        throughput(humaneval, args.sandbox, args.repeats)


if __name__ == "__main__":
    main()
