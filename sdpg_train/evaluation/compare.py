"""Side-by-side comparison of evaluations and training runs, with absolute and relative change.

An *entry* is any of: an eval output folder (``results.json``), a ``results.json`` file, a training run folder
(its ``eval/results.json`` — or the single ``eval/*/results.json`` — when present, else the last logged value
of each key in ``metrics.jsonl``), or a ``metrics.jsonl`` file. The first entry is the baseline.

Example:
    >>> a = Entry("base", "eval", {"compile_error_rate": 0.4, "pass_rate": 0.2})
    >>> b = Entry("sdpg", "eval", {"compile_error_rate": 0.1, "pass_rate": 0.35})
    >>> headline(a, b)[0]
    'compile errors: 40.0% → 10.0% (−75.0% relative)'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdpg_train.evaluation.report import CODE_STATUSES, RESULTS_FILE, fmt_pct, read_results

METRICS_FILE = "metrics.jsonl"
ELAPSED_KEY = "time/elapsed_s"
PASS_STATUSES = ("passed", "correct")
_STATUS_KEY = re.compile(r"^(?:status|statuses|status_counts|verifier/status|rollout/status)/(.+)$")
_ROW_ORDER = ("pass_rate", "accuracy", "reward", "compile_error_rate")
MINUS = "\u2212"
_TURN_KEY = re.compile(r"^episode/(?:pass@1|compile_error_rate|repair_rate)/turn\d+$")


@dataclass
class Entry:
    """One column of the comparison: a label, where it came from, and flat numeric metrics."""

    label: str
    kind: str
    """``"eval"`` (a results.json) or ``"train"`` (last values of a metrics.jsonl)."""
    metrics: dict[str, float | None]
    path: str = ""


# ----------------------------------------------------------------------------------------- loading


def read_metrics_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a training ``metrics.jsonl`` (torn or non-object lines skipped) with derived keys added.

    Derived: ``pass_rate`` / ``compile_error_rate`` from per-status counts, and ``time/elapsed_s`` as the running
    sum of ``perf/step_s`` when the run did not log elapsed time itself.
    """
    rows = []
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(with_status_rates(row))
    if not any(ELAPSED_KEY in r for r in rows):
        elapsed = 0.0
        for r in rows:
            if _is_num(r.get("perf/step_s")):
                elapsed += float(r["perf/step_s"])
                r[ELAPSED_KEY] = elapsed
    return rows


def status_counts(row: dict[str, Any]) -> dict[str, float]:
    """Per-status counts (or shares) in a metrics row: ``status/<name>`` style keys or a ``status_counts`` dict."""
    counts = {m.group(1): float(v) for k, v in row.items() if (m := _STATUS_KEY.match(k)) and _is_num(v)}
    nested = row.get("status_counts")
    if isinstance(nested, dict):
        counts.update({str(k): float(v) for k, v in nested.items() if _is_num(v)})
    return counts


def with_status_rates(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` plus ``pass_rate`` and (for code statuses) ``compile_error_rate`` derived from status counts.

    Keys the row already has are kept as logged.
    """
    counts = status_counts(row)
    total = sum(counts.values())
    if total <= 0:
        return row
    out = dict(row)
    out.setdefault("pass_rate", sum(counts.get(s, 0.0) for s in PASS_STATUSES) / total)
    if any(s in CODE_STATUSES for s in counts):
        out.setdefault("compile_error_rate", counts.get("compile_error", 0.0) / total)
    return out


def load_entry(path: str | Path, label: str | None = None) -> Entry:
    """Resolve an eval folder/file or a training run folder/metrics file into an :class:`Entry`."""
    p = Path(path)
    label = label or _default_label(p)
    if p.is_file():
        if p.suffix == ".jsonl":
            return Entry(label, "train", _last_values(read_metrics_jsonl(p), p), str(p))
        return Entry(label, "eval", _flatten_eval(read_results(p)), str(p))
    if not p.is_dir():
        raise ValueError(f"{p} does not exist")
    results = _find_results(p)
    if results is not None:
        return Entry(label, "eval", _flatten_eval(read_results(results)), str(results))
    if (p / METRICS_FILE).is_file():
        return Entry(label, "train", _last_values(read_metrics_jsonl(p / METRICS_FILE), p), str(p / METRICS_FILE))
    raise ValueError(f"{p} has no {RESULTS_FILE}, eval/{RESULTS_FILE} or {METRICS_FILE}; is it an eval or run dir?")


def _find_results(run: Path) -> Path | None:
    if (run / RESULTS_FILE).is_file():
        return run / RESULTS_FILE
    if (run / "eval" / RESULTS_FILE).is_file():
        return run / "eval" / RESULTS_FILE
    found = sorted((run / "eval").glob(f"*/{RESULTS_FILE}")) if (run / "eval").is_dir() else []
    if len(found) > 1:
        listed = ", ".join(str(f.parent) for f in found)
        raise ValueError(f"{run} holds several evaluations ({listed}); pass the one to compare")
    return found[0] if found else None


def _default_label(p: Path) -> str:
    p = p.resolve()
    if p.is_file():
        p = p.parent
    return p.parent.name if p.name == "eval" else p.name


def _flatten_eval(results: dict[str, Any]) -> dict[str, float | None]:
    m = results["metrics"]
    if not m:
        raise ValueError("the evaluation has no metrics yet (interrupted?); rerun `sdpg eval` to finish it")
    flat: dict[str, float | None] = {k: m.get(k) for k in ("pass_rate", "accuracy", "compile_error_rate")}
    flat.update(m.get("pass_at_k", {}))
    for k in ("mean_completion_tokens", "truncated_rate", "num_problems", "num_samples"):
        flat[k] = m.get(k)
    for row in m.get("turns") or []:  # multi-turn evaluations: per-turn rates
        for k in ("pass@1", "compile_error_rate", "repair_rate"):
            flat[f"{k}/turn{row['turn']}"] = row.get(k)
    total = sum(m.get("status_counts", {}).values()) or 1
    flat.update({f"status/{s}": c / total for s, c in m.get("status_counts", {}).items()})
    return flat


def _last_values(rows: list[dict[str, Any]], path: Path) -> dict[str, float | None]:
    """The last logged numeric value of every key (keys need not appear on every step)."""
    if not rows:
        raise ValueError(f"{path} holds no metrics rows")
    last: dict[str, float | None] = {}
    for row in rows:
        last.update({k: float(v) for k, v in row.items() if _is_num(v)})
    for k in [k for k in last if _TURN_KEY.match(k)]:  # multi-turn runs log episode/<rate>/turn<t>
        last.setdefault(k.removeprefix("episode/"), last.pop(k))
    return last


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ----------------------------------------------------------------------------------------- formatting


def is_rate(key: str) -> bool:
    """Whether a metric is a fraction in [0, 1] shown as a percentage."""
    return key in ("pass_rate", "accuracy", "compile_error_rate", "truncated_rate") or key.startswith(
        ("pass@", "status/", "compile_error_rate/turn", "repair_rate/turn", "episode/pass@1/",
         "episode/compile_error_rate/", "episode/repair_rate/")
    )


def last_turn(entry: Entry) -> int:
    """The highest turn t with a ``compile_error_rate/turn{t}`` metric (0: not a multi-turn entry)."""
    turns = [int(k.rsplit("turn", 1)[1]) for k in entry.metrics if re.fullmatch(r"compile_error_rate/turn\d+", k)]
    return max(turns, default=0)


def turn_headline(entry: Entry) -> str | None:
    """``compile errors at turn 1 → turn 3: 40.0% → 10.0% (−75.0% relative)`` for a multi-turn entry."""
    t = last_turn(entry)
    if t < 2:
        return None
    m = entry.metrics
    return headline_line(f"compile errors at turn 1 → turn {t}", m.get("compile_error_rate/turn1"),
                         m.get(f"compile_error_rate/turn{t}"))


def relative_change(old: float | None, new: float | None) -> float | None:
    """``(new - old) / |old|``; None when either is missing or the baseline is 0."""
    if old is None or new is None or old == 0:
        return None
    return (new - old) / abs(old)


def _signed(x: float, digits: int = 1, suffix: str = "") -> str:
    if x == 0:
        return f"0{suffix}"
    return f"{'+' if x > 0 else MINUS}{abs(x):.{digits}f}{suffix}"


def _value(key: str, v: float | None) -> str:
    if v is None:
        return "n/a"
    return fmt_pct(v) if is_rate(key) else f"{v:.4g}"


def change_cell(key: str, old: float | None, new: float | None) -> str:
    """``+5.0 pts (+25.0%)`` for rates, ``+0.12 (+3.0%)`` otherwise; ``n/a`` when a side is missing."""
    if old is None or new is None:
        return "n/a"
    diff = new - old
    absolute = _signed(100 * diff, 1, " pts") if is_rate(key) else _signed(diff, 4 if abs(diff) < 1 else 2)
    rel = relative_change(old, new)
    return f"{absolute} ({_signed(100 * rel, 1, '%')})" if rel is not None else absolute


def headline_line(name: str, old: float | None, new: float | None) -> str:
    """``compile errors: 40.0% → 10.0% (−75.0% relative)``."""
    if old is None or new is None:
        return f"{name}: {fmt_pct(old)} → {fmt_pct(new)}"
    rel = relative_change(old, new)
    if rel is None:
        tail = "no change" if new == old else "baseline 0%, relative change undefined"
    else:
        tail = f"{_signed(100 * rel, 1, '%')} relative"
    return f"{name}: {fmt_pct(old)} → {fmt_pct(new)} ({tail})"


def headline(base: Entry, other: Entry) -> list[str]:
    """The compile-error and pass-rate lines for ``other`` against ``base`` (pass rate falls back to reward)."""
    lines = []
    old, new = base.metrics.get("compile_error_rate"), other.metrics.get("compile_error_rate")
    if old is not None or new is not None:
        lines.append(headline_line("compile errors", old, new))
    old, new = base.metrics.get("pass_rate"), other.metrics.get("pass_rate")
    if old is not None or new is not None:
        lines.append(headline_line("pass rate", old, new))
    t = min(last_turn(base), last_turn(other))
    if t:  # multi-turn: before → after at the first and the last turn, and the repair rate
        lines.append(headline_line("compile errors at turn 1", base.metrics.get("compile_error_rate/turn1"),
                                   other.metrics.get("compile_error_rate/turn1")))
        if t > 1:
            lines.append(headline_line(f"compile errors at turn {t}", base.metrics.get(f"compile_error_rate/turn{t}"),
                                       other.metrics.get(f"compile_error_rate/turn{t}")))
            lines.append(headline_line(f"repair rate by turn {t}", base.metrics.get(f"repair_rate/turn{t}"),
                                       other.metrics.get(f"repair_rate/turn{t}")))
    return lines


def _row_keys(entries: Sequence[Entry]) -> list[str]:
    keys: list[str] = []
    for e in entries:
        keys += [k for k in e.metrics if k not in keys]
    first = [k for k in _ROW_ORDER if k in keys]
    passk = sorted((k for k in keys if k.startswith("pass@")), key=lambda k: int(k[5:]) if k[5:].isdigit() else 0)
    rest = [k for k in keys if k not in first and k not in passk]
    return first + passk + sorted(rest, key=lambda k: (k.startswith("status/"), k))


def _fill_missing_statuses(entries: Sequence[Entry]) -> list[Entry]:
    """A status an evaluation never produced has share 0 there (not "n/a")."""
    statuses = {k for e in entries for k in e.metrics if k.startswith("status/")}
    return [
        Entry(e.label, e.kind, {**{k: 0.0 for k in statuses}, **e.metrics}, e.path) if e.kind == "eval" else e
        for e in entries
    ]


def compare_markdown(entries: Sequence[Entry], keys: Iterable[str] | None = None) -> str:
    """A markdown table (one column per entry, one change column per non-baseline entry) plus headline lines."""
    if len(entries) < 2:
        raise ValueError("compare needs at least two evaluations or runs")
    entries = _fill_missing_statuses(entries)
    base, others = entries[0], entries[1:]
    keys = list(keys) if keys is not None else _row_keys(entries)
    header = ["metric"] + [e.label for e in entries] + [f"{e.label} vs {base.label}" for e in others]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for k in keys:
        values = [_value(k, e.metrics.get(k)) for e in entries]
        changes = [change_cell(k, base.metrics.get(k), e.metrics.get(k)) for e in others]
        lines.append("| " + " | ".join([k, *values, *changes]) + " |")
    text = "\n".join(lines) + "\n"
    for e in others:
        heads = headline(base, e)
        if heads:
            prefix = f"\n{e.label} vs {base.label}:\n" if len(others) > 1 else "\n"
            text += prefix + "\n".join(f"- {h}" for h in heads) + "\n"
    turns = [(e.label, line) for e in entries if (line := turn_headline(e))]
    if turns:
        text += "\n" + "\n".join(f"- {label}: {line}" for label, line in turns) + "\n"
    kinds = {e.kind for e in entries}
    if len(kinds) > 1:
        text += "\nNote: mixing eval results and training-log values; training values are the last logged step.\n"
    return text
