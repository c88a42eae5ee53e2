"""The SDPG head: per-token log-prob, entropy and full-vocabulary KLs from hidden states, chunked over tokens.

Given the final hidden states of the student view at completion positions (N, H) and the LM-head weight (V, H),
:func:`sdpg_head` returns per-token fp32 tensors:

* ``logp``          log p(y_t), p = softmax((h W^T + b) / temperature), differentiable;
* ``entropy``       H(p_t) = -sum_a p log p, differentiable;
* ``kl_teacher``    KL(p_t || SG q_t) over the FULL vocabulary, q from the teacher view (no gradient to it);
* ``kl_ref``        KL(p_t || pi_ref) over the full vocabulary (optional), gradient to the student only;
* ``teacher_logp`` / ``teacher_entropy``: log q(y_t) and H(q_t), no gradient (metrics, RLSD/OPSD).

It never materialises (N, V): a custom ``torch.autograd.Function`` loops over chunks of ``chunk_size`` tokens,
keeps only per-row statistics (log-sum-exps, entropy, KLs) between forward and backward, and in backward
recomputes each chunk's logits and accumulates dL/dh and dL/dW (and dL/db) directly. Peak extra memory is a few
(chunk_size, V) buffers, independent of N. Per-row gradients w.r.t. the (temperature-scaled) logits z:

    d logp_y / dz  = onehot(y) - p
    d H / dz       = -p * (log p + H)
    d KL(p||q)/dz  = p * (log p - log q - KL)

Matmuls accumulate in fp32 (fp64 for fp64 inputs, for ``gradcheck``). bf16/fp16 inputs are upcast to fp32 on CPU;
on CUDA they stay bf16/fp16 GEMM operands with fp32 accumulation and fp32 results (``mm(out_dtype=...)``).

:func:`sdpg_head_loss` fuses the head with a token-separable loss: gradients are formed in the forward pass, so
the backward needs no recomputation (4 LM-head GEMMs with a teacher instead of 6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["HeadOutput", "sdpg_head", "sdpg_head_loss"]


@dataclass
class HeadOutput:
    """Per-token outputs of :func:`sdpg_head`; every tensor is (N,) fp32 (fp64 for fp64 inputs)."""

    logp: Tensor
    """log pi_theta(y_t | ...) of the sampled token; differentiable."""
    entropy: Tensor
    """Student entropy H(p_t); differentiable."""
    kl_teacher: Tensor | None = None
    """KL(p_t || SG q_t) over the full vocabulary; gradient flows to the student only. None without a teacher."""
    kl_ref: Tensor | None = None
    """KL(p_t || pi_ref) over the full vocabulary; gradient to the student only. None without a reference."""
    teacher_logp: Tensor | None = None
    """log q_t(y_t) of the sampled token under the teacher view (no grad)."""
    teacher_entropy: Tensor | None = None
    """Teacher entropy H(q_t) (no grad)."""


def _acc_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


_OUT_DTYPE_MM: dict[torch.device, bool] = {}


def _native_low_precision(t: Tensor, acc: torch.dtype) -> bool:
    """True for bf16/fp16 CUDA tensors when ``torch.mm(..., out_dtype=float32)`` works on that device."""
    if not (t.is_cuda and acc == torch.float32 and t.dtype in (torch.bfloat16, torch.float16)):
        return False
    if t.device not in _OUT_DTYPE_MM:
        try:
            probe = torch.ones(2, 2, dtype=t.dtype, device=t.device)
            _OUT_DTYPE_MM[t.device] = torch.mm(probe, probe, out_dtype=torch.float32).dtype == torch.float32
        except (RuntimeError, TypeError):
            _OUT_DTYPE_MM[t.device] = False
    return _OUT_DTYPE_MM[t.device]


def _same(a: Tensor, b: Tensor) -> bool:
    """True when two tensors view the same memory the same way (the live teacher shares the student's W)."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype


def _mm(a: Tensor, b: Tensor, acc: torch.dtype, out: Tensor | None = None) -> Tensor:
    """a @ b with an ``acc`` result; ``out`` is used when the operands are already ``acc``."""
    if a.dtype == acc:
        return torch.mm(a, b, out=out)
    return torch.mm(a, b, out_dtype=acc)


def _logits(h: Tensor, w: Tensor, bias: Tensor | None, temp: float, acc: torch.dtype, out: Callable[[], Tensor]):
    """(c, H) @ (V, H)^T [+ b] / temperature as ``acc``; written into the buffer ``out()`` unless the operands are
    CUDA low precision (then the fp32 result comes from ``mm(out_dtype=...)`` and no buffer is allocated)."""
    z = torch.mm(h, w.t(), out=out()) if h.dtype == acc else _mm(h, w.t(), acc)  # (c, V)
    if bias is not None:
        z.add_(bias)
    if temp != 1.0:
        z.div_(temp)
    return z


def _buffer(bufs: dict[str, Tensor], name: str, rows: int, cols: int, like: Tensor, dtype: torch.dtype) -> Tensor:
    """A reusable (rows, cols) work buffer, so chunks do not page-fault fresh memory each time (CPU)."""
    buf = bufs.get(name)
    if buf is None or buf.shape[0] < rows:
        buf = bufs[name] = torch.empty(rows, cols, dtype=dtype, device=like.device)
    return buf[:rows]


def _log_softmax_(z: Tensor, probs: Tensor) -> tuple[Tensor, Tensor]:
    """In place: z <- log_softmax(z) along dim 1 and probs <- softmax(z); returns the row max and log-sum.

    Subtracting the max first (exact) and then the small log-sum keeps log p as accurate as ``log_softmax``;
    subtracting a single rounded log-sum-exp of large logits would cost ~1 ulp of the max per entry.
    """
    m = z.amax(dim=1, keepdim=True)  # (c, 1)
    z.sub_(m)
    torch.exp(z, out=probs)
    total = probs.sum(dim=1, keepdim=True)  # (c, 1)
    probs.div_(total)
    ls = total.log_()
    z.sub_(ls)
    return m.squeeze(1), ls.squeeze(1)


def _shift_(z: Tensor, m: Tensor, ls: Tensor) -> Tensor:
    """Backward-side replay of :func:`_log_softmax_` from saved row statistics: z <- z - m - ls."""
    return z.sub_(m.unsqueeze(1)).sub_(ls.unsqueeze(1))


def _forward_chunk(buf, s: int, e: int, h: Tensor, wf: Tensor, bf, views: list, temp: float, y: Tensor, acc):
    """Rows s:e through every view -> (z = log p, p, diffs, values); diffs[i] = log p - log o_i (None if absent).

    ``values`` holds per-row (c,) results: ``stats`` (c, 2), ``logp``, ``ent``, ``stats{i}``, ``kl{i}`` per view,
    and ``t_logp``/``t_ent`` for the teacher (view 0). Buffers: z, p, q (scratch) and one per view.
    """
    c = e - s
    z = _logits(h[s:e].to(wf.dtype), wf, bf, temp, acc, partial(buf, "z", c))  # (c, V)
    p = buf("p", c)  # (c, V)
    out = {"stats": torch.stack(_log_softmax_(z, p), 1), "logp": z.gather(1, y).squeeze(1)}  # z <- log p
    out["ent"] = -torch.mul(p, z, out=buf("q", c)).sum(1)
    diffs: list[Tensor | None] = []
    for i, view in enumerate(views):
        if view is None:
            diffs.append(None)
            continue
        zo = _logits(view[0][s:e].to(view[1].dtype), view[1], view[2], temp, acc, partial(buf, f"o{i}", c))  # (c, V)
        q = buf("q", c)  # (c, V)
        out[f"stats{i}"] = torch.stack(_log_softmax_(zo, q), 1)  # zo <- log q, q <- softmax
        if i == 0:  # teacher: sampled-token log-prob and entropy (metrics, RLSD/OPSD)
            out["t_logp"] = zo.gather(1, y).squeeze(1)
            out["t_ent"] = -q.mul_(zo).sum(1)
        d = torch.sub(z, zo, out=zo)  # log p - log q
        out[f"kl{i}"] = torch.mul(d, p, out=q).sum(1)  # sum_a p (log p - log q)
        diffs.append(d)
    return z, p, diffs, out


def _replay_chunk(buf, s: int, e: int, hc: Tensor, wf: Tensor, bf, views: list, temp: float, stats: list):
    """Backward-side recomputation of rows s:e from saved row statistics -> (z = log p, p, diffs)."""
    acc, c = stats[0].dtype, e - s
    z = _shift_(_logits(hc, wf, bf, temp, acc, partial(buf, "z", c)), stats[0][s:e, 0], stats[0][s:e, 1])  # log p
    p = torch.exp(z, out=buf("p", c))  # (c, V)
    diffs: list[Tensor | None] = []
    for i, view in enumerate(views):
        if view is None:
            diffs.append(None)
            continue
        zo = _logits(view[0][s:e].to(view[1].dtype), view[1], view[2], temp, acc, partial(buf, f"o{i}", c))  # (c, V)
        _shift_(zo, stats[i + 1][s:e, 0], stats[i + 1][s:e, 1])  # log o
        diffs.append(torch.sub(z, zo, out=zo))  # log p - log o
    return z, p, diffs


def _dz_(z, p, diffs, g_views, gl, ge, ent, kls, y) -> Tensor:
    """dz = p * (sum_i g_i (log p - log o_i) - ge log p + k) + gl onehot(y), built in place in the chunk buffers.

    k = -gl - ge H - sum_i g_i KL_i. Row gradients are (c,) or None (no contribution); the differences
    log p - log o are formed before scaling, which keeps the result as accurate as autograd's.
    """
    dz, k = None, torch.zeros_like(ent)
    for d, g, kl in zip(diffs, g_views, kls):
        if d is not None and g is not None:
            dz = d.mul_(g[:, None]) if dz is None else dz.addcmul_(d, g[:, None])
            k.sub_(g * kl)
    if ge is not None:
        dz = z.mul_(-ge[:, None]) if dz is None else dz.addcmul_(z, ge[:, None], value=-1.0)
        k.sub_(ge * ent)
    if gl is not None:
        k.sub_(gl)
    dz = z.zero_() if dz is None else dz
    dz.add_(k[:, None]).mul_(p)
    if gl is not None:
        dz.scatter_add_(1, y, gl[:, None])  # + gl * onehot(y)
    return dz


def _accumulate(dz: Tensor, wf: Tensor, hc: Tensor, dh: Tensor | None, dw: Tensor | None, db: Tensor | None):
    """dh <- dz W (rows of this chunk), dW += dz^T h, db += sum dz, with fp32 results."""
    acc = dz.dtype
    dzg = dz.to(wf.dtype)  # no-op, except bf16/fp16 on CUDA: low-precision GEMM operands, as autograd uses
    if dh is not None and dzg.dtype == acc:
        torch.mm(dzg, wf, out=dh)  # (c, H), written in place into this chunk's rows
    elif dh is not None:
        dh.copy_(_mm(dzg, wf, acc))
    if dw is not None and dzg.dtype == acc:
        dw.addmm_(dzg.t(), hc)  # (V, H)
    elif dw is not None:
        dw.add_(_mm(dzg.t(), hc, acc))  # (V, H) fp32 result, accumulated in fp32
    if db is not None:
        db.add_(dz.sum(0))


def _setup(h, w, bias, th, tw, rh, rw, tb=None, rb=None):
    """Accumulation dtype, GEMM-ready student weight and bias, and the (hidden, weight, bias) of each view."""
    acc = _acc_dtype(h)
    native = h.dtype == w.dtype and _native_low_precision(w, acc)  # bf16/fp16 GEMMs with fp32 results (CUDA)
    wf, bf = (w if native else w.to(acc)), None if bias is None else bias.to(acc)
    cast = lambda wt: wf if _same(wt, w) else wt.to(wf.dtype)  # noqa: E731  (one upcast for a live teacher)
    cast_b = lambda b: None if b is None else (bf if b is bias else b.to(acc))  # noqa: E731
    return acc, wf, bf, [(hid, cast(wt), cast_b(b)) if hid is not None else None
                         for hid, wt, b in ((th, tw, tb), (rh, rw, rb))]


def _grad_buffers(h, v, acc, need):
    n, hid = h.shape
    return (
        torch.empty(n, hid, dtype=acc, device=h.device) if need[0] else None,
        torch.zeros(v, hid, dtype=acc, device=h.device) if need[1] else None,
        torch.zeros(v, dtype=acc, device=h.device) if need[2] else None,
    )


def _finish(grads, h, w, bias):
    return tuple(None if g is None else g.to(t.dtype) for g, t in zip(grads, (h, w, bias)))


class _SDPGHeadFn(torch.autograd.Function):
    """Chunked forward/backward; see the module docstring for the math."""

    @staticmethod
    def forward(ctx, h, w, bias, targets, th, tw, rh, rw, tb, rb, temperature, chunk_size):  # noqa: D102
        n, v = h.shape[0], w.shape[0]
        acc, wf, bf, views = _setup(h, w, bias, th, tw, rh, rw, tb, rb)
        bufs: dict[str, Tensor] = {}
        buf = lambda name, c: _buffer(bufs, name, c, v, h, acc)  # noqa: E731
        keys = ["logp", "ent", "stats"] + [f"{k}{i}" for i in (0, 1) if views[i] is not None for k in ("kl", "stats")]
        keys += ["t_logp", "t_ent"] if th is not None else []
        res = {k: torch.empty(n, *((2,) if k.startswith("stats") else ()), dtype=acc, device=h.device) for k in keys}
        for s in range(0, n, chunk_size):
            e = min(s + chunk_size, n)
            *_, values = _forward_chunk(buf, s, e, h, wf, bf, views, temperature, targets[s:e, None], acc)
            for k, val in values.items():
                res[k][s:e] = val
        bufs.clear()  # free the work buffers before autograd holds on to the frame
        get = res.get
        ctx.save_for_backward(h, w, bias, targets, th, tw, rh, rw, tb, rb, get("stats"), get("stats0"),
                              get("stats1"), get("ent"), get("kl0"), get("kl1"))  # fmt: skip
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        ctx.set_materialize_grads(False)
        empty = h.new_empty(0, dtype=acc)
        return tuple(get(k, empty) for k in ("logp", "ent", "kl0", "kl1", "t_logp", "t_ent"))

    @staticmethod
    @once_differentiable
    def backward(ctx, g_logp, g_ent, g_klt, g_klr, _g_tlogp, _g_tent):  # noqa: D102
        h, w, bias, targets, th, tw, rh, rw, tb, rb, st, st0, st1, ent, kl0, kl1 = ctx.saved_tensors
        n, v, temp = h.shape[0], w.shape[0], ctx.temperature
        acc, wf, bf, views = _setup(h, w, bias, th, tw, rh, rw, tb, rb)
        row = lambda g: None if g is None else g.to(acc) / temp  # noqa: E731  (temperature folded in)
        g_views = [row(g) if view is not None else None for g, view in zip((g_klt, g_klr), views)]
        views = [view if g is not None else None for view, g in zip(views, g_views)]  # skip views without grad
        gl, ge = row(g_logp), row(g_ent)
        if (gl is None and ge is None and not any(views)) or not any(ctx.needs_input_grad[:3]):
            return (None,) * 12
        dh, dw, db = _grad_buffers(h, v, acc, ctx.needs_input_grad[:3])
        bufs: dict[str, Tensor] = {}
        buf = lambda name, c: _buffer(bufs, name, c, v, h, acc)  # noqa: E731
        for s in range(0, n, ctx.chunk_size):
            e = min(s + ctx.chunk_size, n)
            hc = h[s:e].to(wf.dtype)
            z, p, diffs = _replay_chunk(buf, s, e, hc, wf, bf, views, temp, [st, st0, st1])
            sl = lambda t: None if t is None else t[s:e]  # noqa: E731, B023
            dz = _dz_(z, p, diffs, [sl(g) for g in g_views], sl(gl), sl(ge), ent[s:e], [sl(kl0), sl(kl1)],
                      targets[s:e, None])  # fmt: skip
            _accumulate(dz, wf, hc, sl(dh), dw, db)
        return (*_finish((dh, dw, db), h, w, bias), None, None, None, None, None, None, None, None, None)


class _FusedHeadLossFn(torch.autograd.Function):
    """Head and a token-separable loss in one pass: gradients are formed in the forward, no recomputation."""

    @staticmethod
    def forward(ctx, h, w, bias, targets, th, tw, rh, rw, tb, rb, temperature, chunk_size, chunk_loss):  # noqa: D102
        n, v = h.shape[0], w.shape[0]
        acc, wf, bf, views = _setup(h, w, bias, th, tw, rh, rw, tb, rb)
        need = ctx.needs_input_grad[:3]
        dh, dw, db = _grad_buffers(h, v, acc, need)
        bufs: dict[str, Tensor] = {}
        buf = lambda name, c: _buffer(bufs, name, c, v, h, acc)  # noqa: E731
        total = torch.zeros((), dtype=acc, device=h.device)
        rows: dict[str, list[Tensor]] = {}
        for s in range(0, n, chunk_size):
            e = min(s + chunk_size, n)
            z, p, diffs, values = _forward_chunk(buf, s, e, h, wf, bf, views, temperature, targets[s:e, None], acc)
            for k, val in values.items():
                rows.setdefault(k, []).append(val.clone())
            with torch.enable_grad():
                leaves = [values.get(k) for k in ("logp", "ent", "kl0", "kl1")]
                leaves = [None if t is None else t.detach().requires_grad_() for t in leaves]
                val = chunk_loss(slice(s, e), *leaves)
                if not isinstance(val, Tensor) or val.dim() != 0:
                    raise ValueError("sdpg_head_loss: chunk_loss must return a scalar tensor")
                live = [t for t in leaves if t is not None]
                grads = torch.autograd.grad(val, live, allow_unused=True) if val.requires_grad else [None] * 4
            total += val.detach().to(acc)
            if any(need) and any(g is not None for g in grads):
                it = iter(grads)
                gl, ge, gt, gr = (None if t is None else next(it) for t in leaves)
                row = lambda g: None if g is None else g.to(acc) / temperature  # noqa: E731
                dz = _dz_(z, p, diffs, [row(gt), row(gr)], row(gl), row(ge), values["ent"],
                          [values.get("kl0"), values.get("kl1")], targets[s:e, None])  # fmt: skip
                _accumulate(dz, wf, h[s:e].to(wf.dtype), None if dh is None else dh[s:e], dw, db)
        bufs.clear()
        ctx.save_for_backward(*_finish((dh, dw, db), h, w, bias))
        empty = h.new_empty(0, dtype=acc)
        outs = [torch.cat(rows[k]) if k in rows else empty for k in ("logp", "ent", "kl0", "kl1", "t_logp", "t_ent")]
        ctx.mark_non_differentiable(*outs)
        return (total, *outs)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_total, *_):  # noqa: D102
        grads = [None if g is None or g_total is None else g * g_total.to(g.dtype) for g in ctx.saved_tensors]
        return (*grads, None, None, None, None, None, None, None, None, None, None)


_STUDENT_BIAS: Tensor | None = torch.empty(0)
"""Default of ``teacher_bias``/``ref_bias``: the student's ``lm_bias`` (right for the live teacher only)."""


def _check(name: str, t: Tensor | None, shape: tuple[int, ...]) -> None:
    if t is not None and tuple(t.shape) != shape:
        raise ValueError(f"sdpg_head: {name} has shape {tuple(t.shape)}, expected {shape}")


def _prepare(
    student_hidden,
    lm_weight,
    targets,
    teacher_hidden,
    teacher_weight,
    ref_hidden,
    ref_weight,
    lm_bias,
    temperature,
    chunk_size,
    teacher_bias=None,
    ref_bias=None,
) -> tuple:
    """Validate the inputs and apply the stop-gradient to the teacher and reference views."""
    if student_hidden.dim() != 2 or lm_weight.dim() != 2:
        raise ValueError("sdpg_head: student_hidden must be (N, H) and lm_weight (V, H); flatten tokens first")
    n, hid = student_hidden.shape
    v = lm_weight.shape[0]
    _check("lm_weight", lm_weight, (v, hid))
    _check("targets", targets, (n,))
    _check("teacher_hidden", teacher_hidden, (n, hid))
    _check("ref_hidden", ref_hidden, (n, hid))
    _check("lm_bias", lm_bias, (v,))
    teacher_bias = lm_bias if teacher_bias is _STUDENT_BIAS else teacher_bias
    ref_bias = lm_bias if ref_bias is _STUDENT_BIAS else ref_bias
    _check("teacher_bias", teacher_bias, (v,))
    _check("ref_bias", ref_bias, (v,))
    for name, wt in (("teacher_weight", teacher_weight), ("ref_weight", ref_weight)):
        _check(name, wt, (v, hid))  # pitfall 17: both views must use the same vocabulary width
    if targets.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"sdpg_head: targets must be integer token ids, got {targets.dtype}")
    if n and (int(targets.min()) < 0 or int(targets.max()) >= v):
        raise ValueError(f"sdpg_head: targets must lie in [0, {v}), got [{int(targets.min())}, {int(targets.max())}]")
    if not temperature > 0:
        raise ValueError(f"sdpg_head: temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"sdpg_head: chunk_size must be >= 1, got {chunk_size}")
    if ref_hidden is not None and ref_weight is None:
        raise ValueError("sdpg_head: ref_hidden needs ref_weight (the frozen reference model's LM head)")
    if teacher_hidden is not None and teacher_weight is None:
        teacher_weight = lm_weight
    # Stop-gradient on the teacher and reference views: detach them before they enter the Function.
    th = None if teacher_hidden is None else teacher_hidden.detach()
    tw = None if teacher_weight is None else teacher_weight.detach()
    rh = None if ref_hidden is None else ref_hidden.detach()
    rw = None if ref_weight is None else ref_weight.detach()
    tb = None if teacher_bias is None or teacher_hidden is None else teacher_bias.detach()
    rb = None if ref_bias is None or ref_hidden is None else ref_bias.detach()
    return (student_hidden, lm_weight, lm_bias, targets.long(), th, tw, rh, rw, tb, rb, float(temperature),
            int(chunk_size))


def _output(outs, has_t: bool, has_r: bool) -> HeadOutput:
    logp, ent, klt, klr, t_logp, t_ent = outs
    return HeadOutput(
        logp=logp,
        entropy=ent,
        kl_teacher=klt if has_t else None,
        kl_ref=klr if has_r else None,
        teacher_logp=t_logp.detach() if has_t else None,
        teacher_entropy=t_ent.detach() if has_t else None,
    )


def sdpg_head(
    student_hidden: Tensor,
    lm_weight: Tensor,
    targets: Tensor,
    *,
    teacher_hidden: Tensor | None = None,
    teacher_weight: Tensor | None = None,
    ref_hidden: Tensor | None = None,
    ref_weight: Tensor | None = None,
    lm_bias: Tensor | None = None,
    teacher_bias: Tensor | None = _STUDENT_BIAS,
    ref_bias: Tensor | None = _STUDENT_BIAS,
    temperature: float = 1.0,
    chunk_size: int = 1024,
) -> HeadOutput:
    """Chunked LM head with exact full-vocabulary KLs; never materialises (N, V).

    Args:
        student_hidden: (N, H) final hidden states at completion positions (the positions that predict
            ``targets``); requires grad for training.
        lm_weight: (V, H) the student's LM-head weight (trainable).
        targets: (N,) long, the sampled token ids.
        teacher_hidden: (N, H) teacher-view hidden states at the same completion tokens; treated as constant.
        teacher_weight: (V, H) teacher LM head; default ``lm_weight`` (live teacher). Never receives gradient.
        ref_hidden: (N, H) hidden states of the frozen reference model; enables ``kl_ref``.
        ref_weight: (V, H) the reference model's LM head; required with ``ref_hidden``.
        lm_bias: (V,) optional LM-head bias of the student (gradient through the student view only).
        teacher_bias, ref_bias: (V,) LM-head biases of the teacher and reference views (no gradient); each
            defaults to ``lm_bias`` (right for a live teacher, whose weight defaults to ``lm_weight``); pass the
            frozen model's own bias (or None) for an EMA/base teacher or the reference.
        temperature: divides the student, teacher and reference logits alike (spec §10 pitfall 6).
        chunk_size: tokens per chunk; peak extra memory is a few (chunk_size, V) fp32 buffers.

    Returns:
        A :class:`HeadOutput` of (N,) tensors; KL fields are None when their view is not given.

    Example:
        >>> h = torch.randn(5, 8, requires_grad=True); w = torch.randn(32, 8, requires_grad=True)
        >>> out = sdpg_head(h, w, torch.randint(0, 32, (5,)), teacher_hidden=h.detach(), chunk_size=2)
        >>> bool(out.kl_teacher.abs().max() < 1e-5)
        True
    """
    args = _prepare(student_hidden, lm_weight, targets, teacher_hidden, teacher_weight, ref_hidden, ref_weight,
                    lm_bias, temperature, chunk_size, teacher_bias, ref_bias)  # fmt: skip
    return _output(_SDPGHeadFn.apply(*args), teacher_hidden is not None, ref_hidden is not None)


def sdpg_head_loss(
    student_hidden: Tensor,
    lm_weight: Tensor,
    targets: Tensor,
    chunk_loss: Callable[..., Tensor],
    *,
    teacher_hidden: Tensor | None = None,
    teacher_weight: Tensor | None = None,
    ref_hidden: Tensor | None = None,
    ref_weight: Tensor | None = None,
    lm_bias: Tensor | None = None,
    teacher_bias: Tensor | None = _STUDENT_BIAS,
    ref_bias: Tensor | None = _STUDENT_BIAS,
    temperature: float = 1.0,
    chunk_size: int = 1024,
) -> tuple[Tensor, HeadOutput]:
    """:func:`sdpg_head` fused with a token-separable loss: one pass, no recomputation in backward.

    For each chunk of tokens the head computes the per-token values, calls
    ``chunk_loss(rows, logp, entropy, kl_teacher, kl_ref)`` (``rows`` is the chunk's ``slice`` into the N tokens;
    absent views are passed as None) and differentiates the returned scalar with respect to those values right
    away, so dL/dh and dL/dW are accumulated in the forward pass and the backward only scales them. That is four
    LM-head-sized matrix products with a teacher instead of six. The loss must be a sum of per-token terms (each
    token's term depends on its own values only), e.g. ``sdpg_loss(...)[0]`` of the chunk's slice with the
    global ``num_tokens`` — the chunk contributions then add up to the whole loss exactly.

    Args:
        chunk_loss: ``(rows: slice, logp, entropy, kl_teacher, kl_ref) -> scalar Tensor``; tensors are (c,) and
            require grad. Collect any statistics it computes in a closure.
        Others: as :func:`sdpg_head`.

    Returns:
        ``(loss, outputs)``: the summed loss (differentiable w.r.t. ``student_hidden``, ``lm_weight`` and
        ``lm_bias``) and the per-token :class:`HeadOutput` values, detached.

    Example:
        >>> h = torch.randn(6, 8, requires_grad=True); w = torch.randn(32, 8, requires_grad=True)
        >>> loss, out = sdpg_head_loss(h, w, torch.randint(0, 32, (6,)), lambda rows, lp, ent, kl, klr: -lp.sum(),
        ...                            chunk_size=4)
        >>> loss.backward(); bool(torch.allclose(loss, -out.logp.sum()))
        True
    """
    args = _prepare(student_hidden, lm_weight, targets, teacher_hidden, teacher_weight, ref_hidden, ref_weight,
                    lm_bias, temperature, chunk_size, teacher_bias, ref_bias)  # fmt: skip
    total, *outs = _FusedHeadLossFn.apply(*args, chunk_loss)
    return total, _output(outs, teacher_hidden is not None, ref_hidden is not None)
