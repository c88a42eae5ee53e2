"""Interop with TRL: an environment as a ``datasets.Dataset`` and its verifier as a reward function.

- :func:`to_dataset` gives columns ``prompt`` (text, or chat messages with ``chat=True``), ``answer``,
  ``privileged_context`` (the column TRL's SDPO trainer reads; the env's context before any attempt, i.e. the
  reference part), ``problem_index``, ``problem_id``, plus whatever ``env.dataset_columns(problem)`` adds.
- :func:`as_reward_func` returns ``fn(prompts, completions, **columns) -> list[float | None]`` as TRL's
  ``GRPOTrainer`` calls it: plain or chat completions, batch verification, status/feedback logged through the
  ``log_extra``/``log_metric`` keyword arguments when TRL passes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

from sdpg_envs.base import ReasoningEnv
from sdpg_envs.types import Problem

MAX_DATASET_ROWS = 1_000_000
RewardFunc = Callable[..., list[float | None]]


def _resolve_wrapped(env_or_id: str | gym.Env, make_kwargs: Mapping[str, Any]) -> tuple[ReasoningEnv, str, gym.Env]:
    """-> (the ReasoningEnv, its name, the env as given or made, wrappers included)."""
    if isinstance(env_or_id, str):
        import sdpg_envs  # noqa: F401 - registers the built-in ids

        wrapped = gym.make(env_or_id, **make_kwargs)
        env = wrapped.unwrapped
        name = env_or_id
    elif isinstance(env_or_id, gym.Env):
        if make_kwargs:
            raise ValueError(f"keyword options {sorted(make_kwargs)} only apply when passing an env id")
        wrapped, env = env_or_id, env_or_id.unwrapped
        name = env.spec.id if env.spec is not None else type(env).__name__
    else:
        raise TypeError(f"expected an env id or a gymnasium Env, got {type(env_or_id).__name__}")
    if not isinstance(env, ReasoningEnv):
        raise TypeError(f"{name} is not a ReasoningEnv ({type(env).__name__})")
    return env, name, wrapped


def _resolve(env_or_id: str | gym.Env, make_kwargs: Mapping[str, Any]) -> tuple[ReasoningEnv, str]:
    env, name, _ = _resolve_wrapped(env_or_id, make_kwargs)
    return env, name


def to_dataset(env_or_id: str | gym.Env, split: str | None = None, n: int | None = None, chat: bool = False,
               **make_kwargs: Any):
    """The env's problems ``0..n-1`` as a ``datasets.Dataset`` (all of them when ``n`` is None).

    Args:
        env_or_id: A registered id (made with ``split`` and ``make_kwargs``) or a ReasoningEnv.
        split: Data split passed to ``gym.make`` (ids only).
        n: Number of rows; required for procedural envs.
        chat: ``prompt`` as ``[{"role": "user", "content": ...}]`` instead of plain text.
    """
    import datasets

    if split is not None:
        make_kwargs = {**make_kwargs, "split": split}
    env, name = _resolve(env_or_id, make_kwargs)
    if n is None and env.num_problems > MAX_DATASET_ROWS:
        raise ValueError(f"{name} has {env.num_problems} problems (procedural); pass n=")
    count = env.num_problems if n is None else min(int(n), env.num_problems)
    if count < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rows = []
    for index in range(count):
        problem = env.problem_at(index)
        prompt = env.prompt_for(problem)
        rows.append({
            "prompt": [{"role": "user", "content": prompt}] if chat else prompt,
            "answer": problem.answer,
            "privileged_context": env.build_context(problem, None),
            "problem_index": index,
            "problem_id": dataset_problem_id(problem),
            **env.dataset_columns(problem),
        })
    return datasets.Dataset.from_list(rows)


def completion_text(completion: Any) -> str:
    """The text of a plain (``str``) or chat-format (list of messages) completion; last assistant turn wins."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, Mapping)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
        if assistant:
            content = assistant[-1].get("content", "")
            if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}]
                return "".join(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
            return "" if content is None else str(content)
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


def _is_column(value: Any) -> bool:
    """Per-row column values (a list, tuple or ``datasets`` Column), not scalars, strings or callbacks."""
    return hasattr(value, "__len__") and hasattr(value, "__getitem__") and not isinstance(value, str | bytes | Mapping)


def _row(columns: Mapping[str, Any], i: int) -> dict[str, Any]:
    return {k: v[i] for k, v in columns.items() if _is_column(v) and i < len(v)}


def dataset_problem_id(problem: Problem) -> str:
    """The ``problem_id`` column: the problem's id plus a digest of its content (prompt, answer, solution).

    An env made with other generator kwargs (``digits``, ``split``, a data file) has different problems at the
    same index, often under the same id; the digest tells them apart, so the reward function falls back to the
    row's ``answer`` instead of scoring against the wrong problem.
    """
    content = json.dumps([problem.prompt, problem.answer, problem.solution], default=str)
    return f"{problem.id}#{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def _problem_for(env: ReasoningEnv, row: Mapping[str, Any]) -> Problem | None:
    index = row.get("problem_index")
    if index is not None and 0 <= int(index) < env.num_problems:
        problem = env.problem_at(int(index))
        row_id = row.get("problem_id")
        legacy = "#" not in str(row_id) and row_id == problem.id  # a dataset from before the content digest
        if row_id is None or legacy or row_id == dataset_problem_id(problem):
            return problem
    return env.problem_from_columns(row)


def as_reward_func(env_or_id: str | gym.Env, **options: Any) -> RewardFunc:
    """A TRL-compatible reward function scoring completions with the env's verifier.

    The returned ``fn(prompts, completions, **columns)`` rebuilds each problem from ``problem_index`` (checked
    against ``problem_id``, whose content digest catches a dataset made with other env kwargs) or from the
    answer/test columns, verifies all completions with
    ``env.verify_batch`` and returns one score per completion (``None`` where the row cannot be rebuilt, which
    TRL skips). ``options`` go to ``gym.make`` (ids only) and must match those used for :func:`to_dataset`.
    A call with neither a ``problem_index`` nor an ``answer`` column (e.g. TRL's ``remove_unused_columns=True``)
    raises ``ValueError`` rather than silently scoring nothing. Reward-shaping wrappers around a passed env
    (``FormatPenalty``, ``TransformReward``, ...) are applied to the scores (:mod:`sdpg_envs.shaping`); wrappers
    that change observations are refused with ``TypeError``.
    """
    from sdpg_envs.shaping import RewardReplay

    env, name, wrapped = _resolve_wrapped(env_or_id, options)
    try:
        shaping = RewardReplay(wrapped)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None

    def reward_func(prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                    **columns: Any) -> list[float | None]:
        if completions is None:
            raise ValueError("reward function needs completions=")
        texts = [completion_text(c) for c in completions]
        problems = [_problem_for(env, _row(columns, i)) for i in range(len(texts))]
        todo = [i for i, p in enumerate(problems) if p is not None]
        if texts and not todo and "problem_index" not in columns and "answer" not in columns:
            raise ValueError(f"{name}: the reward function got no 'problem_index' or 'answer' column (got "
                             f"{sorted(k for k in columns if _is_column(columns[k]))}); train on "
                             "sdpg_envs.to_dataset(...) and keep remove_unused_columns=False in the TRL config")
        results = env.verify_batch([problems[i] for i in todo], [texts[i] for i in todo])
        shaped = shaping.shape([problems[i] for i in todo], [texts[i] for i in todo], results)
        by_index = dict(zip(todo, results))
        rewards: list[float | None] = [None] * len(texts)
        for i, r in zip(todo, shaped):
            rewards[i] = float(r.score)
        log_extra, log_metric = columns.get("log_extra"), columns.get("log_metric")
        if callable(log_extra):
            log_extra("status", [by_index[i].status if i in by_index else "skipped" for i in range(len(texts))])
            log_extra("feedback", [by_index[i].feedback if i in by_index else "" for i in range(len(texts))])
        if callable(log_metric) and results:
            log_metric(f"{reward_func.__name__}/pass_rate", sum(r.passed for r in results) / len(results))
        return rewards

    reward_func.__name__ = reward_func.__qualname__ = re.sub(r"\W+", "_", name).strip("_").lower()
    reward_func.env = env  # type: ignore[attr-defined]
    return reward_func
