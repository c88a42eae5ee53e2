"""``sdpg eval --model PATH_OR_ID --env sdpg/...``: pass@k, accuracy, compile-error rate, status histogram.

Writes ``results.json`` and ``samples.jsonl`` into ``--output`` (atomically; a rerun with the same config resumes
an interrupted evaluation) and prints a markdown table to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from sdpg_train.commands.common import add_import_argument, import_modules


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="local path or hub id of an AutoModelForCausalLM")
    parser.add_argument("--tokenizer", default=None, help="tokenizer path or id (default: --model)")
    parser.add_argument("--env", required=True, help="registered env id, e.g. sdpg/Arith-v0 (see `sdpg envs`)")
    parser.add_argument("--env-kwargs", default="{}",
                        help="JSON object passed to gym.make, e.g. '{\"split\": \"test\"}'")
    parser.add_argument("--n", type=int, default=None,
                        help="problems to evaluate (default: all; required for procedural envs)")
    parser.add_argument("--offset", type=int, default=0, help="index of the first problem (default 0)")
    parser.add_argument("--samples", type=int, default=1, help="completions per problem (default 1)")
    parser.add_argument("--k", default=None, help="comma-separated pass@k values (default: 1 and --samples)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="0 = greedy; default 0 for --samples 1, else 1.0")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per generate call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None,
                        help="output folder (default: eval_results/<model>__<env>)")
    parser.add_argument("--overwrite", action="store_true", help="discard earlier results in --output")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is fastest for tiny models on busy cores)")
    parser.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    add_import_argument(parser)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def _parse_ks(text: str | None, samples: int) -> list[int]:
    if text is None:
        return sorted({1, samples})
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError as exc:
        raise ValueError(f"--k must be comma-separated integers, got {text!r}") from exc
    if not ks or min(ks) < 1 or max(ks) > samples:
        raise ValueError(f"each k must be in 1..samples={samples}, got {ks}")
    return ks


def load_model(model_id: str, tokenizer_id: str | None, device: str, dtype: str):
    """Load ``AutoModelForCausalLM`` + tokenizer (``sdpg_train.tiny.load_tokenizer``) onto ``device``."""
    import torch
    from transformers import AutoModelForCausalLM

    from sdpg_train.tiny import load_tokenizer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    if torch_dtype == "auto" and device == "cpu":
        torch_dtype = torch.float32
    for name in {model_id, tokenizer_id or model_id}:
        if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
            raise ValueError(f"model path {name} does not exist")
    try:
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch_dtype).to(device)
        tokenizer = load_tokenizer(tokenizer_id or model_id)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load model/tokenizer {model_id!r}: {exc}") from exc
    return model, tokenizer


def run(args: argparse.Namespace) -> int:
    from sdpg_train.evaluation.evaluate import evaluate

    try:
        import_modules(args.imports)
        env_kwargs = json.loads(args.env_kwargs)
        if not isinstance(env_kwargs, dict):
            raise ValueError("--env-kwargs must be a JSON object")
        ks = _parse_ks(args.k, args.samples)
        if args.threads is not None:
            import torch

            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        output = args.output or Path("eval_results") / f"{_slug(Path(args.model).name)}__{_slug(args.env)}"
        model, tokenizer = load_model(args.model, args.tokenizer, args.device, args.dtype)
        report = evaluate(
            model, tokenizer, args.env, n=args.n, offset=args.offset, samples=args.samples, ks=ks,
            temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, stop=args.stop,
            batch_size=args.batch_size, seed=args.seed, env_kwargs=env_kwargs, output_dir=output,
            overwrite=args.overwrite, progress=not args.no_progress, model_name=args.model,
        )
    except (ValueError, OSError, ImportError) as exc:
        print(f"sdpg eval: {exc}", file=sys.stderr)
        return 2
    print(report.to_markdown())
    print(f"wrote {output / 'results.json'} and {output / 'samples.jsonl'}", file=sys.stderr)
    return 0
