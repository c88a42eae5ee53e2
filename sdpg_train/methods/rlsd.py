"""RLSD: GRPO whose per-token advantage is re-weighted by the teacher (spec §9): the teacher's log-probability of
each sampled token, from one no-grad teacher pass per step, scales A within [1 − ε_w, 1 + ε_w], mixed by λ(k).

Needs: a teacher view every step (its log-probs only: the update itself runs no teacher forward); no reference
model, no value head. The loss is the SDPG surrogate (β = 0) on the mixed advantages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sdpg_train.core.head import sdpg_head
from sdpg_train.core.model_io import MicroBatch
from sdpg_train.methods.base import Method, all_micro_batches
from sdpg_train.methods.sdpg import sdpg_loss

if TYPE_CHECKING:
    from sdpg_train.config import SDPGConfig

__all__ = ["RLSD", "rlsd_advantages", "rlsd_lambda"]


def rlsd_lambda(step: int, lam: float, decay_steps: int) -> float:
    """λ(k) of RLSD: linear decay from ``lam`` at step 1 to 0 at ``decay_steps`` (0 = constant)."""
    if decay_steps <= 0:
        return lam
    return lam * max(0.0, 1.0 - (step - 1) / decay_steps)




def rlsd_advantages(advantages: Tensor, teacher_logp: Tensor, old_logp: Tensor, lam: float = 0.5,
                    eps_w: float = 0.2, clamp: float = 20.0) -> tuple[Tensor, Tensor]:
    """RLSD per-token advantage: the teacher only re-weights A (spec §9).

    Δ_t = SG[log q(y_t) − log π_old(y_t)] clamped to ±clamp; u_t = exp(sign(A)·Δ_t);
    Â_t = A·clip(u_t, 1 − ε_w, 1 + ε_w); A_mix = (1 − λ)·A + λ·Â.

    Args:
        advantages: (N,) per-token GRPO advantages (A_i broadcast). teacher_logp: (N,) log q(y_t | c, x).
        old_logp: (N,) log π_old(y_t | x). lam: λ (mixing weight). eps_w: ε_w.

    Returns:
        ``(A_mix (N,), Δ (N,))``, both without grad.
    """
    delta = torch.clamp(teacher_logp.detach().float() - old_logp.detach().float(), -clamp, clamp)  # (N,)
    a = advantages.detach().float()
    u = torch.exp(torch.sign(a) * delta)
    a_hat = a * torch.clamp(u, 1.0 - eps_w, 1.0 + eps_w)
    return (1.0 - lam) * a + lam * a_hat, delta



class RLSD(Method):
    """RLSD: a no-grad teacher pass per step gives log q(y_t); the update needs no teacher forward."""

    uses_teacher = True
    token_separable = True

    @classmethod
    def compute_loss(cls, cfg: SDPGConfig, out: Any, mb: MicroBatch, beta: float, num_tokens: float,
                     **extra: Any) -> tuple[Tensor, dict[str, float]]:
        old_logp = out.logp.detach() if mb.old_logp is None else mb.old_logp
        has = mb.extra["has_teacher"]
        tlogp = torch.where(has, mb.extra["teacher_logp"], old_logp.float())  # no teacher: Δ = 0, weight 1
        adv, delta = rlsd_advantages(mb.advantages, tlogp, old_logp, lam=mb.extra["rlsd_lambda"],
                                     eps_w=cfg.rlsd_eps_w)
        loss, stats = sdpg_loss(out.logp, old_logp, adv, mb.mask, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
                                dual_clip_c=cfg.dual_clip_c, gate_positive=False, num_tokens=num_tokens)
        n = max(int(has.sum()), 1)
        stats["rlsd/delta"] = float(torch.where(has, delta, torch.zeros_like(delta)).sum()) / n
        return loss, stats

    @torch.no_grad()
    def prepare(self, batch: Any, tview: Any, minis: list[list[MicroBatch]], step: int) -> dict[str, float]:
        super().prepare(batch, tview, minis, step)
        t = self.trainer
        lam = rlsd_lambda(step, self.args.rlsd_lambda, self.args.rlsd_lambda_decay_steps)
        for mb in all_micro_batches(minis):
            has = torch.zeros(mb.num_tokens, dtype=torch.bool, device=mb.mask.device)
            tlogp = torch.zeros(mb.num_tokens, device=mb.mask.device)
            if mb.teacher is not None:
                h = self.teacher_forward(mb)  # (Ntok_active, H)
                tmod = t._teacher_module()  # its own LM head, weight and bias
                rows = mb.teacher_tokens if mb.teacher_tokens is not None else slice(None)
                tlogp[rows] = sdpg_head(h, tmod.head_weight(), mb.teacher.targets, lm_bias=tmod.lm_head_bias,
                                        **t._head_kw).logp.float()
                has[rows] = True
            mb.extra.update(teacher_logp=tlogp, has_teacher=has, rlsd_lambda=lam)
            mb.teacher, mb.teacher_tokens = None, None  # the update itself needs no teacher forward
        return {"rlsd/lambda": lam}


