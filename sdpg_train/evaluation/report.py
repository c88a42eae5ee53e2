"""Evaluation records and their files: ``results.json``, ``samples.jsonl`` and a markdown table.

Kept small on purpose. ``results.json`` holds the metrics, the config that produced them, package versions and
the git revision; ``samples.jsonl`` holds one line per completion (prompt, completion, verdict, feedback), from
which every number in ``results.json`` can be recomputed. Whole-file writes are atomic (temp file + rename);
``samples.jsonl`` grows by appended, fsynced chunks while an evaluation runs so finished work survives a crash.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from sdpg_envs.verifiers.code.status import STATUSES as CODE_TAXONOMY

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
FORMAT = "sdpg-eval/1"
CODE_STATUSES = frozenset(CODE_TAXONOMY) - {"timeout"}
"""Statuses only code verifiers emit (``timeout`` is shared with math): their presence means compile errors apply."""
_PACKAGES = ("sdpg", "torch", "transformers", "gymnasium", "sympy", "numpy")


@dataclass(frozen=True)
class SampleRecord:
    """One completion and its verdict (one line of ``samples.jsonl``)."""

    problem_index: int
    problem_id: str
    sample_index: int
    prompt: str
    completion: str
    score: float
    status: str
    passed: bool
    feedback: str = ""
    num_tokens: int = 0
    """Completion length in generated tokens (EOS and padding excluded)."""
    truncated: bool = False
    """True when generation stopped at ``max_new_tokens`` rather than at EOS or a stop string."""
    turns: list = field(default_factory=list)
    """Multi-turn (repair) envs: one ``{"status", "passed", "score", "completion", "feedback", "num_tokens",
    "truncated"}`` per attempt; the record's own fields are then the episode's (final status, episode reward)."""

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> SampleRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


@dataclass
class EvalReport:
    """Everything one evaluation produced; ``metrics`` are recomputable from ``records``."""

    config: dict[str, Any]
    metrics: dict[str, Any]
    records: list[SampleRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    """Package versions, git revision, timings."""

    def to_markdown(self) -> str:
        return markdown_table(self.metrics, title=self.config.get("env_id"))

    def save(self, output_dir: str | Path) -> Path:
        """Write ``results.json`` and ``samples.jsonl`` atomically into ``output_dir``; return the results path."""
        out = Path(output_dir)
        write_jsonl_atomic(out / SAMPLES_FILE, (asdict(r) for r in self.records))
        return write_results(out, self.config, self.metrics, self.meta, complete=True)


# ----------------------------------------------------------------------------------------- files


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` via a temp file in the same folder and ``os.replace``."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line to ``path`` atomically."""
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_samples(path: Path, records: Iterable[SampleRecord]) -> None:
    """Append records to ``samples.jsonl`` and fsync, so a finished chunk survives a crash."""
    with path.open("a", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_samples(path: str | Path) -> list[SampleRecord]:
    """Read ``samples.jsonl``; a torn last line (crash mid-write) or a non-record line is skipped."""
    records = []
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                row = json.loads(line)
                records.append(SampleRecord.from_dict(row))
            except (json.JSONDecodeError, TypeError, AttributeError):
                continue
    return records


def write_results(
    output_dir: Path, config: dict[str, Any], metrics: dict[str, Any], meta: dict[str, Any], *, complete: bool
) -> Path:
    """Write ``results.json`` (``complete: false`` marks an evaluation still running or interrupted)."""
    path = Path(output_dir) / RESULTS_FILE
    write_json_atomic(path, {"format": FORMAT, "complete": complete, "config": config, "metrics": metrics, **meta})
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    """Load a ``results.json`` (or the one inside a folder); raise ``ValueError`` with the reason if unusable."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"{path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict) or "metrics" not in data:
        raise ValueError(f"{path} is not an sdpg eval results file (no 'metrics')")
    return data


def environment_info() -> dict[str, Any]:
    """Package versions, Python, platform and the git revision of the sdpg checkout (None outside git)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        module_version = getattr(sys.modules.get(name), "__version__", None)  # e.g. torch's "+cu130" local tag
        try:
            versions[name] = str(module_version or metadata.version(name))
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"versions": versions, "platform": platform.platform(), "git": git_revision()}


def git_revision(path: str | Path | None = None) -> dict[str, Any] | None:
    """``{"revision": sha, "dirty": bool}`` for the repository holding ``path`` (default: this package)."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": sha, "dirty": bool(dirty)}


# ----------------------------------------------------------------------------------------- markdown


def fmt_pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def markdown_table(metrics: dict[str, Any], title: str | None = None) -> str:
    """A two-column metric table plus a status histogram, both in GitHub markdown."""
    rows: list[tuple[str, str]] = [
        ("problems", str(metrics.get("num_problems", "?"))),
        ("samples per problem", str(metrics.get("samples_per_problem", "?"))),
        ("accuracy (mean score)", fmt_pct(metrics.get("accuracy"))),
    ]
    rows += [(name, fmt_pct(v)) for name, v in metrics.get("pass_at_k", {}).items()]
    if metrics.get("compile_error_rate") is not None:
        rows.append(("compile-error rate", fmt_pct(metrics["compile_error_rate"])))
    rows.append(("mean completion tokens", f"{metrics.get('mean_completion_tokens', 0.0):.1f}"))
    rows.append(("truncated at max tokens", fmt_pct(metrics.get("truncated_rate"))))
    head = f"### {title}\n\n" if title else ""
    lines = ["| metric | value |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rows]
    if metrics.get("turns"):
        lines += ["", turn_table(metrics["turns"])]
    counts: dict[str, int] = metrics.get("status_counts", {})
    total = sum(counts.values()) or 1
    hist = ["| status | count | share |", "|---|---:|---:|"]
    hist += [f"| {s} | {c} | {fmt_pct(c / total)} |" for s, c in counts.items()]
    return head + "\n".join(lines) + "\n\n" + "\n".join(hist) + "\n"


def turn_table(turns: list[dict[str, Any]]) -> str:
    """Per-turn table of a multi-turn evaluation: pass@1, compile-error rate and repair rate by turn t."""
    lines = ["| turn | pass@1 | compile-error rate | repair rate |", "|---:|---:|---:|---:|"]
    lines += [f"| {t['turn']} | {fmt_pct(t['pass@1'])} | {fmt_pct(t['compile_error_rate'])} | "
              f"{fmt_pct(t['repair_rate'])} |" for t in turns]
    return "\n".join(lines)
