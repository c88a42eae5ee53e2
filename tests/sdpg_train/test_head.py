"""The chunked SDPG head against a naive full-logits reference (values and both gradients)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sdpg_train.core.head import HeadOutput, sdpg_head, sdpg_head_loss
from sdpg_train.methods.sdpg import sdpg_loss

N, H = 29, 12


def naive_head(h, w, y, th=None, tw=None, rh=None, rw=None, b=None, temperature=1.0, detach_teacher=True):
    """Reference: full (N, V) logits, torch ops, standard autograd."""
    bias = 0.0 if b is None else b
    z = (h @ w.t() + bias) / temperature  # (N, V)
    logp_all = torch.log_softmax(z, -1)
    p = logp_all.exp()
    out = {"logp": logp_all.gather(1, y[:, None]).squeeze(1), "entropy": -(p * logp_all).sum(-1)}
    if th is not None:
        tw = w if tw is None else tw
        t_bias = bias.detach() if detach_teacher and b is not None else bias
        zt = (th @ (tw.detach() if detach_teacher else tw).t() + t_bias) / temperature
        logq = torch.log_softmax(zt, -1)
        logq = logq.detach() if detach_teacher else logq
        out["kl_teacher"] = (p * (logp_all - logq)).sum(-1)
        out["teacher_logp"] = logq.gather(1, y[:, None]).squeeze(1).detach()
        out["teacher_entropy"] = -(logq.exp() * logq).sum(-1).detach()
    if rh is not None:
        logr = torch.log_softmax((rh @ rw.t() + (0.0 if b is None else b.detach())) / temperature, -1).detach()
        out["kl_ref"] = (p * (logp_all - logr)).sum(-1)
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def _make(v: int, dtype=torch.float32, bias=False, teacher=True, ref=False):
    g = torch.Generator().manual_seed(v)
    h = torch.randn(N, H, generator=g, dtype=dtype).requires_grad_()
    w = (torch.randn(v, H, generator=g, dtype=dtype) * 0.7).requires_grad_()
    b = (torch.randn(v, generator=g, dtype=dtype) * 0.5).requires_grad_() if bias else None
    y = torch.randint(0, v, (N,), generator=g)
    th = h.detach() + 0.4 * torch.randn(N, H, generator=g, dtype=dtype) if teacher else None
    rh = torch.randn(N, H, generator=g, dtype=dtype) if ref else None
    rw = torch.randn(v, H, generator=g, dtype=dtype) * 0.7 if ref else None
    coef = torch.randn(4, N, generator=g, dtype=dtype)  # upstream grads for logp, entropy, kl_teacher, kl_ref
    return h, w, b, y, th, rh, rw, coef


def _objective(out: dict, coef: torch.Tensor) -> torch.Tensor:
    names = ("logp", "entropy", "kl_teacher", "kl_ref")
    return sum((c * out[k]).sum() for c, k in zip(coef, names) if out.get(k) is not None)


def _naive_with_grads(h, w, b, y, th, rh, rw, coef, temperature, dtype):
    """Naive values and gradients, computed in ``dtype`` from the same inputs."""
    cast = lambda t: None if t is None else t.detach().to(dtype).requires_grad_(t.requires_grad)  # noqa: E731
    h, w, b, th, rh, rw = (cast(t) for t in (h, w, b, th, rh, rw))
    params = [t for t in (h, w, b) if t is not None]
    out = naive_head(h, w, y, th, None, rh, rw, b, temperature)
    return out, torch.autograd.grad(_objective(out, coef.to(dtype)), params)


def _compare(v, chunk, temperature, bias, teacher, ref, dtype, tol):
    """Chunked vs naive in the same dtype: relative error <= tol (fp32: also vs the fp64 truth, see below)."""
    h, w, b, y, th, rh, rw, coef = _make(v, dtype, bias, teacher, ref)
    params = [h, w] + ([b] if b is not None else [])
    got = sdpg_head(h, w, y, teacher_hidden=th, ref_hidden=rh, ref_weight=rw, lm_bias=b,
                    temperature=temperature, chunk_size=chunk)  # fmt: skip
    ref_out, ref_grads = _naive_with_grads(h, w, b, y, th, rh, rw, coef, temperature, dtype)
    got_out = {k: getattr(got, k) for k in ref_out}
    for k in ("kl_teacher", "kl_ref", "teacher_logp", "teacher_entropy"):
        if k not in ref_out:
            assert getattr(got, k) is None
    got_grads = torch.autograd.grad(_objective(got_out, coef), params)
    # fp32: both implementations carry ~5e-7 rounding error, so "chunked == naive" is asserted as
    # |chunked - truth| <= tol with the fp64 naive as truth, and |chunked - naive fp32| <= 2 tol.
    truth_out, truth_grads = _naive_with_grads(h, w, b, y, th, rh, rw, coef, temperature, torch.float64)
    for k in ref_out:
        assert got_out[k].dtype == dtype and got_out[k].shape == (N,)
        assert _rel(got_out[k], truth_out[k]) <= tol, (k, _rel(got_out[k], truth_out[k]))
        assert _rel(got_out[k], ref_out[k]) <= 2 * tol, (k, _rel(got_out[k], ref_out[k]))
    for name, a, r, t in zip(("h", "w", "b"), got_grads, ref_grads, truth_grads):
        assert _rel(a, t) <= tol, (name, _rel(a, t))
        assert _rel(a, r) <= 2 * tol, (name, _rel(a, r))


CASES = list(itertools.product((1, 7, 64), (17, 300), (1.0, 0.6, 1.7)))


@pytest.mark.parametrize("chunk,v,temperature", CASES)
def test_chunked_matches_naive_fp32_full(chunk, v, temperature):
    _compare(v, chunk, temperature, bias=True, teacher=True, ref=True, dtype=torch.float32, tol=1e-6)


@pytest.mark.parametrize("bias,teacher,ref", list(itertools.product((False, True), repeat=3)))
def test_chunked_matches_naive_every_view_combination(bias, teacher, ref):
    _compare(257, 10, 0.8, bias=bias, teacher=teacher, ref=ref, dtype=torch.float32, tol=1e-6)


@pytest.mark.parametrize("chunk", (3, 29, 100))
def test_chunked_matches_naive_fp64_exactly(chunk):
    _compare(131, chunk, 0.7, bias=True, teacher=True, ref=True, dtype=torch.float64, tol=1e-12)


def test_gradcheck_float64_tiny():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
    th, tw, rh, rw = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((5, 4), (7, 4), (5, 4), (7, 4)))
    y = torch.tensor([0, 6, 3, 3, 1])

    def fn(h, w):
        # Constant teacher weight and bias: finite differences of a shared (live) weight or bias would also move
        # the teacher, which the stop-gradient deliberately ignores.
        o = sdpg_head(h, w, y, teacher_hidden=th, teacher_weight=tw, ref_hidden=rh, ref_weight=rw,
                      lm_bias=b.detach(), temperature=0.8, chunk_size=2)  # fmt: skip
        return o.logp, o.entropy, o.kl_teacher, o.kl_ref

    def fn_bias(h, w, b):
        o = sdpg_head(h, w, y, lm_bias=b, temperature=1.3, chunk_size=3)
        return o.logp, o.entropy

    assert torch.autograd.gradcheck(fn, (h, w), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(fn_bias, (h, w, b), eps=1e-6, atol=1e-7)


def test_kl_is_zero_when_teacher_equals_student():
    h, w, _, y, _, _, _, _ = _make(500)
    out = sdpg_head(h, w, y, teacher_hidden=h.detach(), chunk_size=8)
    assert torch.equal(out.kl_teacher, torch.zeros(N))
    assert torch.equal(out.teacher_logp, out.logp.detach())
    assert torch.allclose(out.teacher_entropy, out.entropy.detach())
    gh, gw = torch.autograd.grad(out.kl_teacher.sum(), [h, w])
    assert torch.equal(gh, torch.zeros_like(gh)) and torch.equal(gw, torch.zeros_like(gw))


def test_teacher_gets_no_gradient_and_stop_gradient_matters():
    """Live teacher sharing the trainable weight: grads must equal the detached reference, not the attached one."""
    h, w, _, y, th, _, _, _ = _make(300)
    th = th.clone().requires_grad_()
    out = sdpg_head(h, w, y, teacher_hidden=th, teacher_weight=w, chunk_size=5)
    out.kl_teacher.sum().backward()
    assert th.grad is None
    detached = naive_head(h, w, y, th, w, detach_teacher=True)
    attached = naive_head(h, w, y, th, w, detach_teacher=False)
    gd = torch.autograd.grad(detached["kl_teacher"].sum(), [h, w])
    ga = torch.autograd.grad(attached["kl_teacher"].sum(), [h, w], allow_unused=True)
    assert _rel(h.grad, gd[0]) < 1e-6 and _rel(w.grad, gd[1]) < 1e-6
    assert _rel(w.grad, ga[1]) > 1e-2  # removing the stop-gradient would change the weight gradient


def test_bf16_inputs_give_fp32_outputs_and_input_dtype_grads():
    h, w, _, y, th, _, _, coef = _make(300)
    hb, wb = h.detach().bfloat16().requires_grad_(), w.detach().bfloat16().requires_grad_()
    out = sdpg_head(hb, wb, y, teacher_hidden=th.bfloat16(), chunk_size=6)
    assert out.logp.dtype == torch.float32 and out.kl_teacher.dtype == torch.float32
    up = naive_head(hb.float(), wb.float(), y, th.bfloat16().float())  # same math on the upcast inputs
    assert _rel(out.kl_teacher, up["kl_teacher"]) < 1e-6 and _rel(out.logp, up["logp"]) < 1e-6
    (out.logp * coef[0] + out.kl_teacher * coef[2]).sum().backward()
    assert hb.grad.dtype == torch.bfloat16 and wb.grad.dtype == torch.bfloat16
    assert torch.isfinite(hb.grad.float()).all()


def test_only_logp_used_skips_other_views():
    h, w, _, y, th, _, _, _ = _make(64)
    out = sdpg_head(h, w, y, teacher_hidden=th, chunk_size=4)
    gh = torch.autograd.grad(out.logp.sum(), h)[0]
    ref = naive_head(h, w, y)
    assert _rel(gh, torch.autograd.grad(ref["logp"].sum(), h)[0]) < 1e-6


class _MaxNumel(TorchDispatchMode):
    """Records the largest tensor any op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def test_never_materialises_n_by_v():
    n, v, hid, chunk = 256, 1000, 8, 16
    h = torch.randn(n, hid, requires_grad=True)
    w = torch.randn(v, hid, requires_grad=True)
    y = torch.randint(0, v, (n,))
    with _MaxNumel() as mode:
        out = sdpg_head(h, w, y, teacher_hidden=torch.randn(n, hid), ref_hidden=torch.randn(n, hid),
                        ref_weight=torch.randn(v, hid), chunk_size=chunk)  # fmt: skip
        (out.logp.sum() + out.entropy.sum() + out.kl_teacher.sum() + out.kl_ref.sum()).backward()
        loss, _ = sdpg_head_loss(h, w, y, lambda rows, lp, ent, kl, klr: (lp + ent + kl).sum(), chunk_size=chunk,
                                 teacher_hidden=torch.randn(n, hid))  # fmt: skip
        loss.backward()
    assert mode.max_numel <= max(chunk * v, v * hid, n * hid)  # never (N, V) = 256_000


def test_empty_input():
    h, w = torch.zeros(0, 4, requires_grad=True), torch.randn(9, 4, requires_grad=True)
    out = sdpg_head(h, w, torch.zeros(0, dtype=torch.long), teacher_hidden=torch.zeros(0, 4))
    assert isinstance(out, HeadOutput) and out.logp.shape == (0,) and out.kl_teacher.shape == (0,)
    out.logp.sum().backward()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"targets": torch.tensor([0, 1, 99])}, "targets must lie"),
        ({"targets": torch.tensor([0.0, 1.0, 2.0])}, "integer token ids"),
        ({"teacher_hidden": torch.randn(2, 4)}, "teacher_hidden has shape"),
        ({"teacher_hidden": torch.randn(3, 4), "teacher_weight": torch.randn(8, 4)}, "teacher_weight has shape"),
        ({"ref_hidden": torch.randn(3, 4)}, "needs ref_weight"),
        ({"temperature": 0.0}, "temperature"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"lm_bias": torch.randn(5)}, "lm_bias has shape"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    args = {"targets": torch.tensor([0, 1, 2])} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        sdpg_head(torch.randn(3, 4), torch.randn(9, 4), **args)


def _sdpg_chunk_loss(old, adv, mask, ref_logp, total):
    """A token-separable SDPG loss over any slice of the tokens (global normaliser)."""

    def chunk_loss(rows, logp, entropy, kl_teacher, kl_ref):
        loss, _ = sdpg_loss(logp, old[rows], adv[rows], mask[rows], kl_teacher=kl_teacher, ref_logp=ref_logp[rows],
                            kl_ref_full=kl_ref, beta=0.3, alpha=0.2, kl_mode="ufkl", num_tokens=total)  # fmt: skip
        return loss + 0.01 * entropy.sum()  # an entropy bonus too, so every output carries gradient

    return chunk_loss


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("chunk", [4, 29])
def test_fused_head_loss_matches_head_then_loss(dtype, tol, chunk):
    h, w, b, y, th, rh, rw, _ = _make(211, dtype, bias=True, teacher=True, ref=True)
    g = torch.Generator().manual_seed(9)
    old = torch.randn(N, generator=g, dtype=dtype) * 0.2 - 5.5
    ref_logp = torch.randn(N, generator=g, dtype=dtype) * 0.2 - 5.5
    adv = torch.randn(N, generator=g, dtype=dtype)
    mask = torch.rand(N, generator=g) > 0.2
    fn = _sdpg_chunk_loss(old, adv, mask, ref_logp, float(mask.sum()))
    kw = dict(teacher_hidden=th, ref_hidden=rh, ref_weight=rw, lm_bias=b, temperature=0.8, chunk_size=chunk)
    out = sdpg_head(h, w, y, **kw)
    ref_loss = fn(slice(0, N), out.logp, out.entropy, out.kl_teacher, out.kl_ref)
    ref_grads = torch.autograd.grad(ref_loss, [h, w, b])
    loss, fused = sdpg_head_loss(h, w, y, fn, **kw)
    grads = torch.autograd.grad(3.0 * loss, [h, w, b])  # the backward scales the stored gradients
    assert _rel(loss, ref_loss) <= tol
    for k in ("logp", "entropy", "kl_teacher", "kl_ref", "teacher_logp", "teacher_entropy"):
        assert not getattr(fused, k).requires_grad and _rel(getattr(fused, k), getattr(out, k)) <= tol, k
    for a, r in zip(grads, ref_grads):
        assert _rel(a, 3.0 * r) <= tol


def test_fused_head_loss_rejects_non_scalar_chunk_loss():
    h, w, _, y, _, _, _, _ = _make(50)
    with pytest.raises(ValueError, match="scalar"):
        sdpg_head_loss(h, w, y, lambda rows, lp, ent, kl, klr: lp, chunk_size=8)


def test_fused_head_loss_with_constant_or_partial_chunk_loss():
    h, w, _, y, th, _, _, _ = _make(40)
    loss, _ = sdpg_head_loss(h, w, y, lambda rows, lp, ent, kl, klr: torch.tensor(1.0), chunk_size=8)
    assert loss.item() == pytest.approx(4.0)  # 29 tokens -> 4 chunks, no gradient to form
    loss, out = sdpg_head_loss(h, w, y, lambda rows, lp, ent, kl, klr: kl.sum(), teacher_hidden=th, chunk_size=8)
    gh, gw = torch.autograd.grad(loss, [h, w])
    ref = sdpg_head(h, w, y, teacher_hidden=th, chunk_size=8)
    rh, rw = torch.autograd.grad(ref.kl_teacher.sum(), [h, w])
    assert _rel(gh, rh) < 1e-6 and _rel(gw, rw) < 1e-6


def test_mixed_dtypes_hidden_fp32_weight_bf16():
    h, w, _, y, th, _, _, _ = _make(64)
    wb = w.detach().bfloat16().requires_grad_()
    out = sdpg_head(h, wb, y, teacher_hidden=th, chunk_size=7)
    ref = naive_head(h, wb.float(), y, th)
    assert _rel(out.kl_teacher, ref["kl_teacher"]) < 1e-6
    out.kl_teacher.sum().backward()
    assert wb.grad.dtype == torch.bfloat16 and h.grad.dtype == torch.float32


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@CUDA
def test_cuda_fp32_matches_naive():
    h, w, b, y, th, rh, rw, coef = (t.cuda() if isinstance(t, torch.Tensor) else t for t in _make(3001, ref=True))
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    got = sdpg_head(h, w, y, teacher_hidden=th, ref_hidden=rh, ref_weight=rw, temperature=0.9, chunk_size=8)
    ref = naive_head(h, w, y, th, None, rh, rw, None, 0.9)
    got_out = {k: getattr(got, k) for k in ref}
    g_got = torch.autograd.grad(_objective(got_out, coef), [h, w])
    g_ref = torch.autograd.grad(_objective(ref, coef), [h, w])
    assert all(_rel(got_out[k], ref[k]) < 1e-5 for k in ref)
    assert all(_rel(a, r) < 1e-5 for a, r in zip(g_got, g_ref))


@pytest.mark.gpu
@CUDA
def test_cuda_bf16_fp32_accumulation_beats_naive_bf16():
    """bf16 inputs: our values come from fp32-accumulated logits, so they sit far closer to the fp64 truth."""
    h, w, _, y, th, _, _, coef = _make(3001)
    hb, wb, thb = (t.detach().bfloat16().cuda() for t in (h, w, th))
    hb, wb = hb.requires_grad_(), wb.requires_grad_()
    got = sdpg_head(hb, wb, y.cuda(), teacher_hidden=thb, chunk_size=8)
    assert got.logp.dtype == torch.float32
    g_got = torch.autograd.grad(_objective({"logp": got.logp, "kl_teacher": got.kl_teacher}, coef.cuda()), [hb, wb])
    nb = naive_head(hb, wb, y.cuda(), thb)  # bf16 logits, as a bf16 model computes them
    g_nb = torch.autograd.grad(_objective({"logp": nb["logp"], "kl_teacher": nb["kl_teacher"]}, coef.cuda()),
                               [hb, wb])  # fmt: skip
    h64, w64 = hb.detach().double().requires_grad_(), wb.detach().double().requires_grad_()
    truth = naive_head(h64, w64, y.cuda(), thb.double())
    g_truth = torch.autograd.grad(_objective({"logp": truth["logp"], "kl_teacher": truth["kl_teacher"]},
                                             coef.cuda().double()), [h64, w64])  # fmt: skip
    for k in ("logp", "kl_teacher"):
        assert _rel(getattr(got, k), truth[k]) < 1e-5
        assert _rel(getattr(got, k), truth[k]) < _rel(nb[k].float(), truth[k])
    for a, n_, t in zip(g_got, g_nb, g_truth):
        assert _rel(a.float(), t) < 2e-2 and _rel(a.float(), t) <= 2 * _rel(n_.float(), t)
