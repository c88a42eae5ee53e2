"""``sdpg train --config FILE.yaml [--field value ...]``: run the SDPG trainer from a config file and flags.

Every ``SDPGConfig`` field is a flag (``--learning_rate 1e-6``, ``--stop_strings a b``, ``--gate_positive``,
``--env_kwargs '{"sdpg/Arith-v0": {"digits": 3}}'``); flags override the YAML file. ``--import MODULE`` imports
your module first (its Gymnasium envs, its methods: ``--import my_pkg.methods --loss mine``). Under
``torchrun --nproc_per_node N -m sdpg_train.cli train ...`` it trains with DDP.
"""

from __future__ import annotations

import argparse
import json
import sys

from sdpg_train.commands.common import add_import_argument, import_modules
from sdpg_train.config import add_arguments, from_namespace


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    add_import_argument(parser)
    parser.add_argument("--resume_from_checkpoint", default=None,
                        help="'last' (newest checkpoint-N in output_dir) or a checkpoint folder")


def run(args: argparse.Namespace) -> int:
    try:
        import_modules(args.imports)
        config = from_namespace(args)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"sdpg train: {exc}", file=sys.stderr)
        return 2
    from sdpg_train.training.trainer import SDPGTrainer

    try:
        trainer = SDPGTrainer(args=config)
    except (ValueError, TypeError, OSError) as exc:
        print(f"sdpg train: {exc}", file=sys.stderr)
        return 2
    resume = args.resume_from_checkpoint
    resume = True if resume in ("last", "true", "True") else resume
    try:
        metrics = trainer.train(resume_from_checkpoint=resume)
    except (FileNotFoundError, FileExistsError) as exc:  # no checkpoint to resume; a used output_dir
        print(f"sdpg train: {exc}", file=sys.stderr)
        return 2
    if trainer.dist.is_main:
        keys = ("reward", "distill/kl", "loss/total", "perf/step_s")
        summary = {k: round(float(metrics[k]), 6) for k in keys if metrics.get(k) is not None}
        print(json.dumps({"output_dir": str(trainer.output_dir), "step": trainer.global_step, **summary}))
    return 0
