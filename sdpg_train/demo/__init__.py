"""The CPU demo (``sdpg demo``): :mod:`~sdpg_train.demo.run` runs the stages, :mod:`~sdpg_train.demo.report`
writes the report."""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:  # ``from sdpg_train.demo import DemoConfig`` (the pre-package path) still works
    if name.startswith("__"):
        raise AttributeError(name)
    run = importlib.import_module("sdpg_train.demo.run")
    try:
        return getattr(run, name)
    except AttributeError:
        raise AttributeError(f"module 'sdpg_train.demo' has no attribute {name!r}") from None
