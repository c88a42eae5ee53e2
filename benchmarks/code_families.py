"""Held-out PyFunc pass@1 per function family: which families a model solves (docs/results.md, the code task).

    python benchmarks/code_families.py --model runs/code/warmstart            # the --code sweep's warm start
    python benchmarks/code_families.py --model runs/code/warmstart --teacher  # the same model in the teacher view

Scores the same fixed held-out problems as ``benchmarks/learning.py --code`` (test split, problems 0..n-1,
4 samples at temperature 1) and prints one JSON line: ``{"family": {"problems": k, "pass1": p}, ...}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    from sdpg_train.demo.learning import PYFUNC_EXAMPLES, PYFUNC_ID, code_config, load_model, make_env, teacher_format
    from sdpg_train.evaluation.generation import generate_completions
    from sdpg_train.training.sft import TeacherViewEnv

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a saved model folder (e.g. runs/code/warmstart)")
    p.add_argument("--teacher", action="store_true", help="score the teacher view (reference in the prompt)")
    p.add_argument("--env-kwargs", default=json.dumps(PYFUNC_EXAMPLES), help="sdpg/PyFunc-v0 kwargs (JSON)")
    a = p.parse_args(argv)
    if not Path(a.model).is_dir():
        p.error(f"--model {a.model!r} is not a folder")
    torch.set_num_threads(1)
    cfg = code_config("unused", envs={PYFUNC_ID: json.loads(a.env_kwargs)})
    model, tokenizer = load_model(Path(a.model))
    model.eval()
    env = make_env(PYFUNC_ID, cfg.envs[PYFUNC_ID], "test")
    view = TeacherViewEnv(env, tokenizer, teacher_format(cfg)) if a.teacher else env
    problems = [env.problem_at(i) for i in range(cfg.eval_n)]
    sampled = generate_completions(model, tokenizer, [view.prompt_for(q) for q in problems], n=cfg.eval_samples,
                                   temperature=1.0, max_new_tokens=cfg.max_completion_length, batch_size=256,
                                   seed=cfg.eval_seed)
    flat = [q for q in problems for _ in range(cfg.eval_samples)]
    results = env.verify_batch(flat, [c for cs in sampled for c in cs])
    env.close()
    by_family: dict[str, list[float]] = defaultdict(list)
    for q, r in zip(flat, results):
        by_family[q.metadata["family"]].append(r.score)
    out = {f: {"problems": len(v) // cfg.eval_samples, "pass1": round(sum(v) / len(v), 4)}
           for f, v in sorted(by_family.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
