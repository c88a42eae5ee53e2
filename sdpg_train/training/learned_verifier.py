"""A learned scalar verifier: an MLP on pooled final hidden states, trained from rule-verifier labels.

For tasks without a programmatic checker: train the head where a rule verifier exists (or on labelled data), then
use it as the reward of any env through :class:`LearnedRewardSource` (a trainer ``TaskSource``). Features are the
frozen featuriser model's final hidden states of ``prompt ++ completion``: the mean over completion tokens
concatenated with the last token's state (2H); the head is LayerNorm → Linear → GELU → Linear → logit.

Training data (:func:`candidate_completions`): per problem, a correct completion built from the reference, a
wrong-answer completion and an unformatted one (or any candidates you pass), labelled by the env's rule verifier
(score ≥ 0.5 → 1). Held-out agreement with the rule verifier is reported as accuracy and ROC AUC.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sdpg_envs.types import Problem, VerifierResult

__all__ = ["VerifierHead", "featurize", "candidate_completions", "collect_examples", "train_verifier", "roc_auc",
           "LearnedVerifier", "LearnedRewardSource"]


class VerifierHead(nn.Module):
    """(N, F) features -> (N,) logits."""

    def __init__(self, in_features: int, width: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(in_features), nn.Linear(in_features, width), nn.GELU(),
                                 nn.Linear(width, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.float()).squeeze(-1)


@torch.no_grad()
def featurize(lm: nn.Module, tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], *,
              batch_size: int = 16, max_length: int = 512) -> Tensor:
    """(N, 2H) features: mean of completion-token final hidden states ++ the last token's state."""
    device = next(lm.parameters()).device
    feats = []
    for s in range(0, len(prompts), batch_size):
        ids, spans = [], []
        for p, c in zip(prompts[s : s + batch_size], completions[s : s + batch_size]):
            pi = tokenizer(p, add_special_tokens=False)["input_ids"]
            ci = tokenizer(c, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id or 0]
            row = (pi + ci)[-max_length:]
            ids.append(row)
            spans.append(min(len(ci), len(row)))
        width = max(len(r) for r in ids)
        x = torch.zeros(len(ids), width, dtype=torch.long)  # (n, L) right-padded
        att = torch.zeros(len(ids), width, dtype=torch.long)
        comp = torch.zeros(len(ids), width, dtype=torch.bool)  # completion tokens
        for i, (r, k) in enumerate(zip(ids, spans)):
            x[i, : len(r)], att[i, : len(r)] = torch.tensor(r), 1
            comp[i, len(r) - k : len(r)] = True
        out = lm.base_model(input_ids=x.to(device), attention_mask=att.to(device), use_cache=False)
        h = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]).float()  # (n, L, H)
        comp, last = comp.to(device), att.sum(1).to(device) - 1
        mean = (h * comp[..., None]).sum(1) / comp.sum(1, keepdim=True).clamp_min(1)  # (n, H)
        feats.append(torch.cat([mean, h[torch.arange(len(ids), device=device), last]], -1))  # (n, 2H)
    return torch.cat(feats)


def candidate_completions(problem: Problem, rng: random.Random) -> list[str]:
    """A correct, a wrong-answer and an unformatted completion for a problem with a reference answer/solution."""
    if problem.answer is not None:
        ans = str(problem.answer)
        try:
            wrong = str(int(ans) + rng.choice([-10, -2, -1, 1, 2, 10]))
        except ValueError:
            wrong = ans + "0"
        sol = f"{problem.solution}. " if problem.solution else ""
        return [f"{sol}\\boxed{{{ans}}}", f"{sol.replace(ans, wrong)}\\boxed{{{wrong}}}", f"I think it is {wrong}"]
    if problem.solution:
        code = problem.solution
        broken = code.replace("return ", "return 1 + ", 1) if "return " in code else code + "\nraise ValueError\n"
        return [f"```python\n{code}```", f"```python\n{broken}```", code.split("\n")[0]]
    raise ValueError(f"problem {problem.id} has neither an answer nor a solution to build candidates from")


@dataclass
class Examples:
    prompts: list[str]
    completions: list[str]
    labels: Tensor  # (N,) float 0/1 from the rule verifier


def collect_examples(env: Any, num_problems: int, *, seed: int = 0,
                     candidates: Callable[[Problem, random.Random], list[str]] = candidate_completions) -> Examples:
    """Sample problems from ``env``, build candidates and label them with the env's rule verifier."""
    env = getattr(env, "unwrapped", env)
    rng = random.Random(seed)
    prompts, comps, probs = [], [], []
    for k in tqdm(range(num_problems), desc="verifier data", unit="problem", leave=False):
        env.reset(seed=seed * 100_003 + k)
        p = env.problem
        for c in candidates(p, rng):
            prompts.append(env.prompt_for(p))
            comps.append(c)
            probs.append(p)
    results = env.verify_batch(probs, comps)
    labels = torch.tensor([float(r.score >= 0.5) for r in results])
    return Examples(prompts, comps, labels)


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """ROC AUC by the rank-sum (Mann–Whitney) formula, ties counted half; nan when one class is missing."""
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).float().sum() + 0.5 * (pos[:, None] == neg[None, :]).float().sum()
    return float(greater / (len(pos) * len(neg)))


def train_verifier(features: Tensor, labels: Tensor, *, heldout_frac: float = 0.25, epochs: int = 200,
                   lr: float = 3e-3, width: int = 128, seed: int = 0) -> tuple[VerifierHead, dict[str, float]]:
    """Fit a :class:`VerifierHead` with BCE (full batch, AdamW) on a random split; returns (head, held-out metrics)."""
    if features.shape[0] != labels.shape[0] or features.shape[0] < 4:
        raise ValueError(f"train_verifier: need ≥ 4 labelled examples, got {features.shape[0]} / {labels.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(features.shape[0], generator=g)
    n_test = max(1, int(round(heldout_frac * features.shape[0])))
    test, train = perm[:n_test], perm[n_test:]
    torch.manual_seed(seed)
    head = VerifierHead(features.shape[1], width)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-2)
    pos_weight = (1 - labels[train].mean()).clamp_min(0.05) / labels[train].mean().clamp_min(0.05)
    for _ in range(epochs):
        loss = nn.functional.binary_cross_entropy_with_logits(head(features[train]), labels[train],
                                                              pos_weight=pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s_test, s_train = head(features[test]), head(features[train])
    acc = lambda s, y: float(((s > 0).float() == y).float().mean())  # noqa: E731
    metrics = {"heldout_accuracy": acc(s_test, labels[test]), "heldout_auc": roc_auc(s_test, labels[test]),
               "train_accuracy": acc(s_train, labels[train]),
               "heldout_n": float(n_test), "train_n": float(len(train)), "positive_frac": float(labels.mean()),
               "final_train_loss": float(loss.detach())}
    return head, metrics


class LearnedVerifier:
    """A featuriser LM + tokenizer + trained head; ``score`` gives P(correct) per (prompt, completion)."""

    def __init__(self, lm: nn.Module, tokenizer: Any, head: VerifierHead, model_ref: str = "") -> None:
        self.lm, self.tokenizer, self.head, self.model_ref = lm.eval(), tokenizer, head.eval(), model_ref

    @torch.no_grad()
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        feats = featurize(self.lm, self.tokenizer, prompts, completions)
        return torch.sigmoid(self.head(feats.to(next(self.head.parameters()).device))).tolist()

    def save(self, path: str | Path) -> None:
        """``verifier_head.safetensors`` + ``verifier.json`` (featuriser reference, sizes), written atomically."""
        from safetensors.torch import save_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_model(self.head, str(path / "verifier_head.safetensors.tmp"))
        (path / "verifier_head.safetensors.tmp").replace(path / "verifier_head.safetensors")
        lin = self.head.net[1]
        meta = {"model": self.model_ref, "in_features": lin.in_features, "width": lin.out_features}
        (path / "verifier.json.tmp").write_text(json.dumps(meta, indent=1))
        (path / "verifier.json.tmp").replace(path / "verifier.json")

    @classmethod
    def load(cls, path: str | Path, lm: nn.Module | None = None, tokenizer: Any = None) -> LearnedVerifier:
        """Load a saved head; the featuriser is ``lm``/``tokenizer`` or re-loaded from the stored reference."""
        from safetensors.torch import load_model

        from sdpg_train.core.model_io import load_model_and_tokenizer

        path = Path(path)
        if not (path / "verifier.json").is_file():
            raise FileNotFoundError(f"{path} has no verifier.json (train one with `sdpg train-verifier`)")
        meta = json.loads((path / "verifier.json").read_text())
        if lm is None:
            lm, tokenizer = load_model_and_tokenizer(None, tokenizer, name_or_path=meta["model"], dtype="float32",
                                                     seed=0, gradient_checkpointing=False)
        head = VerifierHead(meta["in_features"], meta["width"])
        load_model(head, str(path / "verifier_head.safetensors"))
        return cls(lm, tokenizer, head, meta["model"])


class LearnedRewardSource:
    """A trainer ``TaskSource`` whose reward is the learned verifier's P(correct) instead of a rule verifier.

    Wraps an env (id/instance) or another ``TaskSource``; problems, prompts and privileged context come from it.
    """

    def __init__(self, env: Any, verifier: LearnedVerifier, name: str | None = None) -> None:
        from sdpg_train.core.rollout import make_sources

        self.inner = make_sources(env, [], {}, None)[0][0]
        self.verifier = verifier
        self.name = name or f"{self.inner.name}+learned-verifier"

    def sample(self, seed: int) -> Problem:
        return self.inner.sample(seed)

    def prompt(self, problem: Problem) -> str:
        return self.inner.prompt(problem)

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]:
        probs = self.verifier.score([self.prompt(p) for p in problems], list(completions))
        return [VerifierResult(float(s), "learned_correct" if s >= 0.5 else "learned_incorrect",
                               f"learned verifier P(correct) = {s:.3f}", {"learned_p": float(s)}) for s in probs]

    def context(self, problem: Problem, result: VerifierResult) -> str:
        return self.inner.context(problem, result)
