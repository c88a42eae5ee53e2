"""Benchmark: the chunked SDPG head vs naive full logits (peak extra memory, forward+backward time, error).

Both implementations compute, per completion token, the sampled-token log-prob, the entropy and the exact
full-vocabulary KL(p || SG q) to a live teacher (same LM-head weight, other hidden states), then backpropagate
L = sum_t (c1 logp + c2 H + c3 KL) into the hidden states and the LM-head weight. "naive" materialises the
(N, V) logits and lets autograd keep what it needs; "chunked" is :func:`sdpg_train.core.head.sdpg_head`.

A third implementation, "fused", is :func:`sdpg_train.core.head.sdpg_head_loss`: the same objective passed as a
token-separable loss, differentiated chunk by chunk inside the forward (no recomputation in backward).

Each (implementation, N) runs in ``--procs`` fresh subprocesses (default 3). Memory (benchmarks/peak_memory.py),
one untimed pass per process after the timed runs, inputs already built (not counted; the (V, H) weight gradient
is counted for every implementation):
  * CPU: the peak of tensor bytes allocated during forward + backward, from the profiler's allocation events;
  * CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus what was allocated.
``<impl>_peak_mb`` is the median over the processes, ``<impl>_peak_spread_pct`` = (max - min) / median; time is
the fastest of all timed runs.
Error: the chunked run's outputs and gradients are compared with the naive run's (same inputs, same seed):
``max_rel_err`` = max over (logp, entropy, kl, dL/dh, dL/dW) of ||chunked - naive|| / ||naive|| (``fused_max_rel_err``
likewise), and ``<impl>_err_vs_fp64`` the same for values and dL/dh on the first 128 tokens against fp64.

Prints one JSON object per N, with the ratios to naive measured in the same run.

    python benchmarks/kl_head.py                    # Qwen2.5-0.5B head (896 x 151,936), fp32, CPU, N = 512, 2048
    python benchmarks/kl_head.py --quick            # reduced size, < 1 minute
    python benchmarks/kl_head.py --device cuda --dtype bfloat16 --n 4096 16384 32768 --chunk-size 4096
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from peak_memory import PeakMemory, repeat_fresh, spread  # noqa: E402

from sdpg_train.core.head import sdpg_head, sdpg_head_loss  # noqa: E402

IMPLS = ("naive", "chunked", "fused")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _inputs(n: int, hidden: int, vocab: int, dtype: torch.dtype, device: str, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = (torch.randn(vocab, hidden, generator=g) * hidden**-0.5 * 2.0).to(device, dtype).requires_grad_()
    h = torch.randn(n, hidden, generator=g).to(device, dtype).requires_grad_()
    th = (h.detach().float() + 0.5 * torch.randn(n, hidden, generator=g).to(device)).to(dtype)
    y = torch.randint(0, vocab, (n,), generator=g).to(device)
    coef = torch.randn(3, n, generator=g).to(device)  # upstream weights for logp, entropy, kl
    return h, w, th, y, coef


def naive(h, w, th, y, temperature: float = 1.0):
    """Full (N, V) logits in fp32, standard autograd."""
    logp_all = torch.log_softmax((h @ w.t()).float() / temperature, -1)  # (N, V)
    p = logp_all.exp()
    with torch.no_grad():
        logq = torch.log_softmax((th @ w.t()).float() / temperature, -1)  # (N, V), detached teacher
    return logp_all.gather(1, y[:, None]).squeeze(1), -(p * logp_all).sum(-1), (p * (logp_all - logq)).sum(-1)


def chunked(h, w, th, y, chunk_size: int):
    out = sdpg_head(h, w, y, teacher_hidden=th, chunk_size=chunk_size)
    return out.logp, out.entropy, out.kl_teacher


def _run(impl: str, h, w, th, y, coef, chunk_size: int):
    h.grad = w.grad = None
    if impl == "fused":  # the same objective, differentiated chunk by chunk inside the forward
        fn = lambda rows, lp, ent, kl, _klr: (coef[0, rows] * lp + coef[1, rows] * ent + coef[2, rows] * kl).sum()  # noqa: E731
        loss, out = sdpg_head_loss(h, w, y, fn, teacher_hidden=th, chunk_size=chunk_size)
        loss.backward()
        return out.logp, out.entropy, out.kl_teacher
    outs = naive(h, w, th, y) if impl == "naive" else chunked(h, w, th, y, chunk_size)
    sum((c * o).sum() for c, o in zip(coef, outs)).backward()
    return outs


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def worker(args: argparse.Namespace) -> dict:
    """One implementation at one N in this (fresh) process; saves outputs for the error check."""
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype, dev, n = DTYPES[args.dtype], args.device, args.n[0]
    small = _inputs(min(n, 64), args.hidden, args.vocab, dtype, dev, seed=1)
    _run(args.impl, *small, args.chunk_size)  # warm-up: thread pools, BLAS buffers, kernels
    del small
    h, w, th, y, coef = _inputs(n, args.hidden, args.vocab, dtype, dev)
    _sync(dev)
    times = []
    for _ in range(args.repeats):
        if dev == "cuda":
            torch.cuda.empty_cache()
        t0 = time.perf_counter()
        try:
            outs = _run(args.impl, h, w, th, y, coef, args.chunk_size)
            _sync(dev)
        except torch.OutOfMemoryError:
            return {"impl": args.impl, "n_tokens": n, "oom": True}
        times.append(time.perf_counter() - t0)
    del outs
    h.grad = w.grad = None
    if dev == "cuda":
        torch.cuda.empty_cache()
    with PeakMemory(dev) as peak:  # an untimed pass: the CPU measure slows every op
        outs = _run(args.impl, h, w, th, y, coef, args.chunk_size)
    if args.save:
        torch.save({"outs": [o.detach().float().cpu() for o in outs], "dh": h.grad.float().cpu(),
                    "dw": w.grad.float().cpu()}, args.save)  # fmt: skip
    return {"impl": args.impl, "n_tokens": n, "peak_mb": round(peak.mb, 1), "s": round(min(times), 3)}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def _truth_errors(args: argparse.Namespace, n: int, saved: dict[str, dict], rows: int = 128) -> dict[str, float]:
    """Error of each implementation against an fp64 naive computation on the first ``rows`` tokens.

    Per-token values and dL/dh of token t depend only on row t, so a row subset gives exact fp64 references
    for them at a fraction of the cost (dL/dW needs every row and is left out here).
    """
    h, w, th, y, coef = _inputs(n, args.hidden, args.vocab, DTYPES[args.dtype], "cpu")
    r = min(rows, n)
    hs = h.detach()[:r].double().requires_grad_()
    outs = naive(hs, w.detach().double(), th[:r].double(), y[:r])
    outs = [o.double() for o in outs]
    sum((c.double() * o).sum() for c, o in zip(coef[:, :r], outs)).backward()
    errs = {}
    for impl, res in saved.items():
        e = [_rel(a[:r], b) for a, b in zip(res["outs"], outs)] + [_rel(res["dh"][:r], hs.grad)]
        errs[f"{impl}_err_vs_fp64"] = float(f"{max(e):.3g}")
    return errs


def _spawn(args: argparse.Namespace, impl: str, n: int, save: Path) -> dict:
    """``--procs`` fresh worker processes for (impl, n): the peak's median and spread, the fastest time."""
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--n", str(n), "--save", str(save)]
    for flag in ("hidden", "vocab", "chunk_size", "dtype", "device", "repeats", "threads"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    rows = repeat_fresh(cmd, args.procs)
    if any(r.get("oom") for r in rows):
        return {"impl": impl, "n_tokens": n, "oom": True}
    peaks = spread([r["peak_mb"] for r in rows])
    return {"impl": impl, "n_tokens": n, "peak_mb": peaks["median"], "peak_min": peaks["min"],
            "peak_max": peaks["max"], "peak_spread_pct": peaks["spread_pct"], "s": min(r["s"] for r in rows)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="reduced size (H 256, V 32,000, N 256/1024), < 1 minute")
    p.add_argument("--n", type=int, nargs="+", default=None, help="completion tokens (default 512 2048)")
    p.add_argument("--hidden", type=int, default=896)
    p.add_argument("--vocab", type=int, default=151_936)
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per process (the fastest is reported)")
    p.add_argument("--procs", type=int, default=3, help="fresh processes per (impl, N): peak median and spread")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", choices=IMPLS, help=argparse.SUPPRESS)
    p.add_argument("--save", type=str, default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.quick:
        args.hidden, args.vocab, args.n = 256, 32_000, args.n or [256, 1024]
    ns = args.n or [512, 2048]
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            res = {impl: _spawn(args, impl, n, Path(tmp) / f"{impl}.pt") for impl in IMPLS}
            row = {"n_tokens": n, "vocab": args.vocab, "hidden": args.hidden, "dtype": args.dtype,
                   "device": args.device, "chunk_size": args.chunk_size, "threads": args.threads or os.cpu_count(),
                   "procs": args.procs}
            saved = {}
            for impl in IMPLS:
                if res[impl].get("oom"):
                    row[f"{impl}_oom"] = True
                row[f"{impl}_peak_mb"], row[f"{impl}_s"] = res[impl].get("peak_mb"), res[impl].get("s")
                row[f"{impl}_peak_spread_pct"] = res[impl].get("peak_spread_pct")
                row[f"{impl}_peak_min_max"] = [res[impl].get("peak_min"), res[impl].get("peak_max")]
                if "s" in res[impl]:
                    saved[impl] = torch.load(Path(tmp) / f"{impl}.pt")
            row.update(_truth_errors(args, n, saved))
            if "naive" in saved:
                b = saved["naive"]
                for impl in ("chunked", "fused"):
                    if impl not in saved:
                        continue
                    a = saved[impl]
                    errs = [_rel(x, y) for x, y in zip(a["outs"], b["outs"])] + [_rel(a["dh"], b["dh"]),
                                                                                _rel(a["dw"], b["dw"])]  # fmt: skip
                    pre = "" if impl == "chunked" else "fused_"
                    row.update({f"{pre}max_rel_err": float(f"{max(errs):.3g}"),
                                f"{pre}mem_ratio": round(row[f"{impl}_peak_mb"] / row["naive_peak_mb"], 4),
                                f"{pre}time_ratio": round(row[f"{impl}_s"] / row["naive_s"], 3)})  # fmt: skip
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
