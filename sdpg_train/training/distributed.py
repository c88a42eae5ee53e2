"""``torchrun`` + DDP behind a few functions; everything is a no-op in a single process.

Run a config on N processes with ``torchrun --nproc_per_node N -m sdpg_train.cli train --config FILE``. Each rank
draws its own prompts (problem seeds include the rank), gradients are averaged by DDP, the loss is normalised
by the completion-token count summed over all ranks, and only rank 0 logs and writes checkpoints (every rank
saves its RNG state). CPU runs use the gloo backend, CUDA runs nccl.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size, local rank and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → cuda:local_rank when CUDA is available, else cpu; otherwise the named device."""
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if preference == "cuda" and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank}")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={preference!r} but CUDA is not available here (torch {torch.__version__}); "
                         "use --device cpu or auto")
    return torch.device(preference)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); otherwise single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def wrap_model(module: nn.Module, info: DistInfo) -> nn.Module:
    """DDP-wrap ``module`` when running distributed (parameters are broadcast from rank 0); else return it."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return getattr(module, "module", module)


def all_reduce_sum(value: float | torch.Tensor, info: DistInfo) -> float:
    """Sum a scalar over ranks (identity in a single process)."""
    t = torch.as_tensor(value, dtype=torch.float64, device=info.device if info.device.type == "cuda" else "cpu")
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Leave the process group (call once at the end of training)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
