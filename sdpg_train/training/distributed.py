"""``torchrun`` + DDP behind a few functions; everything is a no-op in a single process.

Run a config on N processes with ``torchrun --nproc_per_node N -m sdpg_train.cli train --config FILE``. Each rank
draws its own prompts (problem seeds include the rank), gradients are averaged by DDP, the loss is normalised
by the completion-token count summed over all ranks, and only rank 0 logs and writes checkpoints (every rank
saves its RNG state). CPU runs use the gloo backend, CUDA runs nccl. ``distributed_strategy: fsdp`` shards the
policy with FSDP2 instead of replicating it (sharded checkpoints through ``torch.distributed.checkpoint``).
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


def wrap_model(module: nn.Module, info: DistInfo, strategy: str = "ddp") -> nn.Module:
    """DDP-wrap ``module`` when running distributed (parameters are broadcast from rank 0); else return it.

    ``strategy="fsdp"`` shards it in place with FSDP2 instead (:func:`shard_fsdp2`) and returns the same module.
    """
    if not info.enabled:
        return module
    if strategy == "fsdp":
        return shard_fsdp2(module, info)
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def shard_fsdp2(module: nn.Module, info: DistInfo) -> nn.Module:
    """FSDP2 (``torch.distributed.fsdp.fully_shard``): each decoder layer is its own shard group, then the root.

    Every rank must hold the same initial weights (the trainer seeds model init identically on all ranks). The
    root (embeddings, final norm, LM head) stays unsharded between its forward and backward, so the SDPG head,
    which reads the LM-head weight outside the model's forward, sees the full weight and its gradient is
    reduce-scattered with the rest at the end of backward.
    """
    from torch.distributed.fsdp import fully_shard

    lm = getattr(module, "lm", module)
    inner = lm.get_base_model() if hasattr(lm, "peft_config") else lm
    names = set(getattr(inner, "_no_split_modules", None) or [])
    layers = [m for m in module.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"FSDP2: cannot find the decoder layers of {type(inner).__name__} (no _no_split_modules)")
    mesh = None
    if info.device.type == "cpu":
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh("cpu", (info.world_size,))
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(module, mesh=mesh)
    return module


def is_fsdp(module: nn.Module) -> bool:
    """True for a module sharded with FSDP2."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value (all-gathered), any other tensor itself."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


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
