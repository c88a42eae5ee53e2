"""The CPU demo: warm start (teacher view identical to the trainer's), the report's helpers, the CLI's checks, and
the shortened demo end to end with every reported number recomputed from the eval samples files."""

from __future__ import annotations

import json
from dataclasses import replace

import gymnasium as gym
import pytest
import torch

import sdpg_envs  # noqa: F401  (registers the sdpg/* ids)
from sdpg_train.cli import main
from sdpg_train.core.rollout import EnvSource, collect_rollouts
from sdpg_train.core.teacher import build_teacher_view
from sdpg_train.demo.report import auto_threshold, moving_average, steps_to_threshold
from sdpg_train.demo.run import DEMO_TEACHER_TEMPLATE, DemoConfig, split_methods
from sdpg_train.training.sft import (
    IGNORE_INDEX,
    SFTConfig,
    TeacherFormat,
    TeacherViewEnv,
    collate,
    example_ids,
    supervised_warm_start,
)

FMT = TeacherFormat(template=DEMO_TEACHER_TEMPLATE, max_context_length=256)


def _envs(split: str = "train"):
    cfg = DemoConfig(output_dir="unused")
    return [gym.make("sdpg/Arith-v0", split=split, **cfg.arith_kwargs),
            gym.make("sdpg/PyFunc-v0", split=split, **cfg.pyfunc_kwargs)]


# ---------------------------------------------------------------------------- warm start
@pytest.mark.timeout(120)
def test_teacher_examples_equal_the_trainers_teacher_view(tiny_model, tokenizer):
    """The warm start's teacher-view prompt ids are token for token what the trainer builds for a rollout."""
    envs = _envs()
    try:
        for env in envs:
            batch = collect_rollouts(
                tiny_model, tokenizer, [EnvSource(env)], [1.0], step=1, num_prompts=3, group_size=2,
                gen={"max_completion_length": 4, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "stop_strings": []},
                generation_batch_size=8, max_prompt_length=512)
            view = build_teacher_view(tokenizer, batch, sources=["env"], template=FMT.template,
                                      max_context_length=FMT.max_context_length)
            for i, problem in enumerate(batch.problems):
                teacher_ids, completion = example_ids(tokenizer, env.unwrapped, problem, teacher=True, fmt=FMT)
                student_ids, _ = example_ids(tokenizer, env.unwrapped, problem, teacher=False, fmt=FMT)
                assert teacher_ids == view.prompt_ids[i]
                assert student_ids == batch.prompt_ids[i]
                assert len(teacher_ids) > len(student_ids)  # the context is really there
                assert completion[-1] == tokenizer.eos_token_id
                assert tokenizer.decode(completion[:-1]) == env.unwrapped.gold_completion(problem)
    finally:
        for env in envs:
            env.close()


def test_collate_masks_prompt_and_padding(tokenizer):
    examples = [([5, 6, 7], [8, 9, 1]), ([5], [10, 1])]
    batch = collate(examples, pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 1], [5, 10, 1, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]
    m = IGNORE_INDEX
    assert batch["labels"].tolist() == [[m, m, m, 8, 9, 1], [m, 10, 1, m, m, m]]


@pytest.mark.timeout(120)
def test_warm_start_lowers_the_completion_loss(tiny_model, tokenizer):
    envs = _envs()
    try:
        hist = supervised_warm_start(tiny_model, tokenizer, envs, SFTConfig(steps=25, batch_size=8, warmup_steps=2),
                                     FMT, progress=False)
    finally:
        for env in envs:
            env.close()
    losses = hist["losses"]
    assert len(losses) == 25 and hist["tokens"] > 0
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3
    assert all(torch.isfinite(p).all() for p in tiny_model.parameters())


def test_sft_config_rejects_bad_values():
    with pytest.raises(ValueError, match="context_fraction"):
        SFTConfig(context_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        SFTConfig(batch_size=0)


def test_teacher_view_env_shows_the_context_and_verifies_like_the_env(tokenizer):
    env = _envs("test")[1]
    try:
        view = TeacherViewEnv(env, tokenizer, FMT, env_id="sdpg/PyFunc-v0")
        problem = view.problem_at(3)
        gold = env.unwrapped.gold_completion(problem)
        assert env.unwrapped.prompt_for(problem) in view.prompt_for(problem)
        assert gold.strip() in view.prompt_for(problem)  # the reference solution is the privileged context
        assert "Reference solution" not in env.unwrapped.prompt_for(problem)
        ok, bad = view.verify_batch([problem, problem], [gold, "def f(x) return"])
        assert ok.passed and bad.status == "compile_error"
        assert view.spec.id == "sdpg/PyFunc-v0+teacher-view" and view.unwrapped is view
    finally:
        env.close()


# ---------------------------------------------------------------------------- report helpers
def test_steps_to_threshold_uses_the_trailing_moving_average():
    rates = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert moving_average(rates, 2) == pytest.approx([0.0, 0.1, 0.3, 0.5, 0.7, 0.9])
    assert steps_to_threshold(rates, 0.5, window=2) == 4
    assert steps_to_threshold(rates, 0.95, window=2) is None
    assert steps_to_threshold(rates, 0.0, window=2) == 2  # never before the first full window
    curves = {"a": [0.2, 0.2, 0.2, 0.2], "b": [0.2, 0.2, 0.6, 1.0]}  # starts 0.2 and 0.2; best final 0.8
    assert auto_threshold(curves, window=2) == pytest.approx(0.2 + 0.5 * (0.8 - 0.2))
    flat = {"a": [0.3, 0.3, 0.2], "b": [0.3, 0.3, 0.3]}  # nobody improves: the threshold is above the start
    assert auto_threshold(flat, window=2) == pytest.approx(0.3 + 0.02)
    assert steps_to_threshold(flat["b"], auto_threshold(flat, window=2), window=2) is None


def test_split_methods_keeps_supported_losses():
    cfg = DemoConfig(output_dir="x", methods=("sdpg", "grpo", "nope", "wide"),
                     method_overrides={"wide": {"loss": "sdpg", "beta": 0.5}})
    runnable, missing = split_methods(cfg)
    assert runnable == ["sdpg", "grpo", "wide"] and missing == ["nope"]


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--methods", "foo,bar"], "unknown method"),
    (["--methods", "grpo:alpha"], "is not key=value"),
    (["--seeds", "a,b"], "--seeds must be comma-separated integers"),
])
def test_cli_rejects_bad_input(tmp_path, capsys, argv, message):
    assert main(["demo", "--quick", "--output", str(tmp_path / "d"), *argv]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_demo_end_to_end_resumes_and_reproduces(tmp_path, capsys):
    """The demo leads with held-out curves; a rerun reuses every job; a fresh run in another folder on this
    machine gives the same numbers exactly (the reproducibility the report claims)."""
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--no-progress", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert printed.startswith("# SDPG CPU demo: held-out learning curves") and md.splitlines()[2].startswith("![")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    cfg = summary["config"]
    assert [r["method"] for r in summary["rows"]] == ["grpo", "sdpg"]
    for method, curves in summary["curves"].items():
        job = json.loads((out / "jobs" / f"{method}-s0" / "curve.json").read_text())
        assert curves[0] == job["curve"] and [p["step"] for p in job["curve"]] == [0, 3, 6]
        assert len(job["train"]) == cfg["steps"]
        row = next(r for r in summary["rows"] if r["method"] == method)
        assert row["final"] == job["curve"][-1]["scores"]["sdpg/Arith-v0"]["pass1"]
        assert f"| {method} | " in md
    stamps = {p: p.stat().st_mtime_ns for p in (out / "jobs").glob("*/curve.json")}
    assert main(["demo", "--quick", "--no-progress", "--output", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    other = tmp_path / "again"
    assert main(["demo", "--quick", "--no-progress", "--output", str(other)]) == 0
    assert json.loads((other / "summary.json").read_text())["rows"] == summary["rows"]


def test_warm_key_tracks_what_the_warm_start_depends_on():
    from sdpg_train.demo.run import warm_key

    cfg = DemoConfig(output_dir="x")
    assert warm_key(cfg) == warm_key(replace(cfg, seed=3, steps=5, learning_rate=1.0))  # RL settings: reuse
    assert warm_key(cfg) != warm_key(replace(cfg, sft=replace(cfg.sft, steps=7)))
    assert warm_key(cfg) != warm_key(replace(cfg, hidden_size=64))
    assert warm_key(cfg) != warm_key(replace(cfg, pyfunc_kwargs={**cfg.pyfunc_kwargs, "level": 2}))
