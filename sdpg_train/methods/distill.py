"""What SDPO and OPSD share: per-token divergences between the student and the (detached) teacher distribution
(full vocabulary, student top-k + tail bucket, or the sampled token), computed chunk by chunk, and the plumbing
that distils only on samples that have a privileged context.

Needs: a teacher view every step (samples without a context get none); no reference model, no value head.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from sdpg_train.core.model_io import MicroBatch
from sdpg_train.core.teacher import build_contexts
from sdpg_train.methods.base import Method

if TYPE_CHECKING:
    from sdpg_train.config import SDPGConfig

__all__ = ["DIVERGENCE_ESTIMATORS", "DistillMethod", "chunked_divergence", "distill_divergence"]

DIVERGENCE_ESTIMATORS = ("full", "topk", "sampled")


def _jsd(logp: Tensor, logq: Tensor, alpha: float) -> Tensor:
    """Per-row generalised JSD over the last dim (TRL GKD convention): 0 → KL(q‖p), 1 → KL(p‖q).

    m = (1 − α)·p + α·q; D = α·KL(q‖m) + (1 − α)·KL(p‖m). ``logp``: student log-probs (grad), ``logq``: teacher.
    """
    kl = lambda a, b: (a.exp() * (a - b)).sum(-1)  # noqa: E731  KL(exp a ‖ exp b)
    if alpha == 0.0:
        return kl(logq, logp)
    if alpha == 1.0:
        return kl(logp, logq)
    logm = torch.logsumexp(torch.stack([logp + math.log(1.0 - alpha), logq + math.log(alpha)]), dim=0)
    return alpha * kl(logq, logm) + (1.0 - alpha) * kl(logp, logm)




def _topk_tail(logp: Tensor, logq: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Restrict both (c, V) log-distributions to the student's top-k tokens plus one tail bucket -> (c, k+1)."""
    idx = logp.detach().topk(min(k, logp.shape[-1]), dim=-1).indices  # (c, k)
    lp, lq = logp.gather(-1, idx), logq.gather(-1, idx)  # (c, k)
    tail = lambda x: torch.log1p(-x.exp().sum(-1).clamp(max=1.0 - 1e-6))  # noqa: E731  log(1 − Σ top-k)
    return torch.cat([lp, tail(lp)[:, None]], -1), torch.cat([lq, tail(lq)[:, None]], -1)




def distill_divergence(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor, *, alpha: float = 0.5,
                       estimator: str = "full", topk: int = 100, temperature: float = 1.0) -> Tensor:
    """Per-token divergence D(p_t, SG q_t) between the student and the (detached) teacher distributions.

    Args:
        student_logits: (c, V) student logits (grad). teacher_logits: (c, V) teacher logits (no grad).
        targets: (c,) sampled token ids (used by the ``sampled`` estimator).
        alpha: generalised-JSD weight: 0 = forward KL(q‖p), 1 = reverse KL(p‖q), in between JSD.
        estimator: ``full`` (whole vocabulary), ``topk`` (student top-k tokens + a tail bucket), ``sampled``
            (the sampled token only: SG(log p − log q)·log p(y_t), whose gradient is the on-policy single-sample
            estimate of ∇KL(p‖q); reverse KL only, so ``alpha`` must be 1).
        topk: k of the ``topk`` estimator. temperature: divides both logits.

    Returns:
        (c,) per-token values (for ``sampled`` a surrogate whose value is SG(log p − log q)·log p).
    """
    if estimator not in DIVERGENCE_ESTIMATORS:
        raise ValueError(f"distill_divergence: estimator must be one of {DIVERGENCE_ESTIMATORS}, got {estimator!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distill_divergence: alpha must be in [0, 1], got {alpha}")
    logp = F.log_softmax(student_logits.float() / temperature, -1)  # (c, V)
    logq = F.log_softmax(teacher_logits.detach().float() / temperature, -1)  # (c, V)
    if estimator == "sampled":
        if alpha != 1.0:
            raise ValueError("distill_divergence: the sampled-token estimator only estimates reverse KL (alpha=1)")
        lp, lq = logp.gather(-1, targets[:, None]).squeeze(1), logq.gather(-1, targets[:, None]).squeeze(1)
        return (lp - lq).detach() * lp
    if estimator == "topk":
        logp, logq = _topk_tail(logp, logq, topk)
    return _jsd(logp, logq, alpha)




def chunked_divergence(h_student: Tensor, weight: Tensor, bias: Tensor | None, h_teacher: Tensor,
                       teacher_weight: Tensor, targets: Tensor, *, chunk: int, teacher_bias: Tensor | None = None,
                       **kw: Any) -> Tensor:
    """:func:`distill_divergence` over token chunks with activation checkpointing: only one chunk's (c, V)
    logits are alive at a time, in the forward and in the backward.

    Args:
        h_student: (N, H) with grad. weight: (V, H) student LM head (grad). bias: (V,) or None.
        h_teacher: (N, H) no grad. teacher_weight: (V, H) no grad. teacher_bias: (V,) or None, the teacher's own.
        targets: (N,) sampled ids.
        chunk: tokens per chunk. kw: ``alpha``, ``estimator``, ``topk``, ``temperature``.
    """
    def piece(hs: Tensor, ht: Tensor, tg: Tensor) -> Tensor:
        zs = torch.nn.functional.linear(hs.float(), weight.float(), None if bias is None else bias.float())
        with torch.no_grad():
            zt = torch.nn.functional.linear(ht.float(), teacher_weight.float(),
                                            None if teacher_bias is None else teacher_bias.detach().float())
        return distill_divergence(zs, zt, tg, **kw)  # (c,)

    parts = [checkpoint(piece, h_student[s : s + chunk], h_teacher[s : s + chunk].detach(), targets[s : s + chunk],
                        use_reentrant=False) for s in range(0, h_student.shape[0], chunk)]
    return torch.cat(parts) if parts else h_student.new_zeros(0)




def _distilled_tokens(mb: MicroBatch) -> Tensor:
    """(Ntok,) bool: tokens of samples that got a teacher view."""
    if mb.teacher is None:
        return torch.zeros_like(mb.mask)
    return mb.mask.clone() if mb.teacher_tokens is None else mb.teacher_tokens.clone()




class DistillMethod(Method):
    """SDPO / OPSD: distillation on samples that have a privileged context; the divergence per token."""

    uses_teacher = True

    @classmethod
    def validate(cls, cfg: SDPGConfig) -> None:
        if cfg.distill_estimator == "sampled" and cfg.distill_alpha != 1.0:
            raise ValueError("invalid SDPGConfig: distill_estimator=sampled estimates reverse KL only: set "
                             "distill_alpha 1")

    def teacher_active(self, batch: Any, adv: Tensor) -> list[bool] | None:
        a = self.args
        ctx = build_contexts(batch, a.context_sources, a.success_reward_threshold)
        gate = (adv > 0).tolist() if a.gate_positive else [True] * len(batch)
        return [bool(c.strip()) and g for c, g in zip(ctx, gate)]

    def prepare(self, batch: Any, tview: Any, minis: list[list[MicroBatch]], step: int) -> dict[str, float]:
        from sdpg_train.training.distributed import all_reduce_sum

        super().prepare(batch, tview, minis, step)
        for mini in minis:
            for mb in mini:
                mb.extra["distilled"] = _distilled_tokens(mb)
            count = all_reduce_sum(sum(int(mb.extra["distilled"].sum()) for mb in mini), self.trainer.dist)
            for mb in mini:
                mb.extra["distill_tokens"] = max(count, 1.0)
        return {}

    def loss_inputs(self, mb: MicroBatch, out: Any, h_student: Tensor, h_teacher: Tensor | None) -> dict[str, Any]:
        a, t = self.args, self.trainer
        if h_teacher is None:  # no sample of this micro-batch has a context: a zero loss that keeps the graph
            return {"divergence": out.logp * 0.0}
        if a.distill_estimator == "full" and a.distill_alpha == 1.0:
            return {"divergence": out.kl_teacher}  # the head's exact, chunked KL(p‖SG q)
        div = chunked_divergence(
            h_student, t.policy.lm_head_weight, t.policy.lm_head_bias, h_teacher,
            t._teacher_module().lm_head_weight.detach(), mb.student.targets, chunk=t._head_kw["chunk_size"],
            teacher_bias=t._teacher_module().lm_head_bias,
            alpha=a.distill_alpha, estimator=a.distill_estimator, topk=a.distill_topk, temperature=a.temperature)
        return {"divergence": div}


