"""The SDPG learner: rollouts, teacher views, the chunked full-vocabulary head, methods, trainer, evaluation.

Layout (see "How the code is organised" in README.md): :mod:`sdpg_train.core` (learner core),
:mod:`sdpg_train.methods` (one file per training method, plus the registry), :mod:`sdpg_train.training` (the
trainer loop), :mod:`sdpg_train.evaluation` (eval and reporting), :mod:`sdpg_train.demo`, and the ``sdpg`` CLI
(:mod:`sdpg_train.cli`, :mod:`sdpg_train.commands`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

# public name -> module; imported lazily so `sdpg --help` and `import sdpg_train.cli` stay fast.
_EXPORTS: dict[str, str] = {
    "SDPGConfig": "sdpg_train.config",
    "SDPGTrainer": "sdpg_train.training.trainer",
    "RolloutBatch": "sdpg_train.core.rollout",
    "TaskSource": "sdpg_train.core.rollout",
    "EnvSource": "sdpg_train.core.rollout",
    "DatasetSource": "sdpg_train.core.rollout",
    "collect_rollouts": "sdpg_train.core.rollout",
    "build_teacher_view": "sdpg_train.core.teacher",
    "EvalReport": "sdpg_train.evaluation.report",
    "pass_at_k": "sdpg_train.evaluation.evaluate",
    "Method": "sdpg_train.methods.base",
    "register_method": "sdpg_train.methods",
}

MOVED_MODULES: dict[str, str] = {
    "sdpg_train.rollout": "sdpg_train.core.rollout",
    "sdpg_train.advantages": "sdpg_train.core.advantages",
    "sdpg_train.teacher": "sdpg_train.core.teacher",
    "sdpg_train.model_io": "sdpg_train.core.model_io",
    "sdpg_train.head": "sdpg_train.core.head",
    "sdpg_train.value_head": "sdpg_train.core.value_head",
    "sdpg_train.context_encoder": "sdpg_train.core.context_encoder",
    "sdpg_train.trainer": "sdpg_train.training.trainer",
    "sdpg_train.checkpoint": "sdpg_train.training.checkpoint",
    "sdpg_train.logging": "sdpg_train.training.logging",
    "sdpg_train.distributed": "sdpg_train.training.distributed",
    "sdpg_train.sft": "sdpg_train.training.sft",
    "sdpg_train.learned_verifier": "sdpg_train.training.learned_verifier",
    "sdpg_train.evaluate": "sdpg_train.evaluation.evaluate",
    "sdpg_train.generation": "sdpg_train.evaluation.generation",
    "sdpg_train.report": "sdpg_train.evaluation.report",
    "sdpg_train.compare": "sdpg_train.evaluation.compare",
    "sdpg_train.plotting": "sdpg_train.evaluation.plotting",
    "sdpg_train.demo_report": "sdpg_train.demo.report",
    "sdpg_train.loss": "sdpg_train.methods.sdpg",
    "sdpg_train.lora": "sdpg_train.core.lora",
    "sdpg_train.precision": "sdpg_train.core.precision",
}
"""Module paths from before the subpackage layout -> where the module lives now. ``import sdpg_train.trainer``
still works and gives the very same module object (so patching it patches the real one)."""

__all__ = sorted(_EXPORTS)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves the old flat module paths of :data:`MOVED_MODULES` to the moved modules."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module: ModuleType) -> None:  # the real module is already executed
        return None


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())  # before path finders: an old file left on disk never wins


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sdpg_train' has no attribute {name!r}")
