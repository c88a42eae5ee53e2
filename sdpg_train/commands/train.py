"""``sdpg train --config FILE.yaml [--field value ...]``: run the SDPG trainer from a config file and flags.

Every ``SDPGConfig`` field is a flag (``--learning_rate 1e-6``, ``--stop_strings a b``, ``--gate_positive``,
``--env_kwargs '{"sdpg/Arith-v0": {"digits": 3}}'``); flags override the YAML file. ``--import MODULE`` imports
your module first (its Gymnasium envs, its methods: ``--import my_pkg.methods --loss mine``). Under
``torchrun --nproc_per_node N -m sdpg_train.cli train ...`` it trains with DDP.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

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
        return _fail(exc)
    except KeyboardInterrupt:
        print("sdpg train: interrupted before training started", file=sys.stderr)
        return 130
    from sdpg_train.training.trainer import SDPGTrainer

    try:
        trainer = SDPGTrainer(args=config)
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as exc:  # model, env, sandbox, device
        return _fail(exc)
    except KeyboardInterrupt:
        print("sdpg train: interrupted while loading (no step was run)", file=sys.stderr)
        return 130
    resume = args.resume_from_checkpoint
    resume = True if resume in ("last", "true", "True") else resume
    try:
        metrics = trainer.train(resume_from_checkpoint=resume)
    except (FileNotFoundError, FileExistsError) as exc:  # no checkpoint to resume; a used output_dir
        return _fail(exc)
    except KeyboardInterrupt:
        if trainer.dist.is_main:
            print(f"sdpg train: {interrupted_message(trainer)}", file=sys.stderr)
        return 130
    if trainer.dist.is_main:
        keys = ("reward", "distill/kl", "loss/total", "perf/step_s")
        summary = {k: round(float(metrics[k]), 6) for k in keys if metrics.get(k) is not None}
        print(json.dumps({"output_dir": str(trainer.output_dir), "step": trainer.global_step, **summary}))
    return 0


def _fail(exc: BaseException) -> int:
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"sdpg train: {text}", file=sys.stderr)
    return 2


def interrupted_message(trainer: Any, argv: list[str] | None = None) -> str:
    """What Ctrl-C leaves: the last finished step, the last checkpoint, and the command that continues."""
    from sdpg_train.training.checkpoint import last_checkpoint

    ckpt = last_checkpoint(trainer.output_dir)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        argv = argv[1:]
    argv = _without_flags(argv, ("--resume_from_checkpoint", "--output_dir", "--overwrite_output_dir"))
    base = ["sdpg", "train", *argv, "--output_dir", str(trainer.output_dir)]
    step = f"interrupted after step {trainer.global_step}"
    if ckpt is None:
        return (f"{step}; no checkpoint was saved (set --save_steps N to save during training). Start again with: "
                f"{shlex.join([*base, '--overwrite_output_dir'])}")
    return f"{step}; last checkpoint {ckpt}. Resume with: {shlex.join([*base, '--resume_from_checkpoint', 'last'])}"


def _without_flags(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` without the given ``--flag value`` / ``--flag=value`` / bare ``--flag`` entries."""
    out, skip = [], False
    for i, tok in enumerate(argv):
        if skip:
            skip = False
            continue
        name = tok.split("=", 1)[0]
        if name in flags:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            skip = "=" not in tok and nxt is not None and not nxt.startswith("--")
            continue
        out.append(tok)
    return out
