"""Peak memory measured one way in every benchmark: the allocator's own peak, in a fresh process per measurement,
repeated, with the spread reported (issue 18, item 6).

* CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus what was allocated when
  the region began: the caching allocator's peak of live tensor bytes.
* CPU: torch's CPU allocator keeps no peak counter, but with ``profile_memory=True`` the profiler records every
  CPU tensor allocation and free with its size. The peak is the maximum of their running sum above its value at
  the start of the region: the peak of tensor bytes allocated inside it, to the byte. Not counted: memory that is
  not a torch tensor (oneDNN/MKL scratch, Python objects) and tensors that existed before the region (the
  baseline). The profiler slows every op, so the memory pass is never the timed pass.

Why not the resident set: ``VmHWM``/``ru_maxrss`` also move with glibc's heap (a freed buffer that stays in the
arena, a dynamic mmap threshold, per-thread arenas), which made the same kl_head command read 114 MB in two runs
and 220 MB in a third. The tensor count does not depend on any of that.

    with PeakMemory("cpu") as peak:
        work()
    print(peak.mb)

:func:`repeat_fresh` runs a worker command several times, each in its own process, and :func:`spread` summarises
the figures (median, min, max, (max - min) / median).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Sequence

import torch


class PeakMemory:
    """Context manager: ``.mb`` = peak tensor memory allocated inside the block (MiB), the allocator's own count."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.bytes = 0
        self._prof = None
        self._base = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile

            self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False)
            self._prof.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._base
            return
        self._prof.__exit__(*exc)
        events = [e for e in self._prof.profiler.kineto_results.events() if e.name() == "[memory]"
                  and e.device_type() == torch.autograd.DeviceType.CPU]
        running = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            running += e.nbytes()
            peak = max(peak, running)
        self.bytes = peak
        self._prof = None

    @property
    def mb(self) -> float:
        return self.bytes / 2**20


def spread(values: Sequence[float], digits: int = 1) -> dict[str, float]:
    """Median, min, max and the spread (max - min) / median in percent of repeated measurements."""
    med = statistics.median(values)
    return {"median": round(med, digits), "min": round(min(values), digits), "max": round(max(values), digits),
            "spread_pct": round(100 * (max(values) - min(values)) / med, 2) if med else 0.0, "n": len(values)}


def repeat_fresh(cmd: Sequence[str], repeats: int, env: dict | None = None) -> list[dict]:
    """Run ``cmd`` ``repeats`` times, each a fresh process; the last stdout line of each, parsed as JSON."""
    rows = []
    for _ in range(repeats):
        proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


if __name__ == "__main__":  # a self-check: 8 MB live at once, then 16 MB + 4 MB
    with PeakMemory(sys.argv[1] if len(sys.argv) > 1 else "cpu") as p:
        a = torch.empty(2 * 2**20, device=p.device)
        del a
        b, c = torch.empty(4 * 2**20, device=p.device), torch.empty(2**20, device=p.device)
    print(json.dumps({"peak_mb": p.mb, "expected_mb": 20.0}))
