"""Registry: built-in ids, gym.make/spec/pprint, registering (and removing) a new id."""

from __future__ import annotations

import gymnasium as gym
import pytest

import sdpg_envs
from sdpg_envs import BUILTIN_ENVS, ListSource, Problem, ReasoningEnv, register_env, registered_ids

MATH_IDS = ["sdpg/Arith-v0", "sdpg/GSM8K-v0", "sdpg/MATH-v0", "sdpg/MATH500-v0"]


class _Exact:
    def __call__(self, problem, completion):
        ok = completion.strip() == problem.answer
        return sdpg_envs.VerifierResult(float(ok), "correct" if ok else "incorrect")

    def batch(self, problems, completions):
        return [self(p, c) for p, c in zip(problems, completions)]


def make_tiny_env(size: int = 3) -> ReasoningEnv:
    return ReasoningEnv(ListSource([Problem(f"t{i}", f"say {i}", str(i)) for i in range(size)]), _Exact())


@pytest.fixture
def temp_id():
    """Register a temporary id, then delete it (Gymnasium's own test pattern)."""
    env_id = "sdpgtest/Tiny-v0"
    register_env(env_id, f"{__name__}:make_tiny_env", size=4)
    yield env_id
    del gym.registry[env_id]


def test_builtin_math_ids_are_registered_with_string_entry_points():
    ids = registered_ids()
    assert set(MATH_IDS) <= set(ids)
    for env_id in MATH_IDS:
        spec = gym.spec(env_id)
        assert isinstance(spec.entry_point, str) and spec.entry_point.startswith("sdpg_envs.envs.math_env:")
        assert spec.max_episode_steps is None and spec.version == 0 and spec.namespace == "sdpg"
    assert [e.id for e in BUILTIN_ENVS][:4] == MATH_IDS


def test_make_passes_kwargs_and_pprint_lists_ids():
    env = gym.make("sdpg/Arith-v0", digits=1, num_ops=1, operators="+", prompt_template="terse", context="answer")
    obs, info = env.reset(seed=0)
    assert obs.startswith("Q: ") and obs.endswith("=? A:") and env.unwrapped.context == "answer"
    listing = gym.pprint_registry(disable_print=True)
    assert "===== sdpg =====" in listing and "Arith-v0" in listing and "MATH500-v0" in listing
    with pytest.raises(ValueError, match="unknown prompt_template"):
        gym.make("sdpg/Arith-v0", prompt_template="fancy")
    with pytest.raises(TypeError):
        gym.make("sdpg/Arith-v0", no_such_knob=3)


def test_register_new_id_make_and_cleanup(temp_id):
    assert temp_id in gym.registry and temp_id not in registered_ids() and temp_id in registered_ids("sdpgtest")
    env = gym.make(temp_id)
    assert env.unwrapped.num_problems == 4 and env.spec.kwargs == {"size": 4}
    register_env(temp_id, f"{__name__}:make_tiny_env", size=4)  # identical re-registration is a no-op
    with pytest.raises(ValueError, match="already registered"):
        register_env(temp_id, f"{__name__}:make_tiny_env", size=5)
    register_env(temp_id, f"{__name__}:make_tiny_env", overwrite=True, size=5)
    assert gym.make(temp_id).unwrapped.num_problems == 5


@pytest.mark.parametrize("bad", ["Tiny", "sdpg/Tiny", "sdpg/Tiny-v", "sdpg/Tiny v0-v0"])
def test_register_env_requires_versioned_ids(bad):
    with pytest.raises(ValueError, match="versioned"):
        register_env(bad, f"{__name__}:make_tiny_env")


def test_make_vec_sync_works():
    envs = gym.make_vec("sdpg/Arith-v0", num_envs=2, vectorization_mode="sync", digits=1)
    obs, info = envs.reset(seed=[1, 2])
    assert len(obs) == 2 and all(isinstance(o, str) for o in obs)
    envs.close()


@pytest.mark.timeout(60)
def test_custom_env_example_runs_and_passes_the_checker():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(root / "examples" / "custom_env.py")], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "check_reasoning_env: OK" in proc.stdout and "Feedback on the attempt (incorrect)" in proc.stdout
