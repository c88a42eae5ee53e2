"""Per-loss extensions of the one learner: what ``ppo``, ``rlsd``, ``sdpo``, ``opsd`` (and the ``encoder`` teacher)
add to :class:`sdpg_train.training.trainer.SDPGTrainer`, as hooks the trainer calls at fixed points of a step.

* ``teacher_active``  which samples get a teacher view (sdpg: the A > 0 gate; sdpo/opsd: samples with a context);
* ``prepare``         after the old/ref log-prob pass: PPO's rollout values + GAE, RLSD's teacher log-probs;
* ``teacher_forward`` the no-grad teacher hidden states (the encoder teacher adds its soft prefix);
* ``loss_inputs``     extra per-token tensors for ``trainer.compute_loss`` (values, divergences);
* ``after_step``      the encoder's own objective.

The loss math itself is pure (:mod:`sdpg_train.methods.ppo`); :func:`mode_loss` maps a micro-batch onto it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sdpg_train.config import TEACHER_LOSSES, SDPGConfig
from sdpg_train.core.head import sdpg_head
from sdpg_train.core.model_io import MicroBatch, sampled_logprobs
from sdpg_train.core.teacher import build_contexts
from sdpg_train.core.value_head import ValueHead
from sdpg_train.methods.ppo import (
    distill_divergence,
    gae,
    masked_whiten,
    opsd_loss,
    ppo_loss,
    ppo_token_rewards,
    rlsd_advantages,
    rlsd_lambda,
    sdpo_loss,
)
from sdpg_train.methods.sdpg import sdpg_loss

__all__ = ["ModeHooks", "PPOHooks", "RLSDHooks", "DistillHooks", "make_hooks", "mode_loss", "chunked_divergence"]


def _pad(flat: Tensor, mask: Tensor) -> Tensor:
    """(Ntok,) row-major values -> (n, T) right-padded by ``mask`` (zeros elsewhere)."""
    out = torch.zeros(mask.shape, dtype=flat.dtype, device=flat.device)
    out[mask] = flat
    return out


def _all_mbs(minis: list[list[MicroBatch]]) -> list[MicroBatch]:
    return [mb for mini in minis for mb in mini]


class ModeHooks:
    """The sdpg/grpo behaviour (no-ops) and the shared encoder-teacher plumbing; subclasses add a loss's needs."""

    def __init__(self, trainer: Any) -> None:
        self.trainer, self.args = trainer, trainer.args
        self.encoder = None
        if self.args.teacher_model_kind == "encoder":
            from sdpg_train.core.context_encoder import EncoderTeacher

            self.encoder = EncoderTeacher.for_trainer(trainer)

    # -------------------------------------------------------------- parameters and checkpoint state
    def extra_parameters(self) -> list[nn.Parameter]:
        """Parameters the main optimizer trains besides the policy's (PPO's value head)."""
        return []

    def modules(self) -> dict[str, nn.Module]:
        """Extra modules saved with checkpoints as ``{name}.safetensors``."""
        return {} if self.encoder is None else {"context_encoder": self.encoder.encoder}

    def sync_gradients(self) -> None:
        """Average the extra parameters' gradients over ranks (they live outside the DDP wrapper)."""
        dist = self.trainer.dist
        if not dist.enabled:
            return
        import torch.distributed as tdist

        for p in self.extra_parameters():  # the loss was scaled by world_size, so the average matches DDP's
            if p.grad is not None:
                tdist.all_reduce(p.grad, op=tdist.ReduceOp.SUM)
                p.grad.div_(dist.world_size)

    # -------------------------------------------------------------- step hooks
    def teacher_active(self, batch: Any, adv: Tensor) -> list[bool] | None:
        """Samples that get a teacher view (None: all)."""
        return (adv > 0).tolist() if self.args.gate_positive else None

    def needs_teacher_view(self, beta: float) -> bool:
        return beta > 0 or self.args.loss in TEACHER_LOSSES

    def prepare(self, batch: Any, tview: Any, minis: list[list[MicroBatch]], step: int) -> dict[str, float]:
        """After the old/ref pass, before the update: fill ``mb.extra``; returns step metrics."""
        if self.encoder is not None and tview is not None:
            self.encoder.attach_contexts(batch, tview, minis)
        return {}

    def teacher_forward(self, mb: MicroBatch) -> Tensor:
        """(Ntok_active, H) no-grad teacher hidden states of ``mb.teacher``."""
        if self.encoder is not None:
            return self.encoder.hidden(mb)
        return self.trainer._teacher_module()(**mb.teacher.inputs())

    def loss_inputs(self, mb: MicroBatch, out: Any, h_student: Tensor, h_teacher: Tensor | None) -> dict[str, Any]:
        return {}

    def after_step(self, batch: Any, tview: Any, minis: list[list[MicroBatch]]) -> dict[str, float]:
        if self.encoder is not None and tview is not None:
            return self.encoder.train_step(batch, minis)
        return {}


class PPOHooks(ModeHooks):
    """Classic RLHF PPO: value head on the final hidden state, GAE, KL-to-reference penalty in the reward."""

    def __init__(self, trainer: Any) -> None:
        super().__init__(trainer)
        self.value_head = ValueHead.for_model(trainer.policy.lm, detach_trunk=self.args.value_head_detach)

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.value_head.parameters())

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "value_head": self.value_head}

    @torch.no_grad()
    def prepare(self, batch: Any, tview: Any, minis: list[list[MicroBatch]], step: int) -> dict[str, float]:
        t, a = self.trainer, self.args
        kw = t._head_kw
        raw, kls, penalties = [], [], []
        for mb in _all_mbs(minis):
            h = t.policy(**mb.student.inputs())  # (Ntok, H) rollout-policy hidden states
            mb.old_logp = sdpg_head(h, t.policy.lm_head_weight, mb.student.targets, lm_bias=t.policy.lm_head_bias,
                                    **kw).logp
            values = self.value_head(h)  # (Ntok,)
            if t.ref is not None and mb.ref_logp is None:
                mb.ref_logp = sampled_logprobs(t.ref, mb.student, **kw).logp
            tm = mb.student.token_mask  # (n, T)
            scores = batch.rewards[mb.index].to(tm.device)  # (n,)
            ref = None if mb.ref_logp is None else _pad(mb.ref_logp, tm)
            rewards, kl = ppo_token_rewards(scores, tm, _pad(mb.old_logp, tm), ref, a.kl_coef)  # (n, T)
            adv, ret = gae(rewards, _pad(values, tm), tm, a.gamma, a.lam)  # (n, T)
            mb.extra.update(old_values=values, returns=ret[tm])
            raw.append(adv[tm])
            kls.append(kl[tm])
            penalties.append((-a.kl_coef * kl).sum(1))  # (n,) summed per completion
        flat = torch.cat(raw)  # (Ntok_step,)
        white = masked_whiten(flat, torch.ones_like(flat, dtype=torch.bool)) if a.whiten_advantages else flat
        start = 0
        for mb in _all_mbs(minis):
            mb.advantages = white[start : start + mb.num_tokens]
            start += mb.num_tokens
        k1 = torch.cat(kls)
        stats = torch.stack([flat.mean(), flat.std() if flat.numel() > 1 else flat.new_zeros(()), flat.min(),
                             flat.max(), (torch.exp(-k1) - 1 + k1).mean(), k1.mean(),
                             torch.cat(penalties).mean()]).tolist()
        keys = ("advantages/mean", "advantages/std", "advantages/min", "advantages/max")
        out = dict(zip(keys, stats[:4]))
        if t.ref is not None:
            out.update({"kl": stats[4], "ref/log_ratio": stats[5], "ppo/non_score_reward": stats[6]})
        return out

    def loss_inputs(self, mb: MicroBatch, out: Any, h_student: Tensor, h_teacher: Tensor | None) -> dict[str, Any]:
        return {"values": self.value_head(h_student)}  # (Ntok,) with grad to the head (and trunk unless detached)


class RLSDHooks(ModeHooks):
    """RLSD: a no-grad teacher pass per step gives log q(y_t); the update needs no teacher forward."""

    @torch.no_grad()
    def prepare(self, batch: Any, tview: Any, minis: list[list[MicroBatch]], step: int) -> dict[str, float]:
        super().prepare(batch, tview, minis, step)
        t = self.trainer
        lam = rlsd_lambda(step, self.args.rlsd_lambda, self.args.rlsd_lambda_decay_steps)
        for mb in _all_mbs(minis):
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


class DistillHooks(ModeHooks):
    """SDPO / OPSD: distillation on samples that have a privileged context; the divergence per token."""

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


def _distilled_tokens(mb: MicroBatch) -> Tensor:
    """(Ntok,) bool: tokens of samples that got a teacher view."""
    if mb.teacher is None:
        return torch.zeros_like(mb.mask)
    return mb.mask.clone() if mb.teacher_tokens is None else mb.teacher_tokens.clone()


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


def make_hooks(trainer: Any) -> ModeHooks:
    """The hooks for ``trainer.args.loss``."""
    loss = trainer.args.loss
    cls = {"ppo": PPOHooks, "rlsd": RLSDHooks, "sdpo": DistillHooks, "opsd": DistillHooks}.get(loss, ModeHooks)
    return cls(trainer)


def mode_loss(cfg: SDPGConfig, out: Any, mb: MicroBatch, num_tokens: float, **extra: Any
              ) -> tuple[Tensor, dict[str, float]]:
    """Loss of one micro-batch for ``ppo | rlsd | sdpo | opsd`` (called from ``trainer.compute_loss``)."""
    old_logp = out.logp.detach() if mb.old_logp is None else mb.old_logp
    if cfg.loss == "ppo":
        return ppo_loss(out.logp, old_logp, mb.advantages, extra["values"], mb.extra["old_values"],
                        mb.extra["returns"], mb.mask, cliprange=cfg.cliprange, cliprange_value=cfg.cliprange_value,
                        vf_coef=cfg.vf_coef, num_tokens=num_tokens)
    if cfg.loss == "rlsd":
        has = mb.extra["has_teacher"]
        tlogp = torch.where(has, mb.extra["teacher_logp"], old_logp.float())  # no teacher: Δ = 0, weight 1
        adv, delta = rlsd_advantages(mb.advantages, tlogp, old_logp, lam=mb.extra["rlsd_lambda"],
                                     eps_w=cfg.rlsd_eps_w)
        loss, stats = sdpg_loss(out.logp, old_logp, adv, mb.mask, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
                                dual_clip_c=cfg.dual_clip_c, gate_positive=False, num_tokens=num_tokens)
        n = max(int(has.sum()), 1)
        stats["rlsd/delta"] = float(torch.where(has, delta, torch.zeros_like(delta)).sum()) / n
        return loss, stats
    if cfg.loss == "sdpo":
        return sdpo_loss(extra["divergence"], out.logp, old_logp, mb.mask, mb.extra["distilled"],
                         is_clip=cfg.distill_is_clip, num_tokens=mb.extra["distill_tokens"])
    if cfg.loss == "opsd":
        return opsd_loss(extra["divergence"], mb.mask & mb.extra["distilled"], num_tokens=num_tokens)
    raise ValueError(f"unknown loss {cfg.loss!r}")
