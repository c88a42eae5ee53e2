"""Code environments: check_reasoning_env for every code id, PyFunc generation, privileged-context templates."""

from __future__ import annotations

import gymnasium as gym
import pytest

import sdpg_envs
from sdpg_envs import check_reasoning_env
from sdpg_envs.tasks.pyfunc import FAMILIES, PyFuncConfig, pyfunc_problem, pyfunc_source
from sdpg_envs.verifiers.code import CodeVerifier

gym.register_envs(sdpg_envs)


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("env_id", "kwargs"), [
    ("sdpg/HumanEval-v0", {"n": 4}),
    ("sdpg/MBPP-v0", {"n": 4}),
    ("sdpg/PyFunc-v0", {}),
    ("sdpg/PyFunc-v0", {"prompt_template": "compact", "level": 3}),
])
def test_check_reasoning_env(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    try:
        check_reasoning_env(env)
    finally:
        env.close()


@pytest.mark.timeout(120)
def test_pyfunc_references_pass_at_every_level():
    problems = [pyfunc_source(PyFuncConfig(level=level), seed=3)[i] for level in (1, 2, 3) for i in range(12)]
    problems += [pyfunc_problem(0, 0, PyFuncConfig(families=(f.name,))) for f in FAMILIES]
    with CodeVerifier() as verifier:
        results = verifier.batch(problems, [p.solution for p in problems])
    assert [r.status for r in results] == ["passed"] * len(problems)
    assert all(len(p.solution) < 80 and len(p.metadata["compact"]) < 120 for p in problems)


def test_pyfunc_is_deterministic_and_configurable():
    a, b = pyfunc_problem("s", 5, PyFuncConfig(level=2)), pyfunc_problem("s", 5, PyFuncConfig(level=2))
    assert a == b and a.metadata["level"] == 2
    cfg = PyFuncConfig(level=1, num_examples=3, num_tests=7)
    p = pyfunc_problem("s", 1, cfg)
    assert p.metadata["tests"].count("assert f(") == 7 and p.prompt.count("f(") == 1 + 3
    assert pyfunc_source(seed=1, split="train")[0] != pyfunc_source(seed=1, split="test")[0]
    with pytest.raises(ValueError, match="level"):
        PyFuncConfig(level=4)
    with pytest.raises(ValueError, match="families"):
        PyFuncConfig(families=("nope",))


@pytest.mark.timeout(120)
def test_privileged_context_templates_and_seeding():
    env = gym.make("sdpg/PyFunc-v0", context="feedback", prompt_template="compact")
    obs1, _ = env.reset(seed=7)
    obs2, _ = env.reset(seed=7)
    assert obs1 == obs2 and obs1.startswith("f(x)=")
    _, reward, terminated, _, info = env.step("def f(x)\n  return x\n")
    assert reward == 0.0 and terminated and info["verifier"]["status"] == "compile_error"
    assert "SyntaxError" in info["privileged_context"] and "Reference solution" not in info["privileged_context"]
    assert info["privileged_context"] not in obs1
    env.close()
    env = gym.make("sdpg/PyFunc-v0", context="reference", prompt_template="compact")
    env.reset(seed=7)
    _, _, _, _, info = env.step("garbage")
    assert "def f(x):" in info["privileged_context"] and "Feedback" not in info["privileged_context"]
    env.close()
    env = gym.make("sdpg/PyFunc-v0", context="none")
    env.reset(seed=7)
    assert env.step("x")[4]["privileged_context"] == ""
    env.close()


@pytest.mark.timeout(120)
def test_examples_prompt_hides_the_function_and_the_reference_passes():
    env = gym.make("sdpg/PyFunc-v0", prompt_template="examples", num_examples=3, context="reference")
    obs, _ = env.reset(seed=3)
    problem = env.unwrapped.problem
    expr = problem.solution.splitlines()[1].split("return ")[1]
    assert obs == problem.metadata["examples"] and obs.count("f(") == 3 and expr.replace(" ", "") not in obs
    _, reward, _, _, info = env.step(env.unwrapped.gold_completion(problem))
    assert reward == 1.0 and expr in info["privileged_context"]
    env.close()
    with pytest.raises(ValueError, match="metadata\\['examples'\\]"):
        gym.make("sdpg/MBPP-v0", prompt_template="examples", n=1).reset(seed=0)
