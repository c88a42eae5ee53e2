"""Gymnasium-style math and code reasoning environments whose verifiers emit privileged context."""

from sdpg_envs.adapters import as_reward_func, to_dataset
from sdpg_envs.base import PromptTemplate, ReasoningEnv
from sdpg_envs.checker import check_reasoning_env
from sdpg_envs.multiturn import MultiTurnEnv
from sdpg_envs.privileged import register_context_part, render_context
from sdpg_envs.registration import BUILTIN_ENVS, EnvEntry, register_builtin_envs, register_env, registered_ids
from sdpg_envs.spaces import UnicodeText
from sdpg_envs.tasks.sources import ListSource, ProceduralSource, TaskSource
from sdpg_envs.types import Problem, VerifierResult

register_builtin_envs()

__all__ = [
    "BUILTIN_ENVS",
    "EnvEntry",
    "ListSource",
    "MultiTurnEnv",
    "Problem",
    "ProceduralSource",
    "PromptTemplate",
    "ReasoningEnv",
    "TaskSource",
    "UnicodeText",
    "VerifierResult",
    "as_reward_func",
    "check_reasoning_env",
    "register_builtin_envs",
    "register_context_part",
    "register_env",
    "registered_ids",
    "render_context",
    "to_dataset",
]
