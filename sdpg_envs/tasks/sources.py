"""Task sources: indexable collections of :class:`~sdpg_envs.types.Problem`, plus file/HF loaders.

A source is anything with ``__len__``, ``__getitem__(index) -> Problem`` and a ``name``. Two generic ones live
here: :class:`ListSource` (a fixed list) and :class:`ProceduralSource` (problem = ``generator_fn(seed, index)``,
effectively unbounded and fully offline). Dataset loaders turn local jsonl/json/parquet files (or, online, a
Hugging Face dataset name) into records via :func:`load_records`.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sdpg_envs.types import Problem

PROJECT_ROOT = Path(__file__).resolve().parents[2]
UNBOUNDED = 2**31 - 1
"""Default size of procedural sources: large enough to never repeat in practice, small enough for numpy."""


@runtime_checkable
class TaskSource(Protocol):
    """An indexable, sized collection of problems."""

    name: str

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Problem: ...


def _check_index(index: int, size: int, name: str) -> int:
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise TypeError(f"problem index must be an int, got {type(index).__name__}")
    index = int(index)
    if not 0 <= index < size:
        raise IndexError(f"problem index {index} out of range for source {name!r} with {size} problems")
    return index


class ListSource:
    """A fixed sequence of problems.

    Example:
        >>> src = ListSource([Problem("p0", "1+1?", "2")], name="tiny")
        >>> len(src), src[0].answer
        (1, '2')
    """

    def __init__(self, problems: Iterable[Problem], name: str = "list"):
        self.problems: list[Problem] = list(problems)
        if not self.problems:
            raise ValueError(f"source {name!r} has no problems")
        bad = next((p for p in self.problems if not isinstance(p, Problem)), None)
        if bad is not None:
            raise TypeError(f"ListSource expects Problem objects, got {type(bad).__name__}")
        self.name = name

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, index: int) -> Problem:
        return self.problems[_check_index(index, len(self.problems), self.name)]

    def __repr__(self) -> str:
        return f"ListSource(name={self.name!r}, size={len(self)})"


def problem_rng(seed: int | str, index: int) -> random.Random:
    """A ``random.Random`` determined only by ``(seed, index)`` (stable across processes and platforms)."""
    return random.Random(f"sdpg:{seed}:{index}")


class ProceduralSource:
    """Problems generated on demand: ``source[i] == generator_fn(seed, i)``, deterministic and offline.

    Args:
        generator_fn: ``(seed, index) -> Problem``; use :func:`problem_rng` for randomness inside it.
        seed: Stream seed; different seeds (or splits folded into the seed) give independent problem streams.
        size: Number of addressable problems (default: effectively unbounded).
        name: Human-readable source name.
    """

    def __init__(
        self,
        generator_fn: Callable[[int | str, int], Problem],
        seed: int | str = 0,
        size: int = UNBOUNDED,
        name: str = "procedural",
    ):
        if not callable(generator_fn):
            raise TypeError("generator_fn must be callable as generator_fn(seed, index) -> Problem")
        if int(size) < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.generator_fn, self.seed, self.size, self.name = generator_fn, seed, int(size), name

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Problem:
        problem = self.generator_fn(self.seed, _check_index(index, self.size, self.name))
        if not isinstance(problem, Problem):
            raise TypeError(f"generator of {self.name!r} returned {type(problem).__name__}, expected Problem")
        return problem

    def __repr__(self) -> str:
        return f"ProceduralSource(name={self.name!r}, seed={self.seed!r}, size={self.size})"


def shared_dir() -> Path:
    """``$SDPG_SHARED_DIR`` or ``../shared`` next to the project root."""
    return Path(os.environ.get("SDPG_SHARED_DIR", PROJECT_ROOT.parent / "shared")).resolve()


def data_dir() -> Path:
    """The offline data folder: ``<shared>/data`` (see :func:`shared_dir`)."""
    return shared_dir() / "data"


def _read_local(path: Path) -> list[dict[str, Any]]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        if name.endswith((".json", ".json.gz")):
            data = json.load(fh)
            if not isinstance(data, list):
                raise ValueError(f"{path}: expected a JSON array of records")
            return data
        rows = []
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
        return rows


def load_records(path_or_name: str | os.PathLike, split: str | None = None, **hf_kwargs: Any) -> list[dict[str, Any]]:
    """Read records from a local ``.jsonl``/``.json``/``.parquet`` (optionally ``.gz``) file or an HF dataset.

    A local path always wins. Anything else is treated as a Hugging Face dataset name (needs network and
    ``HF_DATASETS_OFFLINE`` unset), loaded with ``datasets.load_dataset(name, split=split, **hf_kwargs)``.

    Raises:
        FileNotFoundError: The path does not exist and the name cannot be loaded from the Hub.
    """
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return _read_local(path)
    if path.exists() or str(path_or_name).startswith((".", "/", "~")) or Path(str(path_or_name)).suffix:
        raise FileNotFoundError(f"no data file at {path} (set SDPG_SHARED_DIR or pass data_path=...)")
    if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(f"{path_or_name!r} is not a local file and the Hub is offline (HF_*_OFFLINE=1)")
    import datasets

    try:
        return list(datasets.load_dataset(str(path_or_name), split=split or "test", **hf_kwargs))
    except Exception as exc:  # noqa: BLE001 - report any hub/loader failure with the name that was asked for
        raise FileNotFoundError(f"could not load {path_or_name!r} as a local file or HF dataset: {exc}") from exc


def select(records: Sequence[Any], n: int | None) -> list[Any]:
    """The first ``n`` records (all when ``n`` is None), with a clear error for bad ``n``."""
    if n is None:
        return list(records)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return list(records[: int(n)])
