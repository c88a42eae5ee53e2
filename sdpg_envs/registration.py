"""Registration of ``sdpg/<Name>-v<N>`` ids in Gymnasium's registry (string entry points, imported lazily).

Bump the version whenever the prompt format, the data split or the verifier of an id changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

NAMESPACE = "sdpg"
_ID = re.compile(r"^(?:[\w.-]+/)?[\w.:-]+-v\d+$")


@dataclass(frozen=True)
class EnvEntry:
    """One built-in id: ``gym.register(id, entry_point, kwargs=kwargs)``."""

    id: str
    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


BUILTIN_ENVS: list[EnvEntry] = [
    EnvEntry("sdpg/Arith-v0", "sdpg_envs.envs.math_env:arith_env",
             description="procedural arithmetic, offline; knobs digits, num_ops, operators, word_problems"),
    EnvEntry("sdpg/GSM8K-v0", "sdpg_envs.envs.math_env:gsm8k_env", description="GSM8K grade-school word problems"),
    EnvEntry("sdpg/MATH-v0", "sdpg_envs.envs.math_env:math_env", description="MATH test set (5,000 problems)"),
    EnvEntry("sdpg/MATH500-v0", "sdpg_envs.envs.math_env:math500_env", description="MATH-500 (PRM800K subset)"),
    EnvEntry("sdpg/HumanEval-v0", "sdpg_envs.envs.code_env:humaneval_env",
             description="HumanEval (164 Python functions), sandboxed unit tests"),
    EnvEntry("sdpg/MBPP-v0", "sdpg_envs.envs.code_env:mbpp_env", description="MBPP test split, sandboxed unit tests"),
    EnvEntry("sdpg/PyFunc-v0", "sdpg_envs.envs.code_env:pyfunc_env",
             description="procedural 'write def f(x)' tasks, offline; knobs level, num_examples, num_tests"),
    EnvEntry("sdpg/HumanEvalRepair-v0", "sdpg_envs.envs.repair_env:humaneval_repair_env",
             description="HumanEval, multi-turn: test/compiler feedback comes back until a pass or max_attempts"),
    EnvEntry("sdpg/MBPPRepair-v0", "sdpg_envs.envs.repair_env:mbpp_repair_env",
             description="MBPP, multi-turn repair (max_attempts=3)"),
    EnvEntry("sdpg/PyFuncRepair-v0", "sdpg_envs.envs.repair_env:pyfunc_repair_env",
             description="PyFunc, multi-turn repair (max_attempts=3), offline"),
    EnvEntry("sdpg/CFunc-v0", "sdpg_envs.envs.cfunc_env:cfunc_env",
             description="procedural C functions tested through gcc in the sandbox; split='eval': 18 fixed problems"),
    EnvEntry("sdpg/CFuncRepair-v0", "sdpg_envs.envs.cfunc_env:cfunc_repair_env",
             description="CFunc, multi-turn: gcc's trimmed diagnostics / the failing call come back (max_attempts=3)"),
]
"""Built-in ids registered by ``import sdpg_envs``. Other env modules append their entries here."""


def register_env(id: str, entry_point: str | Any, *, overwrite: bool = False, **kwargs: Any) -> None:  # noqa: A002
    """Register a reasoning env id (``"ns/Name-vN"``) with Gymnasium; a thin, checked ``gym.register``.

    Args:
        id: Versioned id, e.g. ``"myproject/Countdown-v0"``.
        entry_point: ``"module:callable"`` (preferred: imported only on ``gym.make``) or a callable.
        overwrite: Replace an existing registration instead of raising.
        **kwargs: Default keyword arguments for the entry point.

    No ``max_episode_steps``: episodes end with ``terminated=True`` (after one step, or for multi-turn envs
    after a pass or ``max_attempts`` attempts).
    """
    if not _ID.match(id):
        raise ValueError(f"env id {id!r} must look like 'namespace/Name-vN' (versioned)")
    if id in gym.registry and not overwrite:
        if gym.registry[id].entry_point == entry_point and gym.registry[id].kwargs == kwargs:
            return  # idempotent re-registration (e.g. a module imported twice)
        raise ValueError(f"env id {id!r} is already registered; pass overwrite=True or bump the version")
    if id in gym.registry:
        del gym.registry[id]
    gym.register(id=id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=False,
                 order_enforce=True)


def register_builtin_envs() -> None:
    """Register every entry of :data:`BUILTIN_ENVS` (idempotent)."""
    for entry in BUILTIN_ENVS:
        register_env(entry.id, entry.entry_point, **entry.kwargs)


def registered_ids(namespace: str = NAMESPACE) -> list[str]:
    """All ids currently registered under ``namespace`` (built-ins and anything registered later), sorted."""
    return sorted(env_id for env_id in gym.registry if env_id.startswith(f"{namespace}/"))


def make_error_message(env_id: str, exc: BaseException) -> str:
    """A one-line explanation of why ``gym.make(env_id)`` failed, with the fix for an unregistered id."""
    msg = f"cannot make env {env_id!r}: {exc}"
    if isinstance(exc, gym.error.UnregisteredEnv | ModuleNotFoundError):
        msg += (". Your own env must be registered in this process first: pass --import YOUR_MODULE (the module "
                "that calls gymnasium.register; in Python, import it), or use the id form 'your_module:ns/Name-v0'. "
                f"Registered {NAMESPACE}/ ids: {', '.join(registered_ids())} (`sdpg envs`)")
    return msg
