"""Mixed precision as users expect it: fp32 master weights, bf16/fp16 compute through ``torch.autocast``.

``torch_dtype`` names the *compute* dtype. With ``bfloat16`` or ``float16`` the trained parameters (and AdamW's
moments) stay fp32 and every model forward — student, teacher, reference, old log-probs, generation — runs
under ``torch.autocast(dtype=torch_dtype)``; ``float16`` adds a dynamic loss scaler (``torch.amp.GradScaler``).
Frozen copies (reference model, ``base`` teacher) never train, so they are stored in the compute dtype (half the
memory, same forward numerics under autocast). ``low_precision_params: true`` keeps the parameters themselves in
bf16 — the only choice when memory forces it, and it warns: AdamW updates below bf16's resolution (2^-8
relative, i.e. most updates at a learning rate of 1e-6) are rounded away.

The LM head and the loss always accumulate in fp32 (:mod:`sdpg_train.core.head`).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

LOW_PRECISION_WARNING = (
    "low_precision_params=True: parameters are kept in {dtype} with no fp32 master copy; AdamW updates smaller "
    "than {dtype}'s resolution are lost (with bfloat16 most updates at learning rates around 1e-6). Use it only "
    "when fp32 master weights do not fit; otherwise leave low_precision_params false (mixed precision)."
)


def param_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point parameters (the first one found; fp32 for none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def load_dtype(torch_dtype: str, low_precision_params: bool) -> torch.dtype | str:
    """The ``dtype`` to pass to ``from_pretrained``: fp32 master weights unless low precision was asked for."""
    if torch_dtype == "auto":
        return "auto"  # the checkpoint's own dtype; :func:`setup_precision` then upcasts to fp32 masters
    return DTYPES[torch_dtype] if low_precision_params else torch.float32


@dataclass
class Precision:
    """Compute dtype (None: plain fp32), the device type autocast runs on, and the fp16 loss scaler."""

    compute_dtype: torch.dtype | None = None
    device_type: str = "cpu"
    scaler: Any = None  # torch.amp.GradScaler for float16

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` in the compute dtype (a no-op context for fp32)."""
        if self.compute_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.compute_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the loss scale (before clipping); no-op without a scaler."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer, finite: bool) -> None:
        """Optimizer step when the gradients are finite; the scaler (if any) updates its scale either way."""
        if self.scaler is None:
            if finite:
                optimizer.step()
            return
        if finite:
            self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def setup_precision(lm: nn.Module, torch_dtype: str, low_precision_params: bool,
                    device: torch.device) -> tuple[nn.Module, Precision]:
    """Cast ``lm``'s parameters (fp32 masters, or the compute dtype when ``low_precision_params``) -> (lm, Precision).

    ``torch_dtype: auto`` computes in the dtype the model was loaded (or given) in.
    """
    compute = param_dtype(lm) if torch_dtype == "auto" else DTYPES[torch_dtype]
    if compute == torch.float32:
        return lm.float(), Precision(None, device.type)
    if low_precision_params:
        if compute == torch.float16:
            raise ValueError("low_precision_params needs torch_dtype bfloat16: fp16 parameters cannot be trained "
                             "with a loss scaler (their gradients cannot be unscaled); use mixed fp16 instead")
        warnings.warn(LOW_PRECISION_WARNING.format(dtype=str(compute).removeprefix("torch.")), stacklevel=3)
        lm = lm.to(compute)
    else:
        lm = lm.float()
    scaler = torch.amp.GradScaler(device.type) if compute == torch.float16 else None
    return lm, Precision(compute, device.type, scaler)
