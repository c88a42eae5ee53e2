"""The SDPG learner: rollouts, teacher views, the chunked full-vocabulary head, losses, trainer, evaluation."""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module; imported lazily so `sdpg --help` and `import sdpg_train.cli` stay fast.
_EXPORTS: dict[str, str] = {
    "SDPGConfig": "sdpg_train.config",
    "SDPGTrainer": "sdpg_train.trainer",
    "RolloutBatch": "sdpg_train.rollout",
    "TaskSource": "sdpg_train.rollout",
    "EnvSource": "sdpg_train.rollout",
    "DatasetSource": "sdpg_train.rollout",
    "collect_rollouts": "sdpg_train.rollout",
    "build_teacher_view": "sdpg_train.teacher",
    "EvalReport": "sdpg_train.report",
    "pass_at_k": "sdpg_train.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sdpg_train' has no attribute {name!r}")
