"""Two measurements behind docs/results.md's "Why nothing learned", from a warm start of benchmarks/learning.py.

* ``alignment``: on one GRPO rollout batch, the trainer's per-token log-probs against an independent plain
  forward of prompt + completion (max abs difference), whether every token carries its own sample's group
  advantage, and what one update does to the sequence log-probability of samples with A > 0, A < 0 and A = 0.
* ``cold-start``: Adam's first update. On a fixed set of training problems, the pass rate (8 samples each) before
  and after ONE optimiser update at each learning rate, with and without the default learning-rate warm-up.

    python benchmarks/learning.py --quick --output runs/learning-quick       # makes runs/learning-quick/warmstart
    python benchmarks/learning_diagnosis.py --warm runs/learning-quick/warmstart

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sdpg_train.demo.learning import ARITH_ID, LearningConfig, load_model, make_env

ARITH = LearningConfig(output_dir="unused").envs[ARITH_ID]


def _trainer(warm: Path, **fields):
    from sdpg_train.config import SDPGConfig
    from sdpg_train.training.trainer import SDPGTrainer

    model, tok = load_model(warm)
    base = dict(device="cpu", loss="grpo", num_prompts_per_step=32, num_generations=8, max_completion_length=16,
                generation_batch_size=256, alpha=0.0, max_steps=10, seed=0, output_dir="/tmp/sdpg-diagnosis",
                report_to=[], disable_tqdm=True, save_steps=0, save_final=False, num_completions_to_log=0)
    base.update(fields)
    return SDPGTrainer(model, env=make_env(ARITH_ID, ARITH, "train"), args=SDPGConfig(**base), processing_class=tok)


@torch.no_grad()
def sequence_logps(model, batch) -> torch.Tensor:
    """(N,) Σ_t log p(y_t) of every sample by a plain forward of prompt ++ completion (no padding, no head)."""
    was = model.training
    model.eval()
    out = []
    for p, c in zip(batch.prompt_ids, batch.completion_ids):
        logits = model(input_ids=torch.tensor([p + c])).logits[0].float()  # (P + T, V)
        lp = torch.log_softmax(logits[len(p) - 1 : -1], -1).gather(1, torch.tensor(c)[:, None])  # (T, 1)
        out.append(float(lp.sum()))
    model.train(was)
    return torch.tensor(out)


def alignment(warm: Path) -> dict:
    from sdpg_train.core.advantages import group_advantages
    from sdpg_train.core.model_io import plan_step, sampled_logprobs

    tr = _trainer(warm, learning_rate=2e-4, warmup_steps=0)
    batch = tr._rollout(1)
    adv, _ = group_advantages(batch.rewards, batch.group_size)
    minis = plan_step(batch, None, adv, num_mini_batches=1, max_tokens=tr.args.max_tokens_per_micro_batch,
                      pad_id=tr.pad_id, device="cpu")
    before = sequence_logps(tr.model, batch)
    max_diff, adv_ok = 0.0, True
    for mb in minis[0]:
        lp = sampled_logprobs(tr.policy, mb.student, **tr._head_kw).logp  # (Ntok,)
        tm = mb.student.token_mask  # (n, T)
        per_tok = torch.zeros(tm.shape)
        per_tok[tm] = lp.float()
        max_diff = max(max_diff, float((per_tok.sum(1) - before[mb.index]).abs().max()))
        a_tok = torch.zeros(tm.shape)
        a_tok[tm] = mb.advantages.float()
        adv_ok &= all(bool(torch.all(a_tok[r][tm[r]] == adv[i])) for r, i in enumerate(mb.index))
    tr.learn(batch, 1)
    delta = sequence_logps(tr.model, batch) - before
    mean = lambda m: float(delta[m].mean()) if m.any() else None  # noqa: E731
    return {"check": "alignment", "max_abs_logp_diff": max_diff, "advantages_aligned": adv_ok,
            "dlogp_pos": mean(adv > 0), "dlogp_neg": mean(adv < 0), "dlogp_zero": mean(adv == 0)}


def fixed_set_pass_rate(tr, problems, samples: int = 8, seed: int = 0) -> float:
    from sdpg_train.evaluation.generation import generate_completions

    env = tr.sources[0].env
    outs = generate_completions(tr.model, tr.tokenizer, [env.prompt_for(p) for p in problems], n=samples,
                                temperature=1.0, max_new_tokens=16, batch_size=256, seed=seed)
    res = env.verify_batch([p for p in problems for _ in range(samples)], [c for cs in outs for c in cs])
    return sum(r.score for r in res) / len(res)


def cold_start(warm: Path, lrs: list[float]) -> list[dict]:
    rows = []
    for lr in lrs:
        for warmup in (0, 10):
            tr = _trainer(warm, learning_rate=lr, warmup_steps=warmup)
            batch = tr._rollout(1)
            before = fixed_set_pass_rate(tr, batch.problems[:: batch.group_size])
            tr.learn(batch, 1)
            after = fixed_set_pass_rate(tr, batch.problems[:: batch.group_size])
            rows.append({"check": "cold-start", "lr": lr, "warmup_steps": warmup, "pass_before": before,
                         "pass_after_one_update": after})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warm", type=Path, required=True, help="a warm-start folder (benchmarks/learning.py output)")
    p.add_argument("--lrs", default="3e-4,1e-3,3e-3")
    a = p.parse_args(argv)
    if not (a.warm / "config.json").is_file():
        print(f"learning_diagnosis: {a.warm} holds no saved model (run benchmarks/learning.py first)",
              file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    print(json.dumps(alignment(a.warm)), flush=True)
    for row in cold_start(a.warm, [float(x) for x in a.lrs.split(",")]):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
