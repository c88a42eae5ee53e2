"""LoRA through ``peft``: adapters on the policy, the reference = the same model with adapters disabled,
adapter checkpoints (resume) and merged weights (``from_pretrained``-ready) in every checkpoint.

Install with ``pip install 'sdpg[lora]'`` (``peft``). Only the adapter weights train and sit in the optimiser;
the base weights are frozen and shared by the policy, the reference policy and a ``base`` teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ADAPTER_DIR = "adapter"


def is_peft(model: nn.Module) -> bool:
    """True for a ``peft`` model (has ``peft_config``)."""
    return hasattr(model, "peft_config")


def apply_lora(lm: nn.Module, args: Any) -> nn.Module:
    """Wrap ``lm`` with LoRA adapters from the config's ``lora_*`` fields (base weights frozen)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("lora_r > 0 needs peft: pip install 'sdpg[lora]' (or pip install peft)") from exc
    targets = list(args.lora_target_modules)
    cfg = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                     target_modules="all-linear" if targets == ["all-linear"] else targets, bias="none",
                     task_type="CAUSAL_LM")
    return get_peft_model(lm, cfg)


class AdapterDisabled(nn.Module):
    """The frozen initial policy of a LoRA run: the policy's own forward with its adapters switched off.

    Holds no weights of its own (the policy is referenced, not registered as a submodule, so its parameters are
    neither copied nor saved twice); forward runs under ``no_grad`` in callers, as the reference always does.
    """

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.__dict__["policy"] = policy  # not a submodule: no parameters of its own

    @property
    def compute_dtype(self) -> torch.dtype | None:
        return self.policy.compute_dtype

    @property
    def lm_head_weight(self) -> Tensor:
        return self.policy.lm_head_weight

    @property
    def lm_head_bias(self) -> Tensor | None:
        return self.policy.lm_head_bias

    def head_weight(self) -> Tensor:
        return self.policy.head_weight()

    def forward(self, **inputs: Tensor) -> Tensor:
        with self.policy.lm.disable_adapter():
            return self.policy(**inputs)


def merged_state_dict(lm: nn.Module) -> dict[str, Tensor]:
    """The base model's state dict with every LoRA update folded in (W + (α/r)·B·A), adapter keys removed.

    Computed out of place, so the live model keeps its adapters bit for bit (exact resume).
    """
    base = lm.get_base_model()
    merged: dict[str, Tensor] = {}
    deltas: dict[str, Tensor] = {}
    for name, module in base.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            for adapter in module.active_adapters:
                if adapter in getattr(module, "lora_A", {}):
                    with torch.no_grad():
                        d = module.get_delta_weight(adapter)
                    key = f"{name}.weight"
                    deltas[key] = deltas[key] + d if key in deltas else d
    for key, value in base.state_dict().items():
        if ".lora_" in key:
            continue
        clean = key.replace(".base_layer.", ".")
        merged[clean] = value + deltas[clean].to(value.dtype) if clean in deltas else value
    return merged


def save_lora(lm: nn.Module, folder: Path, merge: bool) -> None:
    """``folder/adapter/`` (adapter weights + config) and, with ``merge``, the merged model via ``save_pretrained``."""
    lm.save_pretrained(folder / ADAPTER_DIR)
    if merge:
        base = lm.get_base_model()
        state = {k: v.detach().clone().contiguous() for k, v in merged_state_dict(lm).items()}
        base.save_pretrained(folder, state_dict=state, safe_serialization=True)
    else:
        lm.get_base_model().config.save_pretrained(folder)


def load_lora(lm: nn.Module, folder: Path) -> None:
    """Load ``folder/adapter/`` weights into the LoRA model ``lm`` in place."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(folder) / ADAPTER_DIR / "adapter_model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {folder} has no {ADAPTER_DIR}/adapter_model.safetensors (saved "
                                "without LoRA? build the trainer with the same lora_r as the run that saved it)")
    result = set_peft_model_state_dict(lm, load_file(str(path)))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise RuntimeError(f"adapter in {folder} does not match the model: unexpected {list(unexpected)[:5]}")
