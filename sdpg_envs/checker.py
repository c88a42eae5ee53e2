"""``check_reasoning_env``: Gymnasium's ``check_env`` plus the guarantees every ``sdpg/*`` env makes (single-step
and multi-turn)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from sdpg_envs.base import ReasoningEnv
from sdpg_envs.multiturn import MultiTurnEnv
from sdpg_envs.privileged import render_context

REQUIRED_STEP_KEYS = ("verifier", "privileged_context", "answer", "problem_id")
_LEAK_TEMPLATES = ("reference", "solution", "reference+feedback")


def garbage_completions(max_chars: int, seed: int = 0) -> list[str]:
    """Hostile completions: empty, whitespace, control bytes, lone surrogates, random unicode, oversized."""
    rng = np.random.default_rng(seed)
    random_text = "".join(chr(int(c)) for c in rng.integers(0, 0x10FFFF, size=2_000))
    return [
        "",
        " \n\t ",
        "\x00\x01\x1b[31m\r\n\x7f",
        "\ud800\udfff lone surrogates \ud83d",
        "\\boxed{" * 200 + "}" * 50,
        "```python\n" + "(" * 5_000 + "\n```",
        random_text,
        "9" * (max_chars + 1_000),
    ]


def _text(obs: Any) -> str:
    """An observation as text (chat observations: the messages' contents joined)."""
    return "\n".join(m["content"] for m in obs) if isinstance(obs, list) else obs


def _check_step(env: ReasoningEnv, completion: str, where: str) -> tuple[Any, float, bool, dict[str, Any]]:
    obs, reward, terminated, truncated, info = env.step(completion)
    assert obs in env.observation_space, f"{where}: step returned an observation outside observation_space"
    assert isinstance(reward, float) and math.isfinite(reward), f"{where}: reward {reward!r} is not a finite float"
    assert truncated is False and isinstance(terminated, bool), f"{where}: bad terminated/truncated flags"
    missing = [k for k in REQUIRED_STEP_KEYS if k not in info]
    assert not missing, f"{where}: step info lacks {missing}"
    assert isinstance(info["privileged_context"], str), f"{where}: privileged_context must be a str"
    assert isinstance(info["verifier"], dict) and "status" in info["verifier"], f"{where}: bad info['verifier']"
    score = info["verifier"].get("score")
    if isinstance(env, MultiTurnEnv):
        attempt, turns = info.get("attempt"), info.get("turns")
        assert isinstance(turns, list) and attempt == len(turns) == env.attempt, f"{where}: bad info['turns']"
        assert turns[-1]["status"] == info["verifier"]["status"], f"{where}: info['turns'] disagrees with verifier"
        ends = bool(info["verifier"].get("passed")) or attempt >= env.max_attempts
        assert terminated is ends, f"{where}: terminated={terminated} after attempt {attempt} (passed or last ends)"
        assert (not _text(obs)) is terminated, f"{where}: feedback after non-final attempts only"
        expected = env.reward_for(score, attempt) if terminated else 0.0
    else:
        assert obs == "" and terminated is True, f"{where}: a reasoning episode ends after one step with obs ''"
        expected = score
    assert reward == expected, f"{where}: reward {reward} != {expected} (verifier score, unwrapped env)"
    return obs, reward, terminated, info


def _reference_texts(problem: Any) -> list[str]:
    texts = [render_context(t, problem, None) for t in _LEAK_TEMPLATES]
    solution = (problem.solution or "").strip()
    return texts + ([solution] if len(solution) >= 20 else [])


def _check_turns(env: MultiTurnEnv, seed: int) -> None:
    """Feedback reaches the next turn without leaking the reference, a correct later attempt scores, the
    episode ends after ``max_attempts`` failures, and stepping past the end raises ``ResetNeeded``."""
    obs0, info0 = env.reset(seed=seed)
    problem, where = env.problem, f"{env!r} problem {env.problem.id}"
    if env.max_attempts > 1:
        obs, reward, terminated, _ = _check_step(env, "", where + " empty attempt")
        assert not terminated and reward == 0.0 and _text(obs).strip(), f"{where}: no feedback after a failure"
        _assert_no_leak(env, _text(obs), info0, _reference_texts(problem), where + " feedback")
        _, reward, terminated, info = _check_step(env, env.gold_completion(problem), where + " second attempt")
        assert terminated and reward == env.reward_for(1.0, 2), f"{where}: a correct second attempt scored {reward}"
        assert [t["passed"] for t in info["turns"]] == [False, True], f"{where}: bad turns {info['turns']}"
    env.reset(seed=seed)
    for attempt in range(1, env.max_attempts + 1):
        _, reward, terminated, _ = _check_step(env, "", f"{where} empty attempt {attempt}")
    assert terminated and reward == 0.0, f"{where}: {env.max_attempts} failed attempts must end the episode"
    try:
        env.step("")
    except gym.error.ResetNeeded:
        pass
    else:
        raise AssertionError(f"{where}: step() after the episode ended must raise ResetNeeded")


def _assert_no_leak(env: ReasoningEnv, obs: str, reset_info: dict[str, Any], contexts: list[str], where: str) -> None:
    for ctx in contexts:
        if not ctx.strip():
            continue
        assert ctx not in obs, f"{where}: privileged context leaked into the observation:\n{ctx[:300]}"
        leaked = [k for k, v in reset_info.items() if isinstance(v, str) and ctx in v]
        assert not leaked, f"{where}: privileged context leaked into reset() info keys {leaked}"
    assert "privileged_context" not in reset_info, f"{where}: reset() info must not carry privileged_context"


def _run_check_env(env: ReasoningEnv) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    relevant = [w for w in caught if "gymnasium" in str(w.filename) or issubclass(w.category, UserWarning)]
    assert not relevant, "gymnasium check_env warned:\n" + "\n".join(str(w.message) for w in relevant)


def check_reasoning_env(env: gym.Env, *, num_problems: int = 2, seed: int = 0, skip_gym_check: bool = False) -> None:
    """Assert that ``env`` honours the ``sdpg`` environment contract; raise ``AssertionError`` otherwise.

    Checks, in order: Gymnasium's ``check_env`` without warnings; the same seed gives the same problem (and
    ``options={"index": i}`` gives problem ``i``); for ``num_problems`` problems the gold completion scores 1.0
    through ``step``; the privileged context (the env's own and the reference templates) never appears in the
    observation or in ``reset()``'s info; hostile completions (empty, control bytes, surrogates, random
    unicode, oversized) never raise and give a finite reward equal to the verifier score, and the empty completion
    does not pass. For a :class:`~sdpg_envs.multiturn.MultiTurnEnv` also: a failed attempt with attempts left
    returns non-empty feedback (``terminated=False``, reward 0) that never shows the reference; a correct second
    attempt ends the episode with ``reward_for(1.0, 2)``; ``max_attempts`` failures end it; a step after the end
    raises ``ResetNeeded``; chat observations are checked the same way as text.

    Args:
        env: A :class:`~sdpg_envs.base.ReasoningEnv`, possibly wrapped (e.g. from ``gym.make``); the checks run
            on ``env.unwrapped``, so reward-shaping wrappers do not affect them.
        num_problems: How many problems to run the gold and leak checks on.
        seed: Base seed for the checks.
        skip_gym_check: Skip Gymnasium's ``check_env`` (e.g. to test one of the extra checks in isolation).
    """
    base = env.unwrapped
    assert isinstance(base, ReasoningEnv), f"expected a ReasoningEnv, got {type(base).__name__}"
    if not skip_gym_check:
        _run_check_env(base)

    obs_a, info_a = base.reset(seed=seed + 17)
    obs_b, info_b = base.reset(seed=seed + 17)
    assert (obs_a, info_a["problem_id"]) == (obs_b, info_b["problem_id"]), "same seed gave different problems"
    index = min(3, base.num_problems - 1)
    obs_i, info_i = base.reset(options={"index": index})
    assert info_i["index"] == index and info_i["problem_id"] == base.problem_at(index).id, "options['index'] ignored"
    assert _text(obs_i) == base.prompt_for(base.problem_at(index)), "observation is not prompt_for(problem)"

    for k in range(num_problems):
        obs, info = base.reset(seed=seed + k)
        problem = base.problem
        where = f"{base!r} problem {problem.id}"
        gold = base.gold_completion(problem)
        _, reward, _, step_info = _check_step(base, gold, where)
        assert reward == 1.0, f"{where}: the gold completion scored {reward} ({step_info['verifier']})"
        contexts = [step_info["privileged_context"], base.build_context(problem, None)]
        contexts += [render_context(t, problem, None) for t in _LEAK_TEMPLATES]
        _assert_no_leak(base, _text(obs), info, contexts, where)

    multi = isinstance(base, MultiTurnEnv)
    if multi:
        _check_turns(base, seed)
    _, info = base.reset(seed=seed)
    for i, completion in enumerate(garbage_completions(base.max_completion_chars, seed)):
        where = f"{base!r} garbage completion #{i}"
        obs, reward, terminated, step_info = _check_step(base, completion, where)
        assert i > 0 or not step_info["verifier"]["passed"], f"{base!r}: the empty completion passed; the verifier " \
                                                             "accepts anything"
        if multi:
            _assert_no_leak(base, _text(obs), info, _reference_texts(base.problem), where)
            if terminated:
                _, info = base.reset(seed=seed)
