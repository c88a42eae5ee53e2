"""Benchmark: positions each view layout computes on real prompt/solution length distributions (issue 18).

For GSM8K, MATH (with its reference solution as the teacher's privileged context) and HumanEval, builds steps of
B prompts × G samples: student prompt = the chat-templated problem, teacher prompt = the same with the reference
solution as context (the trainer's default teacher template), completion lengths drawn from the dataset's
reference-solution lengths (the spread of real rollouts; each sample its own draw). Micro-batches are planned as
the trainer plans them; every view (student and teacher) is built in each layout and the positions the decoder
computes are counted (real tokens + padding; a shared prefix once per group).

Tokens are the byte tokenizer's (the tiny model's); a BPE tokenizer divides every length by about 4, which leaves
the ratios close. Prints one JSON line per dataset. Data from ``$SDPG_SHARED_DIR/data`` (default ``../shared``;
``--data`` overrides).

    python benchmarks/padding.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sdpg_train.config import DEFAULT_TEACHER_TEMPLATE  # noqa: E402
from sdpg_train.core.layout import ViewLayout  # noqa: E402
from sdpg_train.core.model_io import build_view, plan_micro_batches  # noqa: E402
from sdpg_train.core.rollout import encode_prompt  # noqa: E402
from sdpg_train.tiny import byte_tokenizer  # noqa: E402


def load(data: Path, name: str) -> list[tuple[str, str]]:
    """(problem text, reference solution) pairs."""
    if name == "gsm8k":
        rows = [json.loads(x) for x in (data / "gsm8k" / "test.jsonl").read_text().splitlines()]
        return [(r["question"], r["answer"]) for r in rows]
    if name == "math":
        rows = [json.loads(x) for x in (data / "math" / "test.jsonl").read_text().splitlines()]
        return [(r["problem"], r["solution"]) for r in rows]
    with gzip.open(data / "humaneval" / "HumanEval.jsonl.gz", "rt") as f:
        rows = [json.loads(x) for x in f]
    return [(r["prompt"], r["canonical_solution"]) for r in rows]


def measure(pairs, tok, prompts: int, group: int, steps: int, max_tokens: int, max_completion: int, seed: int):
    rng = random.Random(seed)
    sol_lens = [min(len(tok(s, add_special_tokens=False)["input_ids"]) + 1, max_completion) for _, s in pairs]
    layouts = {"padded": None, "shared": ViewLayout(share_prefix=True), "packed": ViewLayout(pack=True),
               "shared+packed": ViewLayout(share_prefix=True, pack=True)}
    totals = dict.fromkeys(layouts, 0)
    real = 0
    for _ in range(steps):
        picks = rng.sample(range(len(pairs)), prompts)
        s_pre, t_pre, comps, groups = [], [], [], []
        for b, k in enumerate(picks):
            prob, sol = pairs[k]
            sp = encode_prompt(tok, prob)
            tp = encode_prompt(tok, DEFAULT_TEACHER_TEMPLATE.format(prompt=prob, context=sol))
            for _ in range(group):
                s_pre.append(sp)
                t_pre.append(tp)
                comps.append([7] * rng.choice(sol_lens))
                groups.append(b)
        for mb in plan_micro_batches([len(p) for p in s_pre], [len(p) for p in t_pre], [len(c) for c in comps],
                                     max_tokens):
            for pre in (s_pre, t_pre):
                p, c, g = [pre[i] for i in mb], [comps[i] for i in mb], [groups[i] for i in mb]
                real += sum(map(len, p)) + sum(map(len, c))
                for name, lay in layouts.items():
                    view = build_view(p, c, 0) if lay is None else lay.build(p, c, g, 0)
                    totals[name] += view.padded_tokens
    # real_tokens counts every sequence's prefix (G times per group); a shared layout computes fewer positions
    out = {"real_tokens": real, **{f"{k}_positions": v for k, v in totals.items()}}
    out.update({f"{k}_padding_frac": round(1 - real / totals[k], 3) for k in ("padded", "packed")})
    out.update({f"{k}_vs_padded": round(v / totals["padded"], 3) for k, v in totals.items() if k != "padded"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = Path(os.environ.get("SDPG_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared"))
    ap.add_argument("--data", default=str(shared / "data"))
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=8192, help="max_tokens_per_micro_batch")
    ap.add_argument("--max-completion", type=int, default=2048, help="completion length cap (bytes)")
    a = ap.parse_args()
    tok = byte_tokenizer()
    for name in ("gsm8k", "math", "humaneval"):
        res = measure(load(Path(a.data), name), tok, a.prompts, a.group, a.steps, a.max_tokens, a.max_completion, 0)
        print(json.dumps({"dataset": name, "prompts": a.prompts, "group": a.group, "steps": a.steps,
                          "max_tokens_per_micro_batch": a.max_tokens, **res}))


if __name__ == "__main__":
    main()
