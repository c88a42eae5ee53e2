"""TRL interop without TRL: env -> datasets.Dataset, env verifier -> reward function (pure function calls)."""

from __future__ import annotations

import pytest

from sdpg_envs import ListSource, Problem, ReasoningEnv, VerifierResult, as_reward_func, registered_ids, to_dataset
from sdpg_envs.adapters import completion_text


class ExactVerifier:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, problem, completion):
        ok = completion.strip() == problem.answer
        return VerifierResult(float(ok), "correct" if ok else "incorrect", "" if ok else f"{completion!r} is wrong")

    def batch(self, problems, completions):
        self.batches.append(len(problems))
        return [self(p, c) for p, c in zip(problems, completions)]


@pytest.fixture
def env() -> ReasoningEnv:
    problems = [Problem(f"p{i}", f"What is {i}*3?", answer=str(3 * i), solution=f"{i}*3={3 * i}") for i in range(6)]
    return ReasoningEnv(ListSource(problems), ExactVerifier())


def test_to_dataset_columns_plain_and_chat(env):
    ds = to_dataset(env, n=4)
    assert ds.column_names == ["prompt", "answer", "privileged_context", "problem_index", "problem_id"]
    assert len(ds) == 4 and ds[2]["prompt"] == "What is 2*3?" and ds[2]["answer"] == "6"
    assert ds[2]["privileged_context"] == "Reference solution:\n2*3=6\n\nReference answer: 6"
    assert ds[2]["problem_index"] == 2 and ds[2]["problem_id"].startswith("p2#")
    chat = to_dataset(env, chat=True)
    assert len(chat) == 6 and chat[1]["prompt"] == [{"role": "user", "content": "What is 1*3?"}]


def test_to_dataset_from_id_and_procedural_needs_n():
    ds = to_dataset("sdpg/Arith-v0", split="test", n=5, digits=1, prompt_template="terse")
    assert len(ds) == 5 and all(p.startswith("Q: ") for p in ds["prompt"])
    assert all(c.startswith("Reference solution:") for c in ds["privileged_context"])
    with pytest.raises(ValueError, match="pass n="):
        to_dataset("sdpg/Arith-v0")
    with pytest.raises(ValueError, match="only apply when passing an env id"):
        to_dataset(ReasoningEnv(ListSource([Problem("a", "q", "1")]), ExactVerifier()), split="test")


def test_completion_text_plain_and_chat():
    assert completion_text("42") == "42"
    assert completion_text([{"role": "assistant", "content": "42"}]) == "42"
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "4"}, {"text": "2"}]}]) == "42"
    with pytest.raises(TypeError):
        completion_text(42)


def test_reward_func_scores_batch_and_logs(env):
    fn = as_reward_func(env)
    ds = to_dataset(env)
    rows = [ds[i] for i in (1, 1, 4, 5)]
    columns = {k: [r[k] for r in rows] for k in ("answer", "problem_index", "problem_id", "privileged_context")}
    extra, metrics = {}, {}
    rewards = fn(
        prompts=[r["prompt"] for r in rows],
        completions=["3", [{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "12"}], "15"],
        trainer_state=object(),
        log_extra=lambda col, vals: extra.setdefault(col, vals),
        log_metric=lambda name, value: metrics.setdefault(name, value),
        **columns,
    )
    assert rewards == [1.0, 0.0, 1.0, 1.0]
    assert env.verifier.batches[-1] == 4, "one batch call for the whole group"
    assert extra["status"] == ["correct", "incorrect", "correct", "correct"]
    assert extra["feedback"][1] == "'4' is wrong"
    assert metrics == {"reasoningenv/pass_rate": 0.75}
    assert fn.__name__ == "reasoningenv"


def test_reward_func_rebuilds_from_answer_and_skips_unusable_rows(env):
    fn = as_reward_func(env)
    rewards = fn(prompts=["a", "b", "c", "d"], completions=["7", "7", "9", "5"],
                 answer=["7", None, "9", "5"], problem_index=[None, None, 99, 1], problem_id=[None, None, "x", "zz"])
    # row 0: answer only; row 1: nothing to check against -> None; row 2: index out of range -> answer;
    # row 3: index 1 but the id disagrees (different env config) -> rebuilt from the answer column.
    assert rewards == [1.0, None, 1.0, 1.0]
    with pytest.raises(ValueError, match="completions"):
        fn(prompts=["a"])


def test_reward_func_is_not_fooled_by_a_dataset_made_with_other_env_kwargs():
    ds = to_dataset("sdpg/Arith-v0", n=4, digits=4)  # same ids and indices as the default env, other problems
    cols = {k: ds[k] for k in ds.column_names}
    gold = [f"\\boxed{{{a}}}" for a in ds["answer"]]
    assert as_reward_func("sdpg/Arith-v0")(completions=gold, **cols) == [1.0] * 4  # rebuilt from the answers
    assert as_reward_func("sdpg/Arith-v0", digits=4)(completions=gold, **cols) == [1.0] * 4
    legacy = {**cols, "problem_id": [i.split("#")[0] for i in ds["problem_id"]]}  # ids from older versions
    assert as_reward_func("sdpg/Arith-v0", digits=4)(completions=gold, **legacy) == [1.0] * 4


def test_reward_func_from_registered_id_uses_real_verifier():
    fn = as_reward_func("sdpg/Arith-v0", split="test", digits=1, prompt_template="terse")
    assert fn.__name__ == "sdpg_arith_v0"
    ds = to_dataset("sdpg/Arith-v0", split="test", n=3, digits=1, prompt_template="terse")
    gold = [f" {a}" for a in ds["answer"]]
    wrong = [f" {int(a) + 1}" for a in ds["answer"]]
    cols = {"answer": ds["answer"], "problem_index": ds["problem_index"], "problem_id": ds["problem_id"]}
    assert fn(prompts=ds["prompt"], completions=gold, **cols) == [1.0, 1.0, 1.0]
    assert fn(prompts=ds["prompt"], completions=wrong, **cols) == [0.0, 0.0, 0.0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env_id", registered_ids())
def test_every_registered_id_exports_a_dataset_and_a_reward(env_id):
    import gymnasium as gym

    n = 3
    ds = to_dataset(env_id, n=n, chat=True)
    required = {"prompt", "answer", "privileged_context", "problem_index", "problem_id"}
    assert len(ds) == n and required <= set(ds.column_names)
    assert all(m[0]["role"] == "user" and m[0]["content"] for m in ds["prompt"])
    env = gym.make(env_id).unwrapped
    golds = [[{"role": "assistant", "content": env.gold_completion(env.problem_at(i))}] for i in range(n)]
    columns = {k: ds[k] for k in ds.column_names if k != "prompt"}
    fn = as_reward_func(env_id)
    assert fn(prompts=ds["prompt"], completions=golds, **columns) == [1.0] * n
    assert fn(prompts=ds["prompt"], completions=[""] * n, **columns) == [0.0] * n
