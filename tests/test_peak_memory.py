"""benchmarks/peak_memory.py: the CPU peak is the allocator's exact count of tensor bytes live at once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("peak_memory", ROOT / "benchmarks" / "peak_memory.py")
peak_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peak_memory)


def test_cpu_peak_counts_tensor_bytes_live_at_once_above_the_start():
    before = torch.empty(2**20)  # 4 MiB that exist before the region: the baseline, not counted
    with peak_memory.PeakMemory("cpu") as p:
        a = torch.empty(2 * 2**20)  # 8 MiB, freed before the peak
        del a
        b, c = torch.empty(4 * 2**20), torch.empty(2**20)  # 16 + 4 MiB live together: the peak
        del before, b, c
    assert p.bytes == 20 * 2**20 and p.mb == 20.0
    with peak_memory.PeakMemory("cpu") as q:
        x = torch.ones(1000, 1000)
        (x @ x).sum()  # a 4 MB product (and a scalar) on top of x
    assert 8_000_000 <= q.bytes <= 8_000_000 + 4096


def test_spread_reports_median_range_and_percent():
    s = peak_memory.spread([100.0, 110.0, 105.0])
    assert s == {"median": 105.0, "min": 100.0, "max": 110.0, "spread_pct": 9.52, "n": 3}
