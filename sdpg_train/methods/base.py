"""The :class:`Method` base class: what one training method declares and the hooks the trainer calls.

A method declares what it needs from the config (:meth:`Method.needs_teacher`, :meth:`Method.needs_ref`,
:meth:`Method.needs_value_head`, :meth:`Method.beta_base`), checks its fields (:meth:`Method.validate`) and
computes the loss of one micro-batch from the head's per-token outputs (:meth:`Method.compute_loss`). The trainer
builds one instance per run and calls its hooks at fixed points of a step:

* ``teacher_active``  which samples get a teacher view (default: all, or the A > 0 gate);
* ``prepare``         after the old/ref log-prob pass: PPO's rollout values + GAE, RLSD's teacher log-probs;
* ``teacher_forward`` the no-grad teacher hidden states (the encoder teacher adds its soft prefix);
* ``loss_inputs``     extra per-token tensors for :meth:`Method.compute_loss` (values, divergences);
* ``after_step``      the encoder's own objective.

The shared plumbing lives here: the encoder teacher (``teacher_model_kind="encoder"``) and the value head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from sdpg_train.core.model_io import MicroBatch
from sdpg_train.core.value_head import ValueHead

if TYPE_CHECKING:
    from sdpg_train.config import SDPGConfig

__all__ = ["Method", "all_micro_batches", "masked_means", "pad_tokens", "token_denominator", "zero_where_not"]


def zero_where_not(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


def token_denominator(mask: Tensor, num_tokens: float | None, name: str) -> float:
    if mask.dtype != torch.bool:
        raise ValueError(f"{name}: mask must be a bool tensor, got {mask.dtype}")
    if num_tokens is not None and not num_tokens > 0:
        raise ValueError(f"{name}: num_tokens must be > 0, got {num_tokens}")
    return max(float(mask.sum() if num_tokens is None else num_tokens), 1.0)


def masked_means(values: dict[str, Tensor], mask: Tensor) -> dict[str, float]:
    """Masked means of per-token tensors, one host sync."""
    cnt = max(int(mask.sum()), 1)
    keys = list(values)
    stacked = torch.stack([zero_where_not(v.detach().float(), mask).sum() / cnt for v in values.values()])
    return dict(zip(keys, stacked.tolist()))




def pad_tokens(flat: Tensor, mask: Tensor) -> Tensor:
    """(Ntok,) row-major values -> (n, T) right-padded by ``mask`` (zeros elsewhere)."""
    out = torch.zeros(mask.shape, dtype=flat.dtype, device=flat.device)
    out[mask] = flat
    return out



def all_micro_batches(minis: list[list[MicroBatch]]) -> list[MicroBatch]:
    return [mb for mini in minis for mb in mini]



class Method:
    """One training method. Subclass it, override what your method needs, register it
    (:func:`sdpg_train.methods.register_method`); the defaults are GRPO-like: no teacher, no reference, no value
    head, and no loss (:meth:`compute_loss` must be written)."""

    name: ClassVar[str] = ""
    """The ``loss`` name it is registered under (set by the registry)."""
    uses_teacher: ClassVar[bool] = False
    """Always builds a teacher view (otherwise only while β > 0, see :meth:`beta_base`)."""
    supports_multiturn: ClassVar[bool] = True
    """Trains on multi-turn episodes (each model turn a sample, the episode's advantage on all its turns); False
    makes ``SDPGTrainer`` refuse multi-turn envs at construction (``multiturn_refusal`` says why)."""
    multiturn_refusal: ClassVar[str] = ""
    token_separable: ClassVar[bool] = False
    """The loss is a sum of per-token terms of the head's outputs (each token's own values only), so with
    ``fused_head`` it can run chunk by chunk inside the head (``sdpg_train.core.head.sdpg_head_loss``)."""

    # -------------------------------------------------------------- declarations (read from the config)
    @classmethod
    def beta_base(cls, cfg: SDPGConfig) -> float:
        """β_base of the full-vocabulary distillation KL (0: no distillation term)."""
        return 0.0

    @classmethod
    def needs_teacher(cls, cfg: SDPGConfig) -> bool:
        """Whether a teacher forward runs (β > 0, or a method that always uses the teacher)."""
        return cls.beta_base(cfg) > 0 or cls.uses_teacher

    @classmethod
    def needs_ref(cls, cfg: SDPGConfig) -> bool:
        """Whether a frozen reference model is kept."""
        return False

    @classmethod
    def needs_value_head(cls, cfg: SDPGConfig) -> bool:
        """Whether a value head is trained with the policy (built by :meth:`__init__`, saved with checkpoints)."""
        return False

    @classmethod
    def validate(cls, cfg: SDPGConfig) -> None:
        """Raise ``ValueError("invalid SDPGConfig: ...")`` on field values this method cannot run with."""

    @classmethod
    def compute_loss(cls, cfg: SDPGConfig, out: Any, mb: MicroBatch, beta: float, num_tokens: float,
                     **extra: Any) -> tuple[Tensor, dict[str, float]]:
        """The loss of one micro-batch -> ``(loss, stats)``.

        Args:
            out: the head's per-token outputs (``HeadOutput``: ``logp``, ``entropy``, ``kl_teacher``, ``kl_ref``).
            mb: the micro-batch (``advantages``, ``mask``, ``old_logp``, ``ref_logp``, ``extra``...).
            beta: β(k) of this step. num_tokens: the step's global token count (the loss denominator).
            extra: the per-token tensors of :meth:`loss_inputs`.
        """
        raise NotImplementedError(f"method {cls.name or cls.__name__!r} does not define compute_loss")

    # -------------------------------------------------------------- construction
    def __init__(self, trainer: Any) -> None:
        self.trainer, self.args = trainer, trainer.args
        self.encoder = None
        if self.args.teacher_model_kind == "encoder":
            from sdpg_train.core.context_encoder import EncoderTeacher

            self.encoder = EncoderTeacher.for_trainer(trainer)
        self.value_head: ValueHead | None = None
        if self.needs_value_head(self.args):
            self.value_head = ValueHead.for_model(trainer.policy.lm, detach_trunk=self.args.value_head_detach)

    # -------------------------------------------------------------- parameters and checkpoint state
    def extra_parameters(self) -> list[nn.Parameter]:
        """Parameters the main optimizer trains besides the policy's (the value head)."""
        return [] if self.value_head is None else list(self.value_head.parameters())

    def modules(self) -> dict[str, nn.Module]:
        """Extra modules saved with checkpoints as ``{name}.safetensors``."""
        out: dict[str, nn.Module] = {} if self.encoder is None else {"context_encoder": self.encoder.encoder}
        if self.value_head is not None:
            out["value_head"] = self.value_head
        return out

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
        return beta > 0 or self.uses_teacher

    def zero_gradient_samples(self, adv: Tensor, beta: float) -> Tensor | None:
        """(n,) bool: samples whose loss terms all have zero gradient this step, so they need no forward at all
        (their tokens still count in the loss denominator); None: every sample may matter (the default)."""
        return None

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


