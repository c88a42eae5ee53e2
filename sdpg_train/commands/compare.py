"""``sdpg compare A B ...``: eval results or training runs side by side, with absolute and relative change.

The first argument is the baseline. Prints a markdown table plus the headline lines
("compile errors: X% → Y% (−Z% relative)", "pass rate: ...").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path,
                        help="eval folders / results.json, or training run folders / metrics.jsonl (first = baseline)")
    parser.add_argument("--labels", default=None, help="comma-separated column labels (default: folder names)")
    parser.add_argument("--keys", default=None, help="comma-separated metrics to show (default: all found)")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown to this file")


def run(args: argparse.Namespace) -> int:
    from sdpg_train.evaluation.compare import compare_markdown, load_entry
    from sdpg_train.evaluation.report import write_text_atomic

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else [None] * len(args.paths)
    try:
        if len(labels) != len(args.paths):
            raise ValueError(f"got {len(labels)} labels for {len(args.paths)} paths")
        entries = [load_entry(p, lab) for p, lab in zip(args.paths, labels)]
        keys = [k.strip() for k in args.keys.split(",")] if args.keys else None
        text = compare_markdown(entries, keys)
        if args.output is not None:
            write_text_atomic(args.output, text)
    except (ValueError, OSError) as exc:
        print(f"sdpg compare: {exc}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0
