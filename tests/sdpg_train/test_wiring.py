"""Trainer-level wiring: one full update against a naive reimplementation of docs/algorithm.md written here,
resume with LR and β schedules, gating with zero-advantage groups, temperature ≠ 1, DDP's loss scale.

The naive side shares no code with the trainer's learner: it recomputes advantages from the rewards, runs
the model on each unpadded sequence with full logits, and writes the loss, the β schedule, gradient clipping
and the learning-rate schedule out by hand. Adam's ε is set to 1 so an update is ≈ lr·g (AdamW with a tiny ε
would only see the sign of g and hide a wrong loss scale).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from learner_fixtures import ParitySource

from sdpg_train.config import SDPGConfig
from sdpg_train.core.rollout import encode_prompt
from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm
from sdpg_train.training.trainer import SDPGTrainer

REPO = Path(__file__).resolve().parents[2]
# group 1 has equal rewards (A = 0 for all its samples: no policy gradient, no distillation when gated)
REWARDS = [[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.0, 1.0, 0.25, 0.0], [1.0, 0.0, 0.0, 0.0]]
WIRING = dict(loss="sdpg", beta=0.5, beta_warmup_steps=4, alpha=0.05, kl_mode="urkl", gate_positive=True,
              temperature=0.7, num_mini_batches=2, learning_rate=2e-3, adam_epsilon=1.0, weight_decay=0.01,
              warmup_steps=2, lr_scheduler_type="linear", max_grad_norm=0.05, max_steps=6, clip_low=0.2,
              clip_high=0.28, dual_clip_c=3.0, kl_clamp=20.0, log_ratio_clamp=20.0, max_context_length=200)


def wiring_cfg(tmp_path, **changes) -> SDPGConfig:
    base = dict(model_name_or_path=None, device="cpu", num_prompts_per_step=len(REWARDS), num_generations=4,
                output_dir=str(tmp_path / "run"), disable_tqdm=True, save_final=False, log_completions=False,
                **WIRING)
    return SDPGConfig(**{**base, **changes})


# ---------------------------------------------------------------------------- the naive reimplementation
def naive_advantages(rewards: torch.Tensor, g: int) -> torch.Tensor:
    r = rewards.view(-1, g).double()
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).flatten()


def naive_beta(k: int, c: SDPGConfig) -> float:  # β(k) = β_base · min(1, k / T_warm), k = training step
    return c.beta * (k / c.beta_warmup_steps if k < c.beta_warmup_steps else 1.0)


def naive_lr(u: int, c: SDPGConfig) -> float:  # u = 0-based optimiser update; linear warm-up then linear decay
    total = c.max_steps * c.num_mini_batches
    if u < c.warmup_steps:
        return c.learning_rate * (u + 1) / c.warmup_steps
    return c.learning_rate * max(0.0, 1.0 - (u - c.warmup_steps) / (total - c.warmup_steps))


def token_logprobs(model, prefix: list[int], completion: list[int], tau: float) -> torch.Tensor:
    """(T, V) log-softmax of (logits / τ) at the positions that predict ``completion`` (no padding)."""
    ids = torch.tensor([prefix + completion])
    logits = model(input_ids=ids).logits[0, len(prefix) - 1 : len(prefix) + len(completion) - 1]
    return torch.log_softmax(logits.double() / tau, -1)


def naive_step(model, tok, batch, step: int, c: SDPGConfig, first_update: int) -> None:
    """Train ``model`` in place on ``batch`` as docs/algorithm.md describes; ``first_update`` = updates so far."""
    adv = naive_advantages(batch.rewards, batch.group_size)
    beta = naive_beta(step, c)
    teacher_prompts = [encode_prompt(tok, c.teacher_template.format(prompt=p, context=ctx))
                       for p, ctx in zip(batch.prompts, batch.contexts)]
    with torch.no_grad():  # old policy = reference = the weights before this step's first update
        old = [token_logprobs(model, p, y, c.temperature) for p, y in zip(batch.prompt_ids, batch.completion_ids)]
    opt = naive_step.opt
    per = len(batch) // c.num_mini_batches
    for m in range(c.num_mini_batches):
        idx = range(m * per, (m + 1) * per)
        n_tokens = sum(len(batch.completion_ids[i]) for i in idx)
        total = 0.0
        for i in idx:
            y = torch.tensor(batch.completion_ids[i])
            lp_all = token_logprobs(model, batch.prompt_ids[i], batch.completion_ids[i], c.temperature)
            logp = lp_all.gather(1, y[:, None]).squeeze(1)
            old_logp = old[i].gather(1, y[:, None]).squeeze(1)
            a = float(adv[i])
            ratio = torch.exp(logp - old_logp)
            pg = torch.maximum(-a * ratio, -a * ratio.clamp(1 - c.clip_low, 1 + c.clip_high))
            if a < 0:
                pg = torch.minimum(pg, torch.full_like(pg, -a * c.dual_clip_c))
            loss = pg
            if a > 0 and beta > 0:  # the gate: strictly positive advantages only
                with torch.no_grad():  # live teacher: the current weights, stop-gradient
                    lq = token_logprobs(model, teacher_prompts[i], batch.completion_ids[i], c.temperature)
                kl = (lp_all.exp() * (lp_all - lq)).sum(-1)
                loss = loss + beta * kl.clamp(max=c.kl_clamp)
            log_w = (logp - old_logp).clamp(-c.log_ratio_clamp, c.log_ratio_clamp)  # reference = old here
            loss = loss + c.alpha * 0.5 * log_w**2
            total = total + loss.sum()
        (total / n_tokens).backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
        if norm > c.max_grad_norm:
            for g in grads:
                g.mul_(c.max_grad_norm / (float(norm) + 1e-6))
        for group in opt.param_groups:
            group["lr"] = naive_lr(first_update + m, c)
        opt.step()
        opt.zero_grad(set_to_none=True)


def naive_run(tok, batch, steps: list[int], c: SDPGConfig):
    model = tiny_causal_lm(seed=0).double()
    naive_step.opt = torch.optim.AdamW(model.parameters(), lr=c.learning_rate, betas=(c.adam_beta1, c.adam_beta2),
                                       eps=c.adam_epsilon, weight_decay=c.weight_decay)
    for n, k in enumerate(steps):
        naive_step(model, tok, batch, k, c, first_update=n * c.num_mini_batches)
    return model


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fused", [True, False])
def test_updates_match_a_naive_reimplementation_of_the_algorithm(tmp_path, make_fixed_batch, fused):
    tok = byte_tokenizer()
    batch = make_fixed_batch(tok, REWARDS, length=5)
    c = wiring_cfg(tmp_path, fused_head=fused)
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=[ParitySource()], args=c, processing_class=tok)
    start = {k: v.detach().double().clone() for k, v in trainer.model.named_parameters()}
    steps = [2, 3]  # inside the β warm-up (β(2) = 0.25, β(3) = 0.375): a step read off by one shows
    for k in steps:
        metrics = trainer.learn(batch, step=k)
    naive = naive_run(tok, batch, steps, c)
    adv = naive_advantages(batch.rewards, 4)
    assert metrics["distill/beta"] == pytest.approx(naive_beta(3, c))
    assert metrics["distill/teacher_frac"] == pytest.approx(float((adv > 0).double().mean()))  # A = 0 gated out
    assert metrics["train/learning_rate"] == pytest.approx(naive_lr(4, c))
    for name, p in naive.named_parameters():
        got = dict(trainer.model.named_parameters())[name].detach().double() - start[name]
        want = p.detach() - start[name]
        scale = float(want.abs().max())
        assert scale > 0, name
        bound = 2e-3 * scale + 5e-7 * start[name].abs()  # + a few fp32 ulps of the weight itself
        err = (got - want).abs()
        assert bool((err <= bound).all()), f"{name}: max error {float(err.max()):.3g}, update scale {scale:.3g}"


@pytest.mark.timeout(300)
def test_resume_with_lr_and_beta_schedules_gating_and_mini_batches_is_exact(tmp_path):
    changes = dict(model_name_or_path="tiny", max_completion_length=8, num_prompts_per_step=2, max_steps=4,
                   learning_rate=1e-3, adam_epsilon=1e-8, lr_scheduler_type="cosine", warmup_steps=3,
                   beta_warmup_steps=3, beta_decay_steps=2, max_context_length=48, max_grad_norm=1.0)
    full = SDPGTrainer(env=[ParitySource()], args=wiring_cfg(tmp_path / "full", **changes))
    full.train()
    half = wiring_cfg(tmp_path / "half", **changes)
    first = SDPGTrainer(env=[ParitySource()], args=half)
    for k in (1, 2):  # stop after 2 of the 4 steps (max_steps is T of both schedules, so it must stay 4)
        first.step(k)
        first.global_step = k
    first.save_checkpoint()
    resumed = SDPGTrainer(env=[ParitySource()], args=half)
    resumed.train(resume_from_checkpoint=True)
    for (k, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(a, b), k
    read = lambda d: [json.loads(x) for x in (d / "run" / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    rows_full, rows_half = read(tmp_path / "full"), read(tmp_path / "half")
    lrs, betas = [r["train/learning_rate"] for r in rows_full], [r["distill/beta"] for r in rows_full]
    assert len(set(lrs)) == 4 and len(set(betas)) >= 3  # both schedules really move
    assert any(r["distill/teacher_frac"] < 1 for r in rows_full)  # the gate closed on some samples
    strip = lambda r: {k: v for k, v in r.items() if not k.startswith("perf/")}  # noqa: E731
    assert [strip(r) for r in rows_full[2:]] == [strip(r) for r in rows_half]


DDP_WORKER = textwrap.dedent('''
    import sys, torch
    sys.path.insert(0, sys.argv[2])
    from learner_fixtures import fixed_batch, take
    from test_wiring import REWARDS, wiring_cfg
    from pathlib import Path
    from sdpg_train.training.distributed import cleanup
    from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm
    from sdpg_train.training.trainer import SDPGTrainer

    tok, out = byte_tokenizer(), Path(sys.argv[1])
    batch = fixed_batch(tok, REWARDS, length=5)
    cfg = wiring_cfg(out, num_prompts_per_step=2, num_mini_batches=1, max_grad_norm=0.0)
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=["sdpg/Arith-v0"], args=cfg, processing_class=tok)
    rank = trainer.dist.rank
    trainer.learn(take(batch, list(range(8 * rank, 8 * rank + 8))), step=2)  # rank r: groups 2r, 2r + 1
    torch.save(trainer.model.state_dict(), out / f"ddp_{rank}.pt")
    cleanup(trainer.dist)
''')


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_loss_scale_matches_one_process_on_the_union_of_the_batches(tmp_path, make_fixed_batch):
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tmp_path), str(Path(__file__).parent)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tok = byte_tokenizer()
    one = SDPGTrainer(tiny_causal_lm(seed=0), env=["sdpg/Arith-v0"], processing_class=tok,
                      args=wiring_cfg(tmp_path / "one", num_mini_batches=1, max_grad_norm=0.0))
    start = copy.deepcopy(one.model.state_dict())
    one.learn(make_fixed_batch(tok, REWARDS, length=5), step=2)
    r0, r1 = (torch.load(tmp_path / f"ddp_{r}.pt") for r in (0, 1))
    for k, v in one.model.state_dict().items():
        assert torch.equal(r0[k], r1[k]), k
        delta = v - start[k]
        if delta.abs().max() > 0:
            torch.testing.assert_close(r0[k] - start[k], delta, rtol=0, atol=1e-3 * float(delta.abs().max()))


def test_the_loss_gate_excludes_zero_advantages():
    from sdpg_train.methods.sdpg import sdpg_loss

    adv = torch.tensor([0.0, 1.0, -1.0, 0.0])
    logp = torch.zeros(4, requires_grad=True)
    _, stats = sdpg_loss(logp, logp.detach(), adv, torch.ones(4, dtype=torch.bool), kl_teacher=torch.full((4,), 2.0),
                         beta=0.5, gate_positive=True)
    assert stats["distill/gate_open_frac"] == 0.25 and stats["loss/distill_kl"] == pytest.approx(0.5 * 2.0 / 4)
