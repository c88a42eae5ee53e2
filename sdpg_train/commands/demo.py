"""``sdpg demo``: the CPU demo — one warm start, then GRPO, SDPG and PPO on the same problem stream, each scored
on a fixed held-out set every few steps (:mod:`sdpg_train.demo.learning`).

Writes everything under one folder (``runs/demo-<time>/`` by default): ``report.md`` (led by the held-out
curves), ``summary.json``, ``curves.png``, ``warmstart/`` and ``jobs/<method>-s<seed>/``. Rerunning with the
same ``--output`` reuses the warm start and every finished job. See docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="the CI-sized demo (smaller model, short warm start, 6 RL steps; "
                             "about 1 minute on 2 idle cores)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods (default grpo,sdpg,ppo; --quick grpo,sdpg; 'sdpg' runs the "
                             "frozen, sharpened teacher recipe of docs/results.md); LABEL:key=value sets "
                             "SDPGConfig fields")
    parser.add_argument("--seeds", default="0", help="comma-separated RL seeds (default 0)")
    parser.add_argument("--steps", type=int, default=None, help="RL steps per method (default 100, --quick 6)")
    parser.add_argument("--eval-every", type=int, default=None, help="held-out evaluation every N steps (default 10)")
    parser.add_argument("--lr", type=float, default=None, help="RL learning rate, every method (default 5e-4)")
    parser.add_argument("--workers", type=int, default=2, help="jobs trained in parallel (default 2)")
    parser.add_argument("--output", type=Path, default=None, help="run folder (default runs/demo-<time>)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def parse_methods(spec: str) -> dict[str, dict]:
    """``'grpo,sdpg,sdpg-live:loss=sdpg:teacher_model_kind=live'`` -> {label: SDPGConfig overrides}."""
    import json

    from sdpg_train.demo.learning import SDPG_RECIPE

    out: dict[str, dict] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        label, *pairs = item.split(":")
        fields: dict = dict(SDPG_RECIPE) if label == "sdpg" else {"loss": label}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq:
                raise ValueError(f"--methods: {pair!r} in {item!r} is not key=value")
            try:
                fields[key] = json.loads(value)
            except json.JSONDecodeError:
                fields[key] = value
        out[label] = fields
    if not out:
        raise ValueError("--methods needs at least one method")
    return out


def build_config(args: argparse.Namespace):
    """The :class:`~sdpg_train.demo.learning.LearningConfig` the flags describe (``ValueError`` on bad values)."""
    from sdpg_train.config import LOSSES
    from sdpg_train.demo.learning import DEMO_TITLE, LearningConfig, demo_quick_config

    output = str(args.output or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = demo_quick_config(output) if args.quick else LearningConfig(output_dir=output)
    methods = parse_methods(args.methods) if args.methods is not None else dict(cfg.methods)
    unknown = [m for m, f in methods.items() if f.get("loss") not in LOSSES]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}: a label must be a loss ({', '.join(LOSSES)}) or set loss=")
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError as exc:
        raise ValueError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from exc
    changes: dict = {"methods": methods, "seeds": seeds or (0,), "workers": args.workers,
                     "progress": not args.no_progress, "title": DEMO_TITLE}
    for flag in ("steps", "eval_every"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    if args.lr is not None:
        changes["rl"] = {**cfg.rl, "learning_rate": args.lr}
    cfg = replace(cfg, **changes)
    checks = [(cfg.steps >= 1, f"--steps must be >= 1, got {cfg.steps}"),
              (cfg.eval_every >= 1, f"--eval-every must be >= 1, got {cfg.eval_every}"),
              (cfg.workers >= 1, f"--workers must be >= 1, got {cfg.workers}"),
              (cfg.rl.get("learning_rate", 1.0) > 0, f"--lr must be > 0, got {cfg.rl.get('learning_rate')}")]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    return cfg


def run(args: argparse.Namespace) -> int:
    from sdpg_train.demo.learning import run_learning

    try:
        cfg = build_config(args)
    except ValueError as exc:
        print(f"sdpg demo: {exc}", file=sys.stderr)
        return 2
    print(f"sdpg demo: writing to {cfg.output_dir}", file=sys.stderr)
    _, summary = run_learning(cfg)
    report = Path(cfg.output_dir) / "report.md"
    report.write_text(summary.read_text())
    print(report.read_text())
    print(f"report: {report}", file=sys.stderr)
    return 0
