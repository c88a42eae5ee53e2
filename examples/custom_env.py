"""Register a new task environment in a few lines, then check it with ``check_reasoning_env``.

Run: ``python examples/custom_env.py``. The recipe (also in docs/environments.md):
1. a task source: problems as a pure function of (seed, index), or a list loaded from a file;
2. a verifier: ``__call__(problem, completion) -> VerifierResult`` (+ ``batch``), with short feedback text;
3. a ``ReasoningEnv`` subclass (or factory) tying them together with a prompt template;
4. ``register_env("ns/Name-v0", "module:Factory")`` and ``check_reasoning_env(gym.make(...))``.
"""

from __future__ import annotations

import pickle
import re

import gymnasium as gym

from sdpg_envs import (
    Problem,
    ProceduralSource,
    PromptTemplate,
    ReasoningEnv,
    VerifierResult,
    check_reasoning_env,
    register_env,
)
from sdpg_envs.tasks.sources import problem_rng


def reverse_word_problem(seed: int | str, index: int) -> Problem:
    """1. The task: reverse a random word (pure function of seed and index)."""
    rng = problem_rng(seed, index)
    word = "".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(3, 8)))
    return Problem(f"reverse-{seed}-{index}", f"Reverse the word '{word}'.", answer=word[::-1])


class TagVerifier:
    """2. The verifier: the text inside the last <answer>...</answer> must equal the reference exactly."""

    def __call__(self, problem: Problem, completion: str) -> VerifierResult:
        found = re.findall(r"<answer>(.*?)</answer>", completion[-10_000:], flags=re.DOTALL)
        if not found:
            return VerifierResult(0.0, "unparsable", "no <answer>...</answer> tag found")
        guess = found[-1].strip()
        if guess == problem.answer:
            return VerifierResult(1.0, "correct")
        return VerifierResult(0.0, "incorrect", f"your answer {guess[:50]!r} is not the reversed word")

    def batch(self, problems, completions):
        return [self(p, c) for p, c in zip(problems, completions)]


def tagged_prompt(problem: Problem) -> str:
    return f"{problem.prompt} Put it inside <answer></answer>."


class ReverseEnv(ReasoningEnv):
    """3. The environment: a prompt template that asks for the tag, the source and the verifier. Module-level
    functions rather than lambdas, so the env pickles (async vector envs, Ray, multiprocessing)."""

    prompt_templates = {"default": PromptTemplate("default", tagged_prompt, answer_format="<answer>{answer}</answer>")}

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(ProceduralSource(reverse_word_problem, seed=seed, name="reverse"), TagVerifier(), **kwargs)


# 4. Register (string entry point: the module is imported only on gym.make) and check.
register_env("myproject/ReverseWord-v0", f"{__name__}:ReverseEnv", overwrite=True)

if __name__ == "__main__":
    env = gym.make("myproject/ReverseWord-v0", context="reference+feedback")
    check_reasoning_env(env)
    pickle.loads(pickle.dumps(env))  # picklable, as every sdpg env is
    obs, info = env.reset(seed=0)
    _, reward, _, _, info = env.step("<answer>olleh</answer>")
    print(f"prompt: {obs}\nreward: {reward}\nteacher context:\n{info['privileged_context']}")
    print("check_reasoning_env: OK")
