"""``sdpg envs``: list the registered reasoning environment ids (built-in and user-registered)."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", default="sdpg", help="id namespace to list ('' for every namespace)")
    parser.add_argument("--json", action="store_true", help="one JSON object per id instead of a table")


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import sdpg_envs  # noqa: F401  (registers the built-in ids)
    from sdpg_envs.registration import BUILTIN_ENVS

    descriptions = {entry.id: entry.description for entry in BUILTIN_ENVS}
    prefix = f"{args.namespace}/" if args.namespace else ""
    ids = sorted(i for i in gym.registry if i.startswith(prefix))
    for env_id in ids:
        spec = gym.spec(env_id)
        entry = spec.entry_point if isinstance(spec.entry_point, str) else repr(spec.entry_point)
        if args.json:
            print(json.dumps({"id": env_id, "entry_point": entry, "kwargs": spec.kwargs,
                              "description": descriptions.get(env_id, "")}))
        else:
            print(f"{env_id:<22} {descriptions.get(env_id) or entry}")
    return 0
