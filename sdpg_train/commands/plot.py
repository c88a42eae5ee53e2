"""``sdpg plot RUN... --out FILE.png``: training curves of several runs on one figure (needs matplotlib)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, help="training run folders (metrics.jsonl) or metrics files")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), help="image to write (default curves.png)")
    parser.add_argument("--keys", default="", help="comma-separated extra metric keys to plot, one panel each")
    parser.add_argument("--labels", default=None, help="comma-separated legend labels (default: folder names)")
    parser.add_argument("--smooth", type=int, default=1, help="moving-average window in points (default 1 = off)")


def run(args: argparse.Namespace) -> int:
    from sdpg_train.evaluation.plotting import plot_runs

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    extra = [k.strip() for k in args.keys.split(",") if k.strip()]
    try:
        drawn = plot_runs(args.runs, args.out, extra_keys=extra, labels=labels, smoothing=args.smooth)
    except (ValueError, OSError, ImportError) as exc:
        print(f"sdpg plot: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(args.runs)} runs; panels: {', '.join(drawn)})")
    return 0
