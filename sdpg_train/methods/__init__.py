"""Training methods, one file each (``sdpg``, ``grpo``, ``ppo``, ``rlsd``, ``sdpo``, ``opsd``), behind a registry.

A method is a :class:`~sdpg_train.methods.base.Method` subclass: it declares what it needs (a teacher view, a
frozen reference model, a value head) and computes its per-token loss; ``SDPGConfig(loss=NAME)`` picks it by
name. A method of your own, in your own module (docs/methods.md)::

    from sdpg_train.methods import Method, register_method

    @register_method("mine")
    class Mine(Method):
        @classmethod
        def compute_loss(cls, cfg, out, mb, beta, num_tokens, **extra): ...

``sdpg train --import your.module --loss mine`` imports the module first; an installed package can instead
declare an entry point in the :data:`ENTRY_POINT_GROUP` group (``mine = "your.module:Mine"``).

This module stays light (no torch): the config validates ``loss`` against :func:`method_names` at import speed,
and a method's file is imported only when :func:`get_method` asks for it.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdpg_train.methods.base import Method

__all__ = ["BUILTIN_METHODS", "ENTRY_POINT_GROUP", "Method", "get_method", "method_names", "register_method"]

BUILTIN_METHODS: dict[str, str] = {
    "sdpg": "sdpg_train.methods.sdpg:SDPG",
    "grpo": "sdpg_train.methods.grpo:GRPO",
    "ppo": "sdpg_train.methods.ppo:PPO",
    "rlsd": "sdpg_train.methods.rlsd:RLSD",
    "sdpo": "sdpg_train.methods.sdpo:SDPO",
    "opsd": "sdpg_train.methods.opsd:OPSD",
}
"""The methods that ship with the package: name -> ``module:Class``."""
ENTRY_POINT_GROUP = "sdpg_train.methods"
"""Entry-point group through which an installed package adds methods (``name = "module:Class"``)."""

_REGISTERED: dict[str, type[Method]] = {}


def register_method(name: str, cls: type[Method] | None = None, *, replace: bool = False) -> Any:
    """Register a :class:`~sdpg_train.methods.base.Method` subclass under ``name`` (usable as a decorator).

    A built-in name, or a name already taken by another class, is refused unless ``replace=True``.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"register_method: name must be a non-empty string without surrounding spaces, got {name!r}")

    def add(method: type[Method]) -> type[Method]:
        from sdpg_train.methods.base import Method

        if not (isinstance(method, type) and issubclass(method, Method)):
            raise TypeError(f"register_method({name!r}): expected a subclass of sdpg_train.methods.Method, "
                            f"got {method!r}")
        taken = _REGISTERED.get(name)
        clash = (name in BUILTIN_METHODS and taken is None) or (taken is not None and taken is not method)
        if clash and not replace:
            raise ValueError(f"register_method: a method named {name!r} already exists; pass replace=True to "
                             "override it")
        method.name = name
        _REGISTERED[name] = method
        return method

    return add if cls is None else add(cls)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def method_names() -> tuple[str, ...]:
    """Every method name ``SDPGConfig.loss`` accepts: built-in, registered, and entry points (not loaded)."""
    names = dict.fromkeys([*BUILTIN_METHODS, *_REGISTERED, *_entry_points()])
    return tuple(names)


def get_method(name: str) -> type[Method]:
    """The method class for ``name`` (imports its module on first use)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILTIN_METHODS:
        module, _, attr = BUILTIN_METHODS[name].partition(":")
        method = getattr(importlib.import_module(module), attr)
    else:
        ep = _entry_points().get(name)
        if ep is None:
            raise ValueError(f"unknown method {name!r}; available: {', '.join(method_names())}. Add one with "
                             "sdpg_train.methods.register_method (and `sdpg train --import MODULE`), see "
                             "docs/methods.md")
        method = ep.load()
    return register_method(name, method, replace=True)


def __getattr__(name: str) -> Any:
    if name == "Method":
        from sdpg_train.methods.base import Method

        return Method
    raise AttributeError(f"module 'sdpg_train.methods' has no attribute {name!r}")
