"""HF-format checkpoints with exact resume: ``output_dir/checkpoint-N/``.

Layout (the same file names as ``transformers.Trainer``, so ``AutoModelForCausalLM.from_pretrained(ckpt)``
works as is): ``model.safetensors`` + ``config.json`` (``save_pretrained``), the tokenizer files,
``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth`` (``rng_state_{rank}.pth`` for ranks > 0),
``trainer_state.json``, for an EMA teacher ``teacher_ema.safetensors``, with fp16 ``scaler.pt``, and with LoRA
``adapter/`` (the adapter, used for resume) beside the merged ``model.safetensors``; under FSDP2 ``sharded/``
(model and AdamW shards, ``torch.distributed.checkpoint``) replaces ``optimizer.pt`` and the full weights are
gathered into ``model.safetensors``. A checkpoint is written into a
temporary folder and renamed into place, so a crash never leaves a half-written ``checkpoint-N``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

_CKPT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"checkpoint-{step}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete ``checkpoint-N`` folders, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CKPT.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in ``output_dir`` (None if there is none)."""
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1] if ckpts else None


def rotate_checkpoints(output_dir: str | Path, keep: int | None) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints; returns the deleted folders."""
    if keep is None:
        return []
    old = list_checkpoints(output_dir)[:-keep] if keep > 0 else []
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return old


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_file(rank: int) -> str:
    return "rng_state.pth" if rank == 0 else f"rng_state_{rank}.pth"


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    *,
    model: nn.Module,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer_state: dict[str, Any],
    ema_teacher: nn.Module | None = None,
    rank: int = 0,
    save_total_limit: int | None = None,
    extra_modules: dict[str, nn.Module] | None = None,
    scaler_state: dict[str, Any] | None = None,
    lora_merge: bool = True,
    model_state: dict[str, torch.Tensor] | None = None,
    sharded: bool = False,
) -> Path:
    """Write ``checkpoint-{step}`` atomically (rank 0 writes everything; other ranks only their RNG state).

    Under DDP call it on every rank, then barrier; other ranks write into the final folder after rank 0's rename.
    """
    final = checkpoint_dir(output_dir, step)
    if rank != 0:
        final.mkdir(parents=True, exist_ok=True)
        torch.save(rng_state(), final / _rng_file(rank))
        return final
    tmp = tmp_checkpoint_dir(output_dir, step)
    if not sharded:  # a sharded save has already written tmp/sharded/ (all ranks, :func:`save_sharded`)
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    from sdpg_train.core.lora import is_peft, save_lora

    if is_peft(model):  # adapter/ (resume) + merged model.safetensors (from_pretrained-ready)
        save_lora(model, tmp, merge=lora_merge)
    else:  # model_state: the gathered full weights of a sharded (FSDP2) model
        model.save_pretrained(tmp, safe_serialization=True, state_dict=model_state)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    if scaler_state is not None:  # fp16 loss scale
        torch.save(scaler_state, tmp / "scaler.pt")
    if not sharded:  # sharded: the optimiser state lives in sharded/ with the model shards
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / _rng_file(0))
    if ema_teacher is not None:
        from safetensors.torch import save_model

        save_model(ema_teacher, str(tmp / "teacher_ema.safetensors"))
    for name, module in (extra_modules or {}).items():  # PPO value head, context encoder (sdpg_train.methods.base)
        from safetensors.torch import save_model

        save_model(module, str(tmp / f"{name}.safetensors"))
    (tmp / STATE_FILE).write_text(json.dumps({**trainer_state, "global_step": step}, indent=2, default=str))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    rotate_checkpoints(output_dir, save_total_limit)
    return final


def tmp_checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f".tmp-checkpoint-{step}"


SHARDED_DIR = "sharded"


def full_model_state(model: nn.Module, prefix: str = "lm.") -> dict[str, torch.Tensor]:
    """Collective: the full (unsharded) weights of an FSDP2 ``model`` on rank 0 (CPU), keys without ``prefix``;
    an empty dict on other ranks."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k.removeprefix(prefix): v for k, v in state.items()}


def save_sharded(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Collective: every rank writes its shards of the model and AdamW state to ``folder/sharded`` (DCP)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(folder / SHARDED_DIR))


def load_sharded(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Collective: load ``folder/sharded`` into an FSDP2 model and its optimiser (any rank layout of the same world
    size that saved it; DCP reshards when the sharding differs)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    if not (Path(folder) / SHARDED_DIR).is_dir():
        raise FileNotFoundError(f"checkpoint {folder} has no {SHARDED_DIR}/ (saved without FSDP? resume it with ddp)")
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=str(Path(folder) / SHARDED_DIR))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load ``save_pretrained`` safetensors (single file or sharded) into an existing model, in place."""
    from safetensors.torch import load_file

    path = Path(path)
    index = path / "model.safetensors.index.json"
    files = ["model.safetensors"]
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    state: dict[str, torch.Tensor] = {}
    for name in files:
        if not (path / name).is_file():
            raise FileNotFoundError(f"checkpoint {path} lacks {name}")
        state.update(load_file(str(path / name)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = _tied_keys(model)
    real_missing = [k for k in missing if k not in tied]
    if real_missing or unexpected:
        raise RuntimeError(f"checkpoint {path} does not match the model: missing {real_missing[:5]}, "
                           f"unexpected {list(unexpected)[:5]}")


def _tied_keys(model: nn.Module) -> set[str]:
    """State-dict keys whose tensor shares storage with an earlier key (tied weights)."""
    seen: dict[int, str] = {}
    tied = set()
    for k, v in model.state_dict(keep_vars=True).items():
        ptr = v.data_ptr()
        if ptr in seen:
            tied.add(k)
        else:
            seen[ptr] = k
    return tied


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ema_teacher: nn.Module | None = None,
    rank: int = 0,
    extra_modules: dict[str, nn.Module] | None = None,
    precision: Any = None,
    sharded_model: nn.Module | None = None,
) -> dict[str, Any]:
    """Restore model (or LoRA adapter), optimizer, scheduler, EMA teacher, fp16 loss scale and this rank's RNG;
    returns the trainer state."""
    from sdpg_train.core.lora import is_peft, load_lora

    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {STATE_FILE})")
    if sharded_model is not None:  # FSDP2: model and optimiser shards (collective)
        load_sharded(path, sharded_model, optimizer)
    elif is_peft(model):
        load_lora(model, path)
    else:
        load_model_weights(model, path)
    if precision is not None and (path / "scaler.pt").is_file():
        precision.load_state_dict(torch.load(path / "scaler.pt", weights_only=False))
    if sharded_model is None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    if ema_teacher is not None:
        from safetensors.torch import load_model

        load_model(ema_teacher, str(path / "teacher_ema.safetensors"))
    for name, module in (extra_modules or {}).items():
        from safetensors.torch import load_model

        if not (path / f"{name}.safetensors").is_file():
            raise FileNotFoundError(f"checkpoint {path} lacks {name}.safetensors (saved by another loss/teacher?)")
        load_model(module, str(path / f"{name}.safetensors"))
    rng = path / _rng_file(rank)
    set_rng_state(torch.load(rng if rng.is_file() else path / _rng_file(0), weights_only=False))
    return json.loads((path / STATE_FILE).read_text())
