"""Held-out learning curves for every method from one warm start (docs/results.md).

Every method trains with the same budget and the same problem stream; each is scored on a fixed held-out set
every ``--eval-every`` steps, over several seeds. Prints one JSON line per method:

    {"method", "env", "seeds", "warm_start", "final", "final_std", "best", "steps_to_grpo_final",
     "compile_errors_start", "compile_errors_end", "ratio_final_to_grpo", ...}

(scores are fractions in [0, 1]) and writes ``summary.md``, ``summary.json`` and ``curves.png`` (seed bands)
into ``--output``. Rerunning with the same ``--output`` resumes: finished jobs are not rerun.

    python benchmarks/learning.py --quick --output runs/learning-quick        # < 10 min on 2 cores
    python benchmarks/learning.py --output runs/learning                       # 3 seeds × grpo, sdpg, ppo
    python benchmarks/learning.py --methods 'grpo-a1:loss=grpo:alpha=1' ...    # extra variants / controls

``--check MIN_GAIN`` exits 1 unless every method's final held-out score beats the warm start by at least
MIN_GAIN (CI runs the quick version with a small margin).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from sdpg_train.commands.demo import parse_methods
from sdpg_train.demo.learning import (
    PYFUNC_EXAMPLES,
    PYFUNC_ID,
    SDPG_RECIPE,
    LearningConfig,
    code_config,
    quick_config,
    run_learning,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="runs/learning")
    p.add_argument("--quick", action="store_true", help="the reduced sweep (Arith, grpo + sdpg, 2 seeds)")
    p.add_argument("--methods", help="comma-separated labels, each optionally ':key=value' overrides")
    p.add_argument("--seeds", help="comma-separated seeds")
    p.add_argument("--steps", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--prompts", type=int, help="prompts per RL step (default 64)")
    p.add_argument("--generations", type=int, help="completions per prompt (default 4)")
    p.add_argument("--lr", type=float, help="RL learning rate (default 5e-4)")
    p.add_argument("--warmup", type=int, help="learning-rate warm-up updates (default 5)")
    p.add_argument("--sft-steps", type=int, help="warm-start steps (default 250)")
    p.add_argument("--context-fraction", type=float, help="warm-start examples in the teacher view (default 0.5)")
    p.add_argument("--code", action="store_true",
                   help="the code sweep: sdpg/PyFunc-v0 alone (examples prompt, level 1, 40 tokens, 2000 SFT steps)")
    p.add_argument("--with-code", action="store_true",
                   help="Arith and PyFunc together (the --code task design; give --sft-steps, see docs/results.md)")
    p.add_argument("--repair", action="store_true",
                   help="the --code sweep on sdpg/PyFuncRepair-v0 (2 attempts, one-line feedback; grpo + sdpg unless "
                        "--methods): the summary adds first-turn compile errors and the repair rate, start -> end")
    p.add_argument("--repair-fraction", type=float,
                   help="--repair: warm-start examples shown as a second attempt after feedback (default 0.3)")
    p.add_argument("--check", type=float, default=None, metavar="MIN_GAIN")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.quick and (a.code or a.repair):
        p.error("--quick and --code/--repair are exclusive")
    cfg = (quick_config(a.output) if a.quick else code_config(a.output) if a.code or a.repair
           else LearningConfig(output_dir=a.output))
    over: dict = {"progress": not a.no_progress}
    if a.methods:
        over["methods"] = parse_methods(a.methods)
    if a.seeds:
        over["seeds"] = tuple(int(s) for s in a.seeds.split(","))
    for name in ("steps", "eval_every", "workers"):
        if getattr(a, name) is not None:
            over[name] = getattr(a, name)
    if a.prompts is not None:
        over["prompts_per_step"] = a.prompts
    if a.generations is not None:
        over["generations"] = a.generations
    rl = dict(cfg.rl)
    if a.lr is not None:
        rl["learning_rate"] = a.lr
    if a.warmup is not None:
        rl["warmup_steps"] = a.warmup
    over["rl"] = rl
    if a.sft_steps is not None or a.context_fraction is not None:
        sft = {"steps": a.sft_steps, "context_fraction": a.context_fraction}
        over["sft"] = replace(cfg.sft, **{k: v for k, v in sft.items() if v is not None})
    if a.with_code:
        over["envs"] = {**cfg.envs, PYFUNC_ID: dict(PYFUNC_EXAMPLES)}
        over["max_completion_length"] = 40  # level-1 reference programs need up to 32 byte tokens
    if a.repair:
        from sdpg_train.demo.repair import repair_overrides

        over.update(repair_overrides(PYFUNC_EXAMPLES, SDPG_RECIPE, over.get("sft", cfg.sft), over.get("methods"),
                                     a.repair_fraction))
    cfg = replace(cfg, **over)
    rows, md = run_learning(cfg)
    for row in rows:
        print(json.dumps(row), flush=True)
    print(f"[learning] wrote {md}", file=sys.stderr)
    if a.check is not None:
        bad = [r["method"] for r in rows if r["final"] - r["warm_start"] < a.check]
        if bad:
            print(f"[learning] FAIL: {bad} did not beat the warm start by {a.check}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
