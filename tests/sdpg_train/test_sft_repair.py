"""Repair transcripts in the supervised warm start (``SFTConfig.repair_fraction``): a second-attempt example is,
token for token, the turn-2 row a multi-turn rollout builds for the same wrong attempt, in the student view and
in the teacher view; the first-turn stream is untouched when the fraction is 0."""

from __future__ import annotations

import random

import gymnasium as gym
import pytest

import sdpg_envs  # noqa: F401  (registers the sdpg/* ids)
from sdpg_train.core.multiturn_rollout import Episode, build_episode_teacher_view, episode_batch, run_episodes
from sdpg_train.core.rollout import encode_prompt
from sdpg_train.tiny import byte_tokenizer
from sdpg_train.training.sft import (
    SFTConfig,
    TeacherFormat,
    draw_batch,
    repair_example_ids,
    wrong_attempts,
)

TASK = {"level": 1, "prompt_template": "examples", "num_examples": 3, "context": "reference"}
FMT = TeacherFormat(template="{prompt}\n\n[Privileged information]\n{context}", max_context_length=256)


def repair_env(**kwargs):
    return gym.make("sdpg/PyFuncRepair-v0", split="train", max_attempts=2, **TASK, **kwargs).unwrapped


@pytest.mark.parametrize("kwargs", [{"feedback_template": "compact"}, {"observation": "chat"}])
def test_a_repair_example_is_the_rollouts_second_turn_in_both_views(kwargs):
    tok = byte_tokenizer()
    env = repair_env(**kwargs)
    attempts = wrong_attempts(env, random.Random(0), 6)
    assert len(attempts) == 6 and not any(a.result.passed for a in attempts)
    assert {a.result.status for a in attempts} >= {"wrong_answer"}
    for attempt in attempts[:3]:
        problem = attempt.problem
        prompt = env.prompt_for(problem)
        episodes = [Episode(0, problem, prompt, encode_prompt(tok, prompt))]
        gold = env.gold_completion(problem)
        script = iter([attempt.completion, gold])

        def generate(prefixes, script=script):
            return [(tok(next(script), add_special_tokens=False)["input_ids"] + [tok.eos_token_id], False)
                    for _ in prefixes]

        run_episodes(episodes, [env], tok, generate, chunk_size=1)
        turns = episodes[0].turns
        assert [t.result.passed for t in turns] == [False, True]  # the gold program repairs it
        prefix, completion = repair_example_ids(tok, env, attempt, teacher=False, fmt=FMT)
        assert prefix == turns[1].prefix_ids and completion == turns[1].completion_ids
        batch = episode_batch(episodes, ["env"], group_size=1)
        view = build_episode_teacher_view(tok, batch, sources=["env"], template=FMT.template,
                                          max_context_length=FMT.max_context_length)
        t_prefix, t_completion = repair_example_ids(tok, env, attempt, teacher=True, fmt=FMT)
        assert t_prefix == view.prompt_ids[1] and t_completion == completion
        assert "Reference solution" in tok.decode(t_prefix) and "Reference solution" not in tok.decode(prefix)


def test_repair_examples_come_only_from_repair_envs_and_fraction_zero_keeps_the_stream():
    tok = byte_tokenizer()
    repair = repair_env(feedback_template="compact")
    plain = gym.make("sdpg/PyFunc-v0", split="train", **TASK).unwrapped
    pool = wrong_attempts(repair, random.Random(1), 4)
    cfg = SFTConfig(batch_size=64, repair_fraction=1.0)
    micro = draw_batch(tok, [repair, plain], random.Random(2), cfg, FMT, [pool, None])
    feedback = [p for m in micro for p, _ in m if "# wrong_answer" in tok.decode(p)
                or "# compile_error" in tok.decode(p)]
    n = sum(len(m) for m in micro)
    assert n == 64 and 10 < len(feedback) < 54  # every draw of the repair env, none of the plain one
    zero = SFTConfig(batch_size=16, repair_fraction=0.0)
    with_pool = draw_batch(tok, [repair], random.Random(3), zero, FMT, [pool])
    without = draw_batch(tok, [repair], random.Random(3), zero, FMT)
    assert with_pool == without


def test_bad_repair_settings_are_refused():
    with pytest.raises(ValueError, match="repair_fraction"):
        SFTConfig(repair_fraction=1.5)
    with pytest.raises(ValueError, match="repair_pool"):
        SFTConfig(repair_pool=0)
