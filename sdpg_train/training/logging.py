"""Metric logging: ``metrics.jsonl`` always, tensorboard / wandb when asked (imported lazily), samples file.

``logger.log(metrics, step)`` once per step with namespaced keys (``reward``, ``loss/…``, ``perf/…``). On ranks
other than 0 :func:`make_logger` returns a :class:`NullLogger`, so ``report_to=["none"]`` and non-zero ranks cost
nothing.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol


class MetricLogger(Protocol):
    def log(self, metrics: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class NullLogger:
    """Logs nothing."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


def _clean(value: Any) -> Any:
    """JSON-safe scalar: non-finite floats become None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlLogger:
    """Appends ``{"step": N, **metrics}`` lines to a file, flushed per line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self._f.write(json.dumps(row, default=str) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class TensorBoardLogger:
    """``torch.utils.tensorboard`` SummaryWriter (needs ``pip install tensorboard``)."""

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("report_to=tensorboard needs `pip install tensorboard` (extra [tensorboard])") from exc
        self._w = SummaryWriter(log_dir=str(log_dir))

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for k, v in metrics.items():
            v = _clean(v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self._w.add_scalar(k, v, step)
        self._w.flush()

    def close(self) -> None:
        self._w.close()


class WandbLogger:
    """Weights & Biases run (needs ``pip install wandb``)."""

    def __init__(self, project: str, run_name: str, config: Mapping[str, Any], output_dir: str | Path) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ImportError("report_to=wandb needs `pip install wandb` (extra [wandb])") from exc
        self._run = wandb.init(project=project, name=run_name, config=dict(config), dir=str(output_dir))

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self._run.log({k: _clean(v) for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self._run.finish()


class CompositeLogger:
    """Fans one call out to several loggers."""

    def __init__(self, loggers: Sequence[MetricLogger]) -> None:
        self.loggers = list(loggers)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for lg in self.loggers:
            lg.log(metrics, step)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()


BACKEND_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}
"""``report_to`` backend -> (module it imports, pip extra of sdpg)."""


def check_backends(report_to: Sequence[str]) -> None:
    """Raise ``ImportError`` naming the install command when a ``report_to`` backend's package is missing (checked
    when the trainer is built, before any model is loaded)."""
    import importlib.util

    for name in report_to:
        module, extra = BACKEND_PACKAGES.get(name, (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise ImportError(f"report_to={name} needs the {module} package: pip install {module} (or "
                              f"pip install 'sdpg[{extra}]'), or drop it from report_to")


def make_logger(report_to: Sequence[str], output_dir: str | Path, *, run_name: str, project: str,
                config: Mapping[str, Any], rank: int = 0) -> MetricLogger:
    """``metrics.jsonl`` plus the backends named in ``report_to`` (rank 0 only)."""
    if rank != 0:
        return NullLogger()
    out = Path(output_dir)
    loggers: list[MetricLogger] = [JsonlLogger(out / "metrics.jsonl")]
    if "tensorboard" in report_to:
        loggers.append(TensorBoardLogger(out / "tensorboard"))
    if "wandb" in report_to:
        loggers.append(WandbLogger(project, run_name, config, out))
    return CompositeLogger(loggers)


def write_samples(path: str | Path, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append sample completions (with their privileged context) to ``samples.jsonl``."""
    path = Path(path)
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"step": step, **row}, default=str) + "\n")


def progress_postfix(metrics: Mapping[str, Any]) -> dict[str, str]:
    """Compact tqdm postfix: reward, distillation KL, tokens/s."""
    keys = (("reward", "reward"), ("kl", "distill/kl"), ("tok/s", "perf/tokens_per_s"))
    return {short: f"{float(metrics[k]):.3g}" for short, k in keys if metrics.get(k) is not None}


def _peak_memory_mb(device: Any) -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, max RSS on CPU (MiB)."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def step_metrics(batch: Any, tview: Any, adv_stats: Mapping[str, float], acc: Mapping[str, float],
                 timings: Mapping[str, float], beta: float, lr: float, device: Any) -> dict[str, float]:
    """Every metric of one step, with namespaced keys (documented in docs/training.md)."""
    n_tok = max(acc.get("tokens", 0), 1)
    lengths = batch.completion_lengths.float()
    m: dict[str, float] = dict(adv_stats)
    for status, count in sorted(Counter(batch.statuses).items()):
        m[f"status/{status}"] = float(count)
    per_func: dict[str, list[float]] = {}
    for r in batch.results:
        funcs = (r.details or {}).get("rewards")
        for name, value in (funcs.items() if isinstance(funcs, Mapping) else ()):
            per_func.setdefault(name, []).append(float(value))
    for name, values in sorted(per_func.items()):
        m[f"rewards/{name}/mean"] = sum(values) / len(values)
    if len(set(batch.sources)) > 1:
        for src in sorted(set(batch.sources)):
            m[f"rewards/{src}/mean"] = float(batch.rewards[[s == src for s in batch.sources]].mean())
    updates = max(acc.get("train/updates", 1), 1)
    m.update({
        "completions/mean_length": float(lengths.mean()), "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(batch.clipped.float().mean()), "distill/beta": beta,
    })
    for key, value in acc.items():
        kind, _, name = key.partition("/")
        if kind == "sum":
            m[name] = value / updates
        elif kind == "mean":
            m[name] = value / n_tok
        elif kind == "max":
            m[name] = value
    if acc.get("teacher/tokens"):
        m["distill/kl"] = acc["teacher/sum/distill/kl"] / acc["teacher/tokens"]
        m["distill/teacher_entropy"] = acc["teacher/sum/distill/teacher_entropy"] / acc["teacher/tokens"]
    if tview is not None:
        act = [i for i, a in enumerate(tview.active) if a]
        m["distill/teacher_frac"] = len(act) / len(tview.active)
        if act:
            m["distill/context_len"] = sum(tview.context_tokens[i] for i in act) / len(act)
            m["distill/context_empty_frac"] = sum(1 for i in act if not tview.contexts[i]) / len(act)
            m["distill/context_truncated_frac"] = sum(tview.truncated[i] for i in act) / len(act)
    m.update({"train/grad_norm": acc.get("train/grad_norm", 0.0) / updates, "train/learning_rate": lr,
              "train/skipped_updates": float(acc.get("train/skipped_updates", 0)),
              "train/micro_batches": float(acc.get("train/micro_batches", 0)),
              "train/num_tokens": float(acc.get("tokens", 0))})
    m.update({f"perf/{k}": float(v) for k, v in timings.items()})
    m["perf/teacher_forward_s"] = acc.get("time/teacher", 0.0)
    m["perf/student_fwd_bwd_s"] = acc.get("time/student", 0.0)
    m["perf/tokens_per_s"] = float(lengths.sum()) / max(timings.get("step_s", 0.0), 1e-9)
    m["perf/peak_mem_mb"] = _peak_memory_mb(device)
    return m
