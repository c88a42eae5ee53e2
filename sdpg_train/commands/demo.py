"""``sdpg demo``: the CPU demo — warm start a tiny model, then SDPG vs GRPO (vs PPO) on one sample budget.

Writes everything under one folder (``runs/demo-<time>/`` by default): ``report.md``, ``report.json``,
``curves.png``, ``warmstart/`` and ``runs/<method>/``. Rerunning with the same ``--output`` skips the stages
whose outputs exist. See docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="the CI-sized demo (smaller model, short warm start, 4 RL steps; about 1 minute on "
                             "2 idle cores)")
    parser.add_argument("--methods", default="sdpg,grpo,ppo",
                        help="comma-separated losses to compare (default sdpg,grpo,ppo; unavailable ones are "
                             "skipped and named in the report)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model, warm start, RL and evaluation")
    parser.add_argument("--steps", type=int, default=None, help="RL steps per method (default 20, --quick 4)")
    parser.add_argument("--sft-steps", type=int, default=None, help="warm-start steps (default 300, --quick 60)")
    parser.add_argument("--beta", type=float, default=None, help="SDPG distillation weight β (default 0.05)")
    parser.add_argument("--lr", type=float, default=None, help="RL learning rate, every method (default 2e-4)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="training pass rate for steps-to-threshold (default: halfway to the best final)")
    parser.add_argument("--eval-n", type=int, default=None, help="held-out problems per env (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="methods trained in parallel (default 2)")
    parser.add_argument("--output", type=Path, default=None, help="run folder (default runs/demo-<time>)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_config(args: argparse.Namespace):
    """The :class:`~sdpg_train.demo.run.DemoConfig` the flags describe (``ValueError`` on bad values)."""
    from sdpg_train.demo.run import DemoConfig, quick_config

    output = str(args.output or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods:
        raise ValueError("--methods needs at least one method")
    cfg = quick_config(output) if args.quick else DemoConfig(output_dir=output)
    changes = {"methods": methods, "seed": args.seed, "workers": args.workers, "progress": not args.no_progress,
               "threshold": args.threshold}
    for flag, name in (("steps", "steps"), ("beta", "beta"), ("eval_n", "eval_n"), ("lr", "learning_rate")):
        if getattr(args, flag) is not None:
            changes[name] = getattr(args, flag)
    if args.sft_steps is not None:
        changes["sft"] = replace(cfg.sft, steps=args.sft_steps)
    cfg = replace(cfg, sft=replace(changes.get("sft", cfg.sft), seed=args.seed), **{
        k: v for k, v in changes.items() if k != "sft"})
    checks = [(cfg.steps >= 1, f"--steps must be >= 1, got {cfg.steps}"),
              (cfg.eval_n >= 1, f"--eval-n must be >= 1, got {cfg.eval_n}"),
              (cfg.workers >= 1, f"--workers must be >= 1, got {cfg.workers}"),
              (cfg.beta >= 0, f"--beta must be >= 0, got {cfg.beta}"),
              (cfg.learning_rate > 0, f"--lr must be > 0, got {cfg.learning_rate}"),
              (cfg.threshold is None or 0 <= cfg.threshold <= 1, "--threshold must be in [0, 1]")]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return cfg


def run(args: argparse.Namespace) -> int:
    from sdpg_train.demo.run import run_demo, split_methods

    try:
        cfg = build_config(args)
        _, missing = split_methods(cfg)
    except ValueError as exc:
        print(f"sdpg demo: {exc}", file=sys.stderr)
        return 2
    for m in missing:
        print(f"sdpg demo: method {m!r} is not available in this build (SDPGConfig.loss); skipping it",
              file=sys.stderr)
    print(f"sdpg demo: writing to {cfg.output_dir}", file=sys.stderr)
    try:
        report = run_demo(cfg)
    except ValueError as exc:
        print(f"sdpg demo: {exc}", file=sys.stderr)
        return 2
    print(report.read_text())
    print(f"report: {report}", file=sys.stderr)
    return 0
