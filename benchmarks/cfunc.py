"""CFunc (C functions through gcc in the sandbox): references, mutants and throughput against PyFunc.

Prints one JSON object per line:

- ``references``: eval-set and procedural references that pass (``passed``/``total``);
- ``mutant:<kind>``: eval-set mutants that (wrongly) pass, with their names: ``syntax`` (last ``}`` dropped:
  must all be ``compile_error``), ``return0`` (body replaced by ``return 0;`` / nothing), ``off_by_one``
  (first integer literal + 1);
- ``throughput``: CFunc verifications per second through ``CFuncVerifier.batch`` (gold completions), with
  ``ratio`` to PyFunc through ``CodeVerifier.batch`` on as many problems in the same run (gcc compile + one run
  per test against one Python harness run);
- ``repair``: two-attempt ``sdpg/CFuncRepair-v0`` episodes (a syntax-error mutant, then the reference): share
  whose first observation carries a parsed gcc error and whose second attempt scores ``discount``.

Usage: ``python benchmarks/cfunc.py [--n 48] [--sandbox auto]``
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402

import sdpg_envs  # noqa: E402, F401
from sdpg_envs.tasks.cfunc import CFuncConfig, cfunc_eval_source, cfunc_source  # noqa: E402
from sdpg_envs.tasks.pyfunc import PyFuncConfig, pyfunc_source  # noqa: E402
from sdpg_envs.verifiers.cfunc import CFuncVerifier  # noqa: E402
from sdpg_envs.verifiers.code import CodeVerifier  # noqa: E402


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def mutants(solution: str, signature: str) -> dict[str, str | None]:
    head, _, _ = solution.partition("{")
    body = " return 0; " if signature.startswith("int") else " "
    literal = re.search(r"(?<![\w.])(\d+)(?![\w.])", solution.split("{", 1)[1])
    off = None
    if literal:
        start = len(solution.split("{", 1)[0]) + 1 + literal.start(1)
        off = solution[:start] + str(int(literal.group(1)) + 1) + solution[start + len(literal.group(1)):]
    return {"syntax": solution.rstrip().removesuffix("}"), "return0": head + "{" + body + "}\n", "off_by_one": off}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=48, help="procedural problems per level, and throughput batch")
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args()
    evals = list(cfunc_eval_source().problems)
    procedural = [cfunc_source(CFuncConfig(level=lv), seed=7)[i] for lv in (1, 2, 3) for i in range(args.n)]
    with CFuncVerifier(args.sandbox) as cv, CodeVerifier(args.sandbox) as pv:
        problems = evals + procedural
        results = cv.batch(problems, [p.solution for p in problems])
        emit(check="references", passed=sum(r.passed for r in results), total=len(results),
             eval_passed=sum(r.passed for r in results[:len(evals)]), eval_total=len(evals),
             failed=[p.id for p, r in zip(problems, results) if not r.passed])
        for kind in ("syntax", "return0", "off_by_one"):
            pairs = [(p, m) for p in evals if (m := mutants(p.solution, p.metadata["signature"])[kind]) is not None]
            res = cv.batch([p for p, _ in pairs], [m for _, m in pairs])
            statuses: dict[str, int] = {}
            for r in res:
                statuses[r.status] = statuses.get(r.status, 0) + 1
            emit(check=f"mutant:{kind}", survived=sum(r.passed for r in res), total=len(res), statuses=statuses,
                 survivors=[p.metadata["entry_point"] for (p, _), r in zip(pairs, res) if r.passed])
        cfunc = procedural[: args.n]
        pyfunc = [pyfunc_source(PyFuncConfig(level=1), seed=7)[i] for i in range(args.n)]
        pv.batch(pyfunc[:2], [p.solution for p in pyfunc[:2]])  # warm both sandboxes
        cv.batch(cfunc[:2], [p.solution for p in cfunc[:2]])
        t0 = time.perf_counter()
        c_ok = sum(r.passed for r in cv.batch(cfunc, [p.solution for p in cfunc]))
        t1 = time.perf_counter()
        p_ok = sum(r.passed for r in pv.batch(pyfunc, [p.solution for p in pyfunc]))
        t2 = time.perf_counter()
        emit(check="throughput", cfunc_per_s=round(args.n / (t1 - t0), 2), pyfunc_per_s=round(args.n / (t2 - t1), 2),
             ratio=round((t2 - t1) / (t1 - t0), 3), cfunc_passed=c_ok, pyfunc_passed=p_ok, n=args.n,
             note="ratio = CFunc throughput / PyFunc throughput, same run")
    env = gym.make("sdpg/CFuncRepair-v0", split="eval", discount=0.5, sandbox=args.sandbox).unwrapped
    fed_back = repaired = 0
    for i in range(env.num_problems):
        env.reset(options={"index": i})
        broken = mutants(env.problem.solution, env.problem.metadata["signature"])["syntax"]
        obs, _, terminated, _, info = env.step(broken)
        fed_back += (not terminated) and "Compilation failed (gcc):\nsolution.c:" in obs and bool(
            info["verifier"]["details"].get("diagnostics"))
        _, reward, terminated, _, _ = env.step(env.gold_completion(env.problem))
        repaired += terminated and reward == 0.5
    env.close()
    emit(check="repair", episodes=env.num_problems, gcc_error_fed_back=fed_back, repaired_at_turn_2=repaired)


if __name__ == "__main__":
    main()
