"""``sdpg train-verifier``: fit a learned scalar verifier on rule-verifier labels and report held-out agreement.

Example: ``sdpg train-verifier --env sdpg/Arith-v0 --model tiny --num_problems 300 --output runs/verifier``
prints one JSON line (held-out accuracy and AUC against the rule verifier) and saves the head; use it as a reward
with ``sdpg_train.training.learned_verifier.LearnedRewardSource(env, LearnedVerifier.load(path))``.
"""

from __future__ import annotations

import argparse
import json
import sys

from sdpg_train.commands.common import add_import_argument, import_modules


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="sdpg/Arith-v0", help="env id whose rule verifier gives the labels")
    add_import_argument(parser)
    parser.add_argument("--env_kwargs", default="{}", help="JSON keyword arguments for gym.make")
    parser.add_argument("--model", default="tiny", help="featuriser: hub id, local path or 'tiny'")
    parser.add_argument("--num_problems", type=int, default=300, help="problems (3 candidates each)")
    parser.add_argument("--epochs", type=int, default=200, help="full-batch AdamW epochs")
    parser.add_argument("--heldout_frac", type=float, default=0.25, help="fraction of examples held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="folder to save the verifier into (optional)")


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import torch

    import sdpg_envs  # noqa: F401
    from sdpg_envs.registration import make_error_message
    from sdpg_train.core.model_io import load_model_and_tokenizer
    from sdpg_train.training.learned_verifier import LearnedVerifier, collect_examples, featurize, train_verifier

    try:
        import_modules(args.imports)
        kwargs = json.loads(args.env_kwargs)
        if args.num_problems < 2 or not 0 < args.heldout_frac < 1:
            raise ValueError("need --num_problems ≥ 2 and 0 < --heldout_frac < 1")
        try:
            env = gym.make(args.env, **kwargs)
        except (gym.error.Error, ModuleNotFoundError) as exc:
            raise ValueError(make_error_message(args.env, exc)) from exc
        lm, tok = load_model_and_tokenizer(args.model, None, name_or_path=None, dtype="float32", seed=args.seed,
                                           gradient_checkpointing=False)
    except (ValueError, OSError, ImportError, gym.error.Error, json.JSONDecodeError) as exc:
        print(f"sdpg train-verifier: {exc}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    data = collect_examples(env, args.num_problems, seed=args.seed)
    feats = featurize(lm, tok, data.prompts, data.completions)
    head, metrics = train_verifier(feats, data.labels, heldout_frac=args.heldout_frac, epochs=args.epochs,
                                   seed=args.seed)
    if args.output:
        LearnedVerifier(lm, tok, head, args.model).save(args.output)
    print(json.dumps({"env": args.env, "model": args.model, **{k: round(v, 4) for k, v in metrics.items()}}))
    return 0
