"""Training curves from ``metrics.jsonl`` for one or more runs on one figure (matplotlib, an optional extra).

Each panel is one quantity (reward, pass rate, compile-error rate, KL to the teacher, entropy, plus any extra
keys); the left column plots it against the optimizer step, the right column against wall time
(``time/elapsed_s``) when the runs logged it. A run appears in a panel only when it logged that quantity;
pass and compile-error rates are derived from per-status counts when not logged directly.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdpg_train.evaluation.compare import METRICS_FILE, read_metrics_jsonl

PANELS: dict[str, tuple[str, ...]] = {
    "reward": ("reward", "reward/mean", "rewards/mean"),
    "pass rate": ("pass_rate", "reward/pass_rate"),
    "compile-error rate": ("compile_error_rate",),
    "KL(student ‖ teacher)": ("distill/kl", "loss/distill_kl", "kl"),
    "entropy": ("entropy", "policy/entropy", "completions/entropy"),
}
"""Panel title -> metric keys tried in order (the first one a run logged is used)."""
STEP_KEYS = ("step", "global_step")
TIME_KEYS = ("time/elapsed_s", "elapsed_s", "time/elapsed")
"""Wall-time keys; ``read_metrics_jsonl`` derives ``time/elapsed_s`` from ``perf/step_s`` when none is logged."""


def load_run(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """``(label, rows)`` for a run folder (its ``metrics.jsonl``) or a metrics file; ``ValueError`` if unusable."""
    p = Path(path)
    file = p / METRICS_FILE if p.is_dir() else p
    if not file.is_file():
        raise ValueError(f"{p} has no {METRICS_FILE}" if p.is_dir() else f"{p} does not exist")
    rows = read_metrics_jsonl(file)
    if not rows:
        raise ValueError(f"{file} holds no metrics rows")
    label = file.parent.name if file.name == METRICS_FILE else file.stem
    return label, rows


def series(rows: Sequence[dict[str, Any]], keys: Sequence[str], x_keys: Sequence[str]) -> tuple[list, list]:
    """``(xs, ys)`` of the first key in ``keys`` that appears, against the first of ``x_keys`` (else row index)."""
    key = next((k for k in keys if any(_num(r.get(k)) for r in rows)), None)
    if key is None:
        return [], []
    xs, ys = [], []
    for i, r in enumerate(rows):
        x = next((r[k] for k in x_keys if _num(r.get(k))), None)
        if x_keys == STEP_KEYS and x is None:
            x = i
        if x is not None and _num(r.get(key)):
            xs.append(float(x))
            ys.append(float(r[key]))
    return xs, ys


def smooth(ys: Sequence[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points (``window <= 1`` returns the values unchanged)."""
    if window <= 1:
        return list(ys)
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= window:
            acc -= ys[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_runs(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    extra_keys: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    smoothing: int = 1,
) -> list[str]:
    """Write one PNG with every panel that at least one run logged; return the panel titles drawn.

    Raises:
        ImportError: matplotlib is missing (install the ``plot`` extra).
        ValueError: a run has no metrics, or no run logged any plottable quantity.
    """
    plt = _pyplot()
    loaded = [load_run(r) for r in runs]
    if labels is not None:
        if len(labels) != len(loaded):
            raise ValueError(f"got {len(labels)} labels for {len(loaded)} runs")
        loaded = [(lab, rows) for lab, (_, rows) in zip(labels, loaded)]
    panels = {**PANELS, **{k: (k,) for k in extra_keys}}
    drawn = [t for t, keys in panels.items() if any(series(rows, keys, STEP_KEYS)[0] for _, rows in loaded)]
    if not drawn:
        raise ValueError(f"no run logged any of {sorted({k for ks in panels.values() for k in ks})}")
    has_time = any(series(rows, panels[t], TIME_KEYS)[0] for _, rows in loaded for t in drawn)
    cols = 2 if has_time else 1
    fig, axes = plt.subplots(len(drawn), cols, figsize=(6 * cols, 2.6 * len(drawn)), squeeze=False)
    for r, title in enumerate(drawn):
        for c, (x_keys, x_name, x_label) in enumerate([(STEP_KEYS, "step", "step"),
                                                      (TIME_KEYS, "wall time", "wall time (s)")][:cols]):
            ax = axes[r][c]
            for label, rows in loaded:
                xs, ys = series(rows, panels[title], x_keys)
                if xs:
                    ax.plot(xs, smooth(ys, smoothing), label=label, linewidth=1.4)
            ax.set_title(f"{title} vs {x_name}", fontsize=10)
            ax.set_xlabel(x_label)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    _save_atomic(fig, Path(out))
    plt.close(fig)
    return drawn


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'sdpg[plot]' (or pip install matplotlib)") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save_atomic(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = out.suffix.lstrip(".").lower() or "png"
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=f".{fmt}")
    os.close(fd)
    try:
        fig.savefig(tmp, format=fmt, dpi=110)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
