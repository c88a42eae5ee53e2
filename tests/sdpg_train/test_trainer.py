"""End-to-end SDPGTrainer runs with the tiny model on sdpg/Arith-v0 (CPU, a few steps each)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import sdpg_envs  # noqa: F401
from sdpg_envs.types import Problem, VerifierResult
from sdpg_train.config import SDPGConfig
from sdpg_train.training.trainer import SDPGTrainer


class ParityTask:
    """A tiny TaskSource (the trainer's extension protocol): reward 1 when the completion has even length.

    Random tiny models never solve arithmetic, so this gives the policy-gradient term non-zero advantages.
    """

    name = "test/Parity-v0"

    def sample(self, seed: int) -> Problem:
        return Problem(f"parity-{seed % 97}", f"Say something of even length #{seed % 97}", answer="even")

    def prompt(self, problem: Problem) -> str:
        return problem.prompt

    def score(self, problems, completions):
        return [VerifierResult(float(len(c) % 2 == 0), "correct" if len(c) % 2 == 0 else "incorrect",
                               f"length {len(c)}") for c in completions]

    def context(self, problem: Problem, result: VerifierResult) -> str:
        return f"Answer with an even number of characters. Last attempt: {result.feedback}"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_cfg(tmp_path, name="run", **changes) -> SDPGConfig:
    base = dict(model_name_or_path="tiny", device="cpu", num_prompts_per_step=2, num_generations=4,
                max_completion_length=10, max_steps=3, learning_rate=1e-3, beta=0.5, alpha=0.01,
                max_context_length=48, output_dir=str(tmp_path / name), disable_tqdm=True, save_final=False)
    return SDPGConfig(**{**base, **changes})


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.timeout(180)
def test_three_steps_change_every_parameter_and_log_everything(tmp_path, tiny_model, tokenizer):
    before = {k: v.clone() for k, v in tiny_model.named_parameters()}
    cfg = tiny_cfg(tmp_path, teacher_model_kind="base")
    trainer = SDPGTrainer(tiny_model, env=gym.make("sdpg/Arith-v0"), args=cfg, processing_class=tokenizer)
    trainer.train()
    unchanged = [k for k, v in trainer.model.named_parameters() if torch.equal(v, before[k])]
    assert not unchanged, f"parameters not updated: {unchanged}"
    for k, v in trainer.teacher.lm.named_parameters():  # the frozen teacher: no gradient, unchanged
        assert v.grad is None and torch.equal(v, before[k])
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("reward", "frac_reward_zero_std", "loss/total", "loss/policy", "loss/distill_kl", "loss/ref_kl",
                "distill/kl", "distill/teacher_entropy", "distill/context_len", "entropy", "clip_ratio/low",
                "completions/mean_length", "completions/clipped_ratio", "train/grad_norm", "perf/tokens_per_s",
                "perf/teacher_forward_s", "perf/peak_mem_mb", "kl", "ref/log_ratio"):
        assert all(r.get(key) is not None and math.isfinite(r[key]) for r in rows), key
    assert any(k.startswith("status/") for k in rows[0])
    docs = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    undocumented = [k for k in rows[0] if k != "step" and f"`{k}`" not in docs and not k.startswith("status/")]
    assert not undocumented and "`status/<status>`" in docs, f"metrics missing from docs/training.md: {undocumented}"
    assert rows[0]["distill/kl"] > 0 and rows[0]["ratio/max"] == 1.0  # on-policy first update: ratio exactly 1
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert len(samples) == 3 * cfg.num_completions_to_log and "Reference" in samples[0]["privileged_context"]


@pytest.mark.timeout(240)
def test_resume_is_bitwise_exact(tmp_path):
    full = SDPGTrainer(args=tiny_cfg(tmp_path, "full", max_steps=4, teacher_model_kind="ema"))
    full.train()
    half = tiny_cfg(tmp_path, "half", max_steps=4, save_steps=2, teacher_model_kind="ema")
    first = SDPGTrainer(args=half.replace(max_steps=4))
    first.args = half.replace(max_steps=2)  # stop after 2 steps, same schedules (built from max_steps=4)
    first.train()
    assert (tmp_path / "half" / "checkpoint-2" / "teacher_ema.safetensors").is_file()
    resumed = SDPGTrainer(args=half)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.global_step == 4
    for (k, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(a, b), k
    for a, b in zip(full.teacher.parameters(), resumed.teacher.parameters()):
        assert torch.equal(a, b)
    rows_full = read_jsonl(tmp_path / "full" / "metrics.jsonl")
    rows_half = read_jsonl(tmp_path / "half" / "metrics.jsonl")
    assert [r["step"] for r in rows_half] == [1, 2, 3, 4]
    strip = lambda r: {k: v for k, v in r.items() if not k.startswith("perf/")}  # noqa: E731
    assert [strip(r) for r in rows_full] == [strip(r) for r in rows_half]


@pytest.mark.timeout(180)
def test_loss_normalised_by_global_token_count(tmp_path):
    """The same step split into many micro-batches gives the same loss and gradient norm (one layout for both: the
    step-1 KL is ~1e-4, so fp32 rounding differences between layouts show at 1e-4 relative)."""
    one = SDPGTrainer(args=tiny_cfg(tmp_path, "one", max_steps=1, share_prefix=False)).train()
    many = SDPGTrainer(args=tiny_cfg(tmp_path, "many", max_steps=1, max_tokens_per_micro_batch=64,
                                     share_prefix=False)).train()
    assert one["train/micro_batches"] == 1 and many["train/micro_batches"] >= 4
    assert math.isclose(one["loss/total"], many["loss/total"], rel_tol=1e-4, abs_tol=1e-9)
    assert math.isclose(one["train/grad_norm"], many["train/grad_norm"], rel_tol=1e-4)


@pytest.mark.timeout(180)
def test_grpo_skips_the_teacher_and_mini_batches_go_off_policy(tmp_path):
    cfg = tiny_cfg(tmp_path, loss="grpo", num_mini_batches=2, max_steps=2, alpha=0.0)
    trainer = SDPGTrainer(env=[ParityTask()], args=cfg)
    m = trainer.train()
    assert trainer.teacher is None and trainer.ref is None and m["reward_std"] > 0
    assert "distill/kl" not in m and m["distill/beta"] == 0.0 and m["loss/distill_kl"] == 0.0
    assert m["train/micro_batches"] == 2  # one per mini-batch (update)
    assert m["ratio/max"] != 1.0  # the second update of a step is off-policy w.r.t. the old log-probs


@pytest.mark.timeout(120)
def test_non_finite_gradients_skip_the_update(tmp_path):
    trainer = SDPGTrainer(args=tiny_cfg(tmp_path, max_steps=1))
    before = {k: v.clone() for k, v in trainer.model.named_parameters()}
    p = next(trainer.model.parameters())
    p.register_hook(lambda g: g * float("nan"))
    m = trainer.train()
    assert m["train/skipped_updates"] == 1.0
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.named_parameters())


@pytest.mark.timeout(120)
def test_trl_style_reward_funcs_and_dataset(tmp_path):
    from sdpg_envs import as_reward_func, to_dataset

    def short_bonus(prompts, completions, answer, **kwargs):  # dataset columns arrive as keyword lists
        assert len(answer) == len(completions)
        return [0.5 if len(c) < 5 else None for c in completions]

    data = to_dataset("sdpg/Arith-v0", n=20)
    trainer = SDPGTrainer("tiny", reward_funcs=[as_reward_func("sdpg/Arith-v0"), short_bonus], train_dataset=data,
                          args=tiny_cfg(tmp_path, max_steps=1, context_sources=["env", "reference"]))
    m = trainer.train()
    names = sorted(k for k in m if k.startswith("rewards/"))
    assert len(names) == 2 and "rewards/short_bonus/mean" in names
    assert m["reward"] == pytest.approx(sum(m[k] for k in names))
    assert m["distill/context_empty_frac"] == 0.0  # privileged_context column + the reference answer
    with pytest.raises(ValueError, match="go together"):
        SDPGTrainer("tiny", reward_funcs=short_bonus, args=tiny_cfg(tmp_path))


@pytest.mark.timeout(120)
def test_gated_samples_skip_the_teacher_without_changing_active_kl(tmp_path):
    """With gate_positive, samples with A <= 0 get no teacher view; the KL of the others is unchanged."""
    from sdpg_train.core.head import sdpg_head
    from sdpg_train.core.model_io import plan_step
    from sdpg_train.core.teacher import build_teacher_view

    trainer = SDPGTrainer(env=[ParityTask()], args=tiny_cfg(tmp_path, gate_positive=True, max_steps=1))
    batch = trainer._rollout(1)
    active = [i % 3 != 0 for i in range(len(batch))]
    kw = dict(sources=["env"], template=trainer.args.teacher_template, max_context_length=48)
    views = [build_teacher_view(trainer.tokenizer, batch, active=a, **kw) for a in (active, None)]
    kls = []
    for view in views:
        (mb,) = plan_step(batch, view.prompt_ids, torch.zeros(len(batch)), num_mini_batches=1,
                          max_tokens=10**6, pad_id=trainer.pad_id, device="cpu")[0]
        with torch.no_grad():
            h = trainer.policy(**mb.student.inputs())
            out = sdpg_head(h, trainer.policy.lm_head_weight, mb.student.targets,
                            teacher_hidden=trainer._teacher_hidden(mb, h))
        kls.append(out.kl_teacher)
    rows = torch.repeat_interleave(torch.tensor(active), batch.completion_lengths)
    torch.testing.assert_close(kls[0][rows], kls[1][rows], atol=1e-6, rtol=1e-5)
    assert kls[0][~rows].abs().max() < 1e-6 and kls[1][~rows].max() > 1e-4
    m = trainer.train()
    assert m["distill/teacher_frac"] < 1.0 and math.isfinite(m["loss/total"])


def test_report_to_backends_are_lazy_and_explain_missing_packages(tmp_path):
    from sdpg_train.training.logging import make_logger

    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install tensorboard"):
            make_logger(["tensorboard"], tmp_path, run_name="r", project="p", config={})
    else:
        logger = make_logger(["tensorboard"], tmp_path, run_name="r", project="p", config={})
        logger.log({"reward": 1.0}, step=1)
        logger.close()
        assert list((tmp_path / "tensorboard").iterdir())
    logger = make_logger(["none"], tmp_path / "n", run_name="r", project="p", config={})
    logger.log({"reward": float("nan"), "x": 2}, step=3)
    logger.close()
    assert read_jsonl(tmp_path / "n" / "metrics.jsonl") == [{"step": 3, "reward": None, "x": 2}]
    other_rank = make_logger(["jsonl"], tmp_path / "r1", run_name="r", project="p", config={}, rank=1)
    assert type(other_rank).__name__ == "NullLogger" and not (tmp_path / "r1").exists()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("changes", [dict(loss="sdpg", gate_positive=True), dict(loss="sdpg", full_ref_kl=True),
                                     dict(loss="grpo"), dict(loss="rlsd", alpha=0.0)], ids=lambda c: str(c))
def test_fused_head_matches_the_two_pass_head(tmp_path, monkeypatch, changes):
    """``fused_head`` (gradient formed inside the head's forward) == separate head + loss: same gradients and
    parameters after one step (≤ 1e-6 relative) and the same metrics, over several micro-batches and head chunks."""
    import sdpg_train.training.trainer as trainer_mod

    calls = []
    real = trainer_mod.sdpg_head_loss
    monkeypatch.setattr(trainer_mod, "sdpg_head_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    runs = {}
    for fused in (True, False):
        calls.clear()
        cfg = tiny_cfg(tmp_path, f"fused{fused}", max_steps=1, fused_head=fused, head_chunk_size=7,
                       max_tokens_per_micro_batch=200, max_completion_length=16, **changes)
        trainer = SDPGTrainer(env=[ParityTask()], args=cfg)
        names = {id(p): k for k, p in trainer.model.named_parameters()}
        grads = {}
        trainer.optimizer.register_step_pre_hook(lambda opt, *_, names=names, grads=grads: grads.update(
            {names[id(p)]: p.grad.clone() for g in opt.param_groups for p in g["params"] if id(p) in names}))
        before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        metrics = trainer.train()
        after = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        runs[fused] = (before, after, grads, metrics)
        assert bool(calls) == fused  # the fused run went through sdpg_head_loss, the other did not
    (b1, p1, g1, m1), (b0, p0, g0, m0) = runs[True], runs[False]
    assert m1["train/micro_batches"] >= 2 and m1["reward_std"] > 0 and g1.keys() == p1.keys()
    flat = lambda d: torch.cat([t.flatten() for t in d.values()])  # noqa: E731
    assert float((flat(p1) - flat(p0)).norm() / flat(p0).norm()) <= 1e-6  # same parameters, ≤ 1e-6 relative
    for name in p1:
        assert torch.equal(b1[name], b0[name])
        assert float((g1[name] - g0[name]).norm()) <= 1e-6 * float(g0[name].norm()), name
        step1, step0 = p1[name] - b1[name], p0[name] - b0[name]  # Adam ~ sign(g): exposes any gradient drift
        assert float((step1 - step0).norm()) <= 1e-3 * float(step0.norm()), name
        assert not torch.equal(p1[name], b1[name]), name  # the step changed every parameter
    assert m1.keys() == m0.keys()
    for key in m1:
        if not key.startswith("perf/"):
            assert math.isclose(m1[key], m0[key], rel_tol=1e-5, abs_tol=1e-8), key
