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

Matmuls accumulate in fp32 (fp64 when the inputs are fp64, for ``gradcheck``); bf16/fp16 inputs are upcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["HeadOutput", "sdpg_head"]


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


def _operand(t: Tensor, acc: torch.dtype) -> Tensor:
    """A GEMM operand: bf16/fp16 on CUDA stays as is (tensor cores, fp32 accumulation and fp32 result through
    ``out_dtype``); anything else is upcast to ``acc`` (a no-op for fp32 inputs)."""
    return t if _native_low_precision(t, acc) else t.to(acc)


def _same(a: Tensor, b: Tensor) -> bool:
    """True when two tensors view the same memory the same way (the live teacher shares the student's W)."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype


def _mm(a: Tensor, b: Tensor, acc: torch.dtype, out: Tensor | None = None) -> Tensor:
    """a @ b with an ``acc`` result; ``out`` is used when the operands are already ``acc``."""
    if a.dtype == acc:
        return torch.mm(a, b, out=out)
    return torch.mm(a, b, out_dtype=acc)


def _logits(h: Tensor, w: Tensor, bias: Tensor | None, temp: float, out: Tensor) -> Tensor:
    """(c, H) @ (V, H)^T [+ b], divided by the temperature, in ``out``'s dtype (written into ``out`` if it can)."""
    z = _mm(h, w.t(), out.dtype, out=out)  # (c, V)
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


class _SDPGHeadFn(torch.autograd.Function):
    """Chunked forward/backward; see the module docstring for the math."""

    @staticmethod
    def forward(ctx, h, w, bias, targets, th, tw, rh, rw, temperature, chunk_size):  # noqa: D102
        n, v, acc = h.shape[0], w.shape[0], _acc_dtype(h)
        wf, bf = _operand(w, acc), None if bias is None else bias.to(acc)
        cast = lambda wt: wf if _same(wt, w) else _operand(wt, acc)  # noqa: E731  (one upcast for a live teacher)
        views = [(hid, cast(wt)) if hid is not None else None for hid, wt in ((th, tw), (rh, rw))]
        bufs: dict[str, Tensor] = {}
        buf = lambda name, c: _buffer(bufs, name, c, v, h, acc)  # noqa: E731
        new = lambda *shape: torch.empty(n, *shape, dtype=acc, device=h.device)  # noqa: E731
        logp, ent, stats = new(), new(), new(2)  # stats: per-row (max, log-sum) of the student logits
        kls = [new() if view is not None else None for view in views]
        o_stats = [new(2) if view is not None else None for view in views]
        t_logp, t_ent = (new(), new()) if th is not None else (None, None)
        for s in range(0, n, chunk_size):
            e, y = min(s + chunk_size, n), targets[s : s + chunk_size].unsqueeze(1)  # y: (c, 1)
            c = e - s
            z = _logits(_operand(h[s:e], acc), wf, bf, temperature, buf("z", c))  # (c, V)
            p = buf("p", c)  # (c, V)
            stats[s:e] = torch.stack(_log_softmax_(z, p), 1)  # z <- log p, p <- softmax
            logp[s:e] = z.gather(1, y).squeeze(1)
            ent[s:e] = -torch.mul(p, z, out=buf("q", c)).sum(1)
            for i, view in enumerate(views):
                if view is None:
                    continue
                zo = _logits(_operand(view[0][s:e], acc), view[1], bf, temperature, buf("zo", c))  # (c, V)
                q = buf("q", c)  # (c, V)
                o_stats[i][s:e] = torch.stack(_log_softmax_(zo, q), 1)  # zo <- log q, q <- softmax
                if i == 0:  # teacher: sampled-token log-prob and entropy (metrics, RLSD/OPSD)
                    t_logp[s:e] = zo.gather(1, y).squeeze(1)
                    t_ent[s:e] = -q.mul_(zo).sum(1)
                kls[i][s:e] = torch.sub(z, zo, out=zo).mul_(p).sum(1)  # sum_a p (log p - log q)
        bufs.clear()  # free the work buffers before autograd holds on to the frame
        ctx.save_for_backward(h, w, bias, targets, th, tw, rh, rw, stats, ent, *o_stats, *kls)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        ctx.set_materialize_grads(False)
        empty = h.new_empty(0, dtype=acc)
        return (logp, ent, *(x if x is not None else empty for x in (*kls, t_logp, t_ent)))

    @staticmethod
    @once_differentiable
    def backward(ctx, g_logp, g_ent, g_klt, g_klr, _g_tlogp, _g_tent):  # noqa: D102
        h, w, bias, targets, th, tw, rh, rw, stats, ent, st_t, st_r, kl_t, kl_r = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        n, v, acc, temp = h.shape[0], w.shape[0], _acc_dtype(h), ctx.temperature
        row = lambda g: None if g is None else g.to(acc) / temp  # noqa: E731  (temperature folded in)
        gl, ge = row(g_logp), row(g_ent)
        wf, bf = _operand(w, acc), None if bias is None else bias.to(acc)
        views = [  # (hidden, weight, row grad, stats, kl) for the views whose KL received a gradient
            (hid, wf if _same(wt, w) else _operand(wt, acc), row(g), st, kl)
            for hid, wt, g, st, kl in ((th, tw, g_klt, st_t, kl_t), (rh, rw, g_klr, st_r, kl_r))
            if hid is not None and g is not None
        ]
        if (gl is None and ge is None and not views) or not (need_h or need_w or need_b):
            return (None,) * 10
        # dz = p * (sum_o g_o (log p - log o) - ge log p + k) + gl onehot(y), k = -gl - ge H - sum_o g_o KL_o
        k = torch.zeros(n, dtype=acc, device=h.device)
        for term, scale in ((gl, 1.0), (ge, ent), *((g, kl) for _, _, g, _, kl in views)):
            if term is not None:
                k.sub_(term * scale)
        bufs: dict[str, Tensor] = {}
        buf = lambda name, c: _buffer(bufs, name, c, v, h, acc)  # noqa: E731
        dh = torch.empty(n, h.shape[1], dtype=acc, device=h.device) if need_h else None
        dw = torch.zeros(v, h.shape[1], dtype=acc, device=h.device) if need_w else None
        db = torch.zeros(v, dtype=acc, device=h.device) if need_b else None
        for s in range(0, n, ctx.chunk_size):
            e = min(s + ctx.chunk_size, n)
            hc = _operand(h[s:e], acc)
            z = _logits(hc, wf, bf, temp, buf("z", e - s))  # (c, V)
            _shift_(z, stats[s:e, 0], stats[s:e, 1])  # log p
            p = torch.exp(z, out=buf("p", e - s))  # (c, V)
            dz = None  # (c, V) accumulator; differences log p - log o are taken before scaling (accuracy)
            for i, (hid, wt, g, st, _) in enumerate(views):
                zo = _logits(_operand(hid[s:e], acc), wt, bf, temp, buf(f"o{i}", e - s))  # (c, V)
                _shift_(zo, st[s:e, 0], st[s:e, 1])  # log o
                torch.sub(z, zo, out=zo)  # log p - log o
                dz = zo.mul_(g[s:e, None]) if dz is None else dz.addcmul_(zo, g[s:e, None])
            if ge is not None:
                dz = z.mul_(-ge[s:e, None]) if dz is None else dz.addcmul_(z, ge[s:e, None], value=-1.0)
            dz = z.zero_() if dz is None else dz
            dz.add_(k[s:e, None]).mul_(p)
            if gl is not None:
                dz.scatter_add_(1, targets[s:e, None], gl[s:e, None])  # + gl * onehot(y)
            if dh is not None or dw is not None:
                dzg = dz.to(wf.dtype)  # no-op, except bf16/fp16 on CUDA: low-precision GEMM inputs as autograd's
                if dh is not None:
                    dh[s:e] = _mm(dzg, wf, acc, out=dh[s:e])  # (c, H)
                if dw is not None and dzg.dtype == acc:
                    dw.addmm_(dzg.t(), hc)  # (V, H)
                elif dw is not None:
                    dw.add_(_mm(dzg.t(), hc, acc))  # (V, H) fp32 result, accumulated in fp32
            if db is not None:
                db.add_(dz.sum(0))
        dh = None if dh is None else dh.to(h.dtype)
        dw = None if dw is None else dw.to(w.dtype)
        db = None if db is None else db.to(bias.dtype)
        return dh, dw, db, None, None, None, None, None, None, None


def _check(name: str, t: Tensor | None, shape: tuple[int, ...]) -> None:
    if t is not None and tuple(t.shape) != shape:
        raise ValueError(f"sdpg_head: {name} has shape {tuple(t.shape)}, expected {shape}")


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
        lm_bias: (V,) optional LM-head bias, shared by all views (gradient only through the student view).
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
    if student_hidden.dim() != 2 or lm_weight.dim() != 2:
        raise ValueError("sdpg_head: student_hidden must be (N, H) and lm_weight (V, H); flatten tokens first")
    n, hid = student_hidden.shape
    v = lm_weight.shape[0]
    _check("lm_weight", lm_weight, (v, hid))
    _check("targets", targets, (n,))
    _check("teacher_hidden", teacher_hidden, (n, hid))
    _check("ref_hidden", ref_hidden, (n, hid))
    _check("lm_bias", lm_bias, (v,))
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
    outs = _SDPGHeadFn.apply(
        student_hidden, lm_weight, lm_bias, targets.long(), th, tw, rh, rw, float(temperature), int(chunk_size)
    )
    logp, ent, klt, klr, t_logp, t_ent = outs
    has_t, has_r = th is not None, rh is not None
    return HeadOutput(
        logp=logp,
        entropy=ent,
        kl_teacher=klt if has_t else None,
        kl_ref=klr if has_r else None,
        teacher_logp=t_logp.detach() if has_t else None,
        teacher_entropy=t_ent.detach() if has_t else None,
    )
