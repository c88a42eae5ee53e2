"""The ``sdpg`` console script: a thin dispatcher over ``sdpg_train.commands.<name>`` modules.

Each command module defines ``configure(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``. Modules are imported only when their command runs,
so ``sdpg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a line here when you add a command module.
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("sdpg_train.commands.doctor", "report Python, torch, CUDA, sandbox backends and Docker status"),
    "envs": ("sdpg_train.commands.envs", "list registered reasoning environment ids"),
    "verify": ("sdpg_train.commands.verify", "batch-verify a JSONL file of math answers or programs"),
    "sandbox": ("sdpg_train.commands.sandbox", "sandbox utilities: `sdpg sandbox build-image [--tag]`"),
    "train": ("sdpg_train.commands.train", "train a causal LM with SDPG (or GRPO) on verifier environments"),
    "eval": ("sdpg_train.commands.eval", "evaluate a model on an env: pass@k, accuracy, compile-error rate"),
    "compare": ("sdpg_train.commands.compare", "compare evals or runs side by side (absolute and relative change)"),
    "plot": ("sdpg_train.commands.plot", "plot training curves of several runs into one PNG"),
    "demo": ("sdpg_train.commands.demo", "CPU demo: warm-start a tiny model, compare SDPG/GRPO/PPO, write a report"),
    "train-verifier": ("sdpg_train.commands.train_verifier", "fit a learned scalar verifier on rule-verifier labels"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdpg", description="Verifier environments and the SDPG learner.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.print_usage(sys.stderr)
            print(f"sdpg: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"sdpg {name}", description=COMMANDS[name][1])
    module.configure(cmd_parser)
    args = cmd_parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
