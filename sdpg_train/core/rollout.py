"""Rollouts: G completions per prompt (fast sampler or HF ``generate``), exact token ids, verified by the source.

Layout: a batch holds B groups of G samples; sample ``i`` belongs to group ``i // G`` (contiguous groups).
Each group is one problem drawn by a per-seed reset (``seed = f(config seed, rank, step, slot)``), so a step's
problems depend only on the seed and the step number (exact resume needs no env state). Prompts are tokenised
without special tokens and left-padded by hand (spec pitfall 2); completions are cut at EOS (kept) or at the
end of a stop string, and their ids are kept exactly as sampled, never re-tokenised. Generation runs in
chunks; chunk k is verified in a background thread while chunk k+1 generates (verifiers run in their own
worker processes or sandboxes, so a thread is enough).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from sdpg_envs.shaping import raw_result
from sdpg_envs.types import Problem, VerifierResult
from sdpg_train.core.sampler import sample, unsupported_reason


class TaskSource(Protocol):
    """Where problems, prompts, scores and privileged context come from (an env today; reward_funcs later)."""

    name: str

    def sample(self, seed: int) -> Problem: ...

    def prompt(self, problem: Problem) -> str: ...

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]: ...

    def context(self, problem: Problem, result: VerifierResult) -> str: ...


class EnvSource:
    """A :class:`TaskSource` over a ``ReasoningEnv`` (made by id or given as an instance).

    Completions are verified in batches on ``env.unwrapped``; reward-shaping wrappers around the env
    (``FormatPenalty``, ``TransformReward``, ...) are then applied by replaying each verdict through them
    (:class:`sdpg_envs.shaping.RewardReplay`), so the reward is what ``env.step`` returns. Wrappers that change
    observations are refused (``TypeError`` naming them).
    """

    def __init__(self, env: Any, name: str | None = None) -> None:
        from sdpg_envs.shaping import RewardReplay

        self.env = getattr(env, "unwrapped", env)
        spec = getattr(env, "spec", None)
        self.name = name or (spec.id if spec is not None else type(self.env).__name__)
        for attr in ("reset", "prompt_for", "verify_batch", "build_context"):
            if not hasattr(self.env, attr):
                raise TypeError(f"env {self.name!r} has no {attr}(); SDPGTrainer needs an sdpg_envs.ReasoningEnv")
        try:
            self.shaping = RewardReplay(env)
        except TypeError as exc:
            raise TypeError(f"env {self.name!r}: {exc}") from None

    def sample(self, seed: int) -> Problem:
        if self.shaping.active:  # through the wrappers, so they see a reset before the replayed steps
            return self.shaping.reset(seed)
        self.env.reset(seed=int(seed))  # same seed -> same problem (GRPO groups)
        return self.env.problem

    def prompt(self, problem: Problem) -> str:
        return self.env.prompt_for(problem)

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]:
        results = list(self.env.verify_batch(list(problems), list(completions)))
        return self.shaping.shape(problems, completions, results)

    def context(self, problem: Problem, result: VerifierResult) -> str:
        return self.env.build_context(problem, raw_result(result)) or ""


class DatasetSource:
    """A :class:`TaskSource` over a prompt dataset scored by TRL-style reward functions.

    Each row needs a text ``prompt`` column; every other column is passed to the reward functions as a keyword
    argument (lists, one entry per completion), as TRL's ``GRPOTrainer`` does. The reward is the sum of the
    functions' values (``None`` counts as 0); the privileged context is the row's ``privileged_context`` column
    (empty when absent). Problem ``i`` is drawn as ``default_rng(seed).integers(len(dataset))``.
    """

    def __init__(self, dataset: Any, reward_funcs: Any, name: str = "dataset") -> None:
        self.dataset = dataset
        self.funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
        self.name = name
        if len(dataset) < 1:
            raise ValueError("train_dataset is empty")
        bad = [f for f in self.funcs if not callable(f)]
        if bad:
            raise TypeError(f"reward_funcs must be callables fn(prompts, completions, **columns); got {bad[:1]}")
        first = dict(dataset[0])
        if not isinstance(first.get("prompt"), str):
            raise ValueError("train_dataset needs a text 'prompt' column (conversational prompts are not supported "
                             "yet; e.g. sdpg_envs.to_dataset(env, chat=False))")

    def sample(self, seed: int) -> Problem:
        i = int(np.random.default_rng(seed).integers(len(self.dataset)))
        row = dict(self.dataset[i])
        answer = row.get("answer")
        return Problem(str(row.get("id", row.get("problem_id", i))), row["prompt"],
                       answer=None if answer is None else str(answer), solution=row.get("solution"), metadata=row)

    def prompt(self, problem: Problem) -> str:
        return problem.prompt

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[VerifierResult]:
        columns = {k: [p.metadata.get(k) for p in problems] for k in problems[0].metadata if k != "prompt"}
        prompts = [p.prompt for p in problems]
        per_func: dict[str, list[float]] = {}
        for fn in self.funcs:
            values = fn(prompts=prompts, completions=list(completions), **columns)
            if len(values) != len(completions):
                raise RuntimeError(f"reward function {_fn_name(fn)} returned {len(values)} values for "
                                   f"{len(completions)} completions")
            per_func[_fn_name(fn)] = [0.0 if v is None else float(v) for v in values]
        totals = [sum(vals[i] for vals in per_func.values()) for i in range(len(completions))]
        return [VerifierResult(t, "scored", "", {"rewards": {k: v[i] for k, v in per_func.items()}})
                for i, t in enumerate(totals)]

    def context(self, problem: Problem, result: VerifierResult) -> str:
        return str(problem.metadata.get("privileged_context") or "")


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


@dataclass
class RolloutBatch:
    """N = B·G sampled completions with everything the teacher view and the loss need."""

    prompt_ids: list[list[int]]
    """Student prompt token ids per sample (chat-templated, no padding)."""
    completion_ids: list[list[int]]
    """Sampled token ids per sample, exactly as generated, cut after EOS / stop string."""
    prompts: list[str]
    """Raw prompt text per sample (the user turn, before the chat template)."""
    completions: list[str]
    """Decoded completion text (special tokens skipped), as given to the verifier."""
    rewards: Tensor
    """(N,) fp32 verifier scores."""
    statuses: list[str]
    contexts: list[str]
    """Per-sample privileged context from the source (reference + this rollout's verifier feedback)."""
    answers: list[str | None]
    group_index: Tensor
    """(N,) long, group id ``i // G``."""
    sources: list[str]
    clipped: Tensor
    """(N,) bool: hit max_completion_length without EOS or stop string."""
    group_size: int
    problems: list[Problem] = field(default_factory=list)
    results: list[VerifierResult] = field(default_factory=list)
    gen_seconds: float = 0.0
    verify_wait_seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.completion_ids)

    @property
    def completion_lengths(self) -> Tensor:
        """(N,) long number of completion tokens per sample."""
        return torch.tensor([len(c) for c in self.completion_ids], dtype=torch.long)

    def padded_completions(self, pad_id: int) -> tuple[Tensor, Tensor]:
        """Right-padded (N, T) completion ids and (N, T) bool mask, T = longest completion."""
        return right_pad(self.completion_ids, pad_id)


def make_sources(env: Any, env_ids: Sequence[str], env_kwargs: dict, env_weights: Sequence[float] | None
                 ) -> tuple[list[TaskSource], list[float]]:
    """Resolve the trainer's ``env`` argument (id, instance, or a list of them; None → ``env_ids``)."""
    items = list(env_ids) if env is None else list(env) if isinstance(env, (list, tuple)) else [env]
    sources: list[TaskSource] = []
    for item in items:
        if isinstance(item, str):
            import gymnasium as gym

            import sdpg_envs  # noqa: F401  (registers the sdpg/* ids)
            from sdpg_envs.registration import make_error_message

            try:
                made = gym.make(item, **dict(env_kwargs.get(item, {})))
            except (gym.error.Error, ModuleNotFoundError) as exc:
                raise ValueError(make_error_message(item, exc)) from exc
            sources.append(EnvSource(made, name=item))
        elif all(hasattr(item, a) for a in ("sample", "prompt", "score", "context", "name")):
            sources.append(item)
        else:
            sources.append(EnvSource(item))
    weights = [float(w) for w in env_weights] if env_weights is not None else [1.0] * len(sources)
    if len(weights) != len(sources):
        raise ValueError(f"env_weights has {len(weights)} entries for {len(sources)} envs")
    return sources, weights


def right_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad id lists into (N, T) long ids and (N, T) bool mask."""
    width = max([len(r) for r in rows] + [1])
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (N, T)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)  # (N, T)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Left-pad id lists into (N, P) long ids and (N, P) long attention mask (explicit; spec pitfall 2)."""
    width = max([len(r) for r in rows] + [1])
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (N, P)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (N, P)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def encode_prompt(tokenizer, user_text: str, chat_template_kwargs: dict | None = None) -> list[int]:
    """Chat-template one user turn with the generation prompt and tokenise it without special tokens."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True,
            **(chat_template_kwargs or {}),
        )
    else:
        text = user_text
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def eos_token_ids(model, tokenizer) -> set[int]:
    """Token ids that end a completion (the generation config's and the tokenizer's EOS)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def pad_token_id(tokenizer) -> int:
    """The pad id (falls back to EOS, then 0)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return int(tokenizer.eos_token_id) if tokenizer.eos_token_id is not None else 0


def decode_text(tokenizer, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    """Decode ids to text; ids the tokenizer does not know (an LM head wider than the vocabulary, as Qwen's is)
    are dropped from the text instead of raising. The ids themselves are never changed."""
    try:
        return tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
    except (ValueError, IndexError, KeyError, OverflowError, TypeError):
        n = len(tokenizer)
        return tokenizer.decode([i for i in ids if 0 <= i < n], skip_special_tokens=skip_special_tokens)


def _stop_cut(row: list[int], tokenizer, stop: Sequence[str]) -> int | None:
    """Shortest prefix length whose text contains a stop string (binary search; containment is monotone)."""
    def hit(n: int) -> bool:
        text = decode_text(tokenizer, row[:n], skip_special_tokens=False)
        return any(s in text for s in stop)

    if not stop or not hit(len(row)):
        return None
    lo, hi = 1, len(row)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if hit(mid) else (mid + 1, hi)
    return lo


def trim_completion(row: list[int], eos: set[int], tokenizer, stop: Sequence[str]) -> tuple[list[int], bool]:
    """Cut a generated row after its first EOS (kept) or at the end of a stop string -> (ids, clipped)."""
    cut = next((i + 1 for i, t in enumerate(row) if t in eos), None)
    stop_at = _stop_cut(row[: cut or len(row)], tokenizer, stop)
    if stop_at is not None:
        return row[:stop_at], False
    if cut is not None:
        return row[:cut], False
    return row, True


# Logits processors a model's generation_config may switch on; turned off so samples come from π_θ exactly
# (temperature/top-p/top-k are the config's, and the loss scales logits by the same temperature).
NEUTRAL_SAMPLING = dict(
    repetition_penalty=1.0, encoder_repetition_penalty=1.0, no_repeat_ngram_size=0, min_p=None, typical_p=1.0,
    epsilon_cutoff=0.0, eta_cutoff=0.0, bad_words_ids=None, suppress_tokens=None, begin_suppress_tokens=None,
    sequence_bias=None, min_length=0, forced_bos_token_id=None, forced_eos_token_id=None, renormalize_logits=False,
)


@torch.no_grad()
def generate(model, tokenizer, prompt_ids: Sequence[Sequence[int]], gen: dict[str, Any]
             ) -> list[tuple[list[int], bool]]:
    """Sample one completion per prompt -> [(completion ids, clipped)].

    ``gen`` holds max_completion_length, temperature, top_p, top_k, stop_strings and optionally ``backend``:
    "fast" (default) is :func:`sdpg_train.core.sampler.sample`, which draws the tokens HF ``generate`` draws for
    the same RNG state, faster; "hf" is ``generate`` itself (KV cache). The fast sampler falls back to ``generate``
    for models it cannot reproduce (``sampler.unsupported_reason``).
    """
    pad = pad_token_id(tokenizer)
    eos = eos_token_ids(model, tokenizer)
    ids, mask = left_pad(prompt_ids, pad)  # (n, P), explicit left padding
    stop = list(gen.get("stop_strings") or ())
    backend = gen.get("backend", "fast")
    if backend not in ("fast", "hf"):
        raise ValueError(f"generation backend must be 'fast' or 'hf', got {backend!r}")
    was_training = model.training
    model.eval()
    try:
        if backend == "fast" and unsupported_reason(model, NEUTRAL_SAMPLING) is None:
            out = sample(model, ids, mask, max_new_tokens=gen["max_completion_length"], pad_id=pad,
                         eos_ids=sorted(eos), temperature=gen["temperature"], top_k=gen["top_k"] or 0,
                         top_p=gen["top_p"], stop_strings=stop, tokenizer=tokenizer)  # (n, T)
            rows = out.tolist()
        else:
            kwargs: dict[str, Any] = dict(
                max_new_tokens=gen["max_completion_length"], do_sample=True, temperature=gen["temperature"],
                top_p=gen["top_p"], top_k=gen["top_k"], pad_token_id=pad, eos_token_id=sorted(eos) or None,
                use_cache=True, **NEUTRAL_SAMPLING,
            )
            if stop:
                kwargs.update(stop_strings=stop, tokenizer=tokenizer)
            device = next(model.parameters()).device
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)  # (n, P + T)
            rows = out[:, ids.shape[1] :].tolist()
    finally:
        model.train(was_training)
    return [trim_completion(r, eos, tokenizer, stop) for r in rows]


def problem_seed(seed: int, rank: int, step: int, slot: int) -> int:
    """Deterministic per-group reset seed from (config seed, rank, step, slot)."""
    return int(np.random.SeedSequence([seed, rank, step, slot]).generate_state(1)[0])


def choose_sources(n: int, weights: Sequence[float], seed: int, rank: int, step: int) -> list[int]:
    """Which source each of the ``n`` groups of a step draws from (weighted, seeded)."""
    if len(weights) == 1:
        return [0] * n
    p = np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng([seed, rank, step, 7919])
    return rng.choice(len(p), size=n, p=p / p.sum()).tolist()


def collect_rollouts(
    model,
    tokenizer,
    sources: Sequence[TaskSource],
    weights: Sequence[float],
    *,
    step: int,
    num_prompts: int,
    group_size: int,
    gen: dict[str, Any],
    generation_batch_size: int,
    max_prompt_length: int,
    chat_template_kwargs: dict | None = None,
    seed: int = 0,
    rank: int = 0,
) -> RolloutBatch:
    """Sample ``num_prompts`` groups of ``group_size`` completions and verify them.

    Verification of generation chunk k overlaps with generation of chunk k+1 (one background thread).
    """
    which = choose_sources(num_prompts, weights, seed, rank, step)
    problems = [sources[s].sample(problem_seed(seed, rank, step, b)) for b, s in enumerate(which)]
    prompts = [sources[s].prompt(p) for s, p in zip(which, problems)]
    encoded = [encode_prompt(tokenizer, t, chat_template_kwargs)[-max_prompt_length:] for t in prompts]
    flat = [b for b in range(num_prompts) for _ in range(group_size)]  # sample i -> group i // G
    completions: list[tuple[list[int], bool]] = []
    futures: list[tuple[list[int], Future]] = []
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdpg-verify") as pool:
        for start in range(0, len(flat), generation_batch_size):
            idx = list(range(start, min(start + generation_batch_size, len(flat))))
            outs = generate(model, tokenizer, [encoded[flat[i]] for i in idx], gen)
            completions.extend(outs)
            texts = [decode_text(tokenizer, c) for c, _ in outs]
            futures.append((idx, pool.submit(_verify, sources, which, problems, flat, idx, texts)))
        gen_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        verdicts: dict[int, tuple[str, VerifierResult, str]] = {}
        for _, fut in futures:
            verdicts.update(fut.result())
        wait_s = time.perf_counter() - t1
    n = len(flat)
    return RolloutBatch(
        prompt_ids=[encoded[flat[i]] for i in range(n)],
        completion_ids=[completions[i][0] for i in range(n)],
        prompts=[prompts[flat[i]] for i in range(n)],
        completions=[verdicts[i][0] for i in range(n)],
        rewards=torch.tensor([float(verdicts[i][1].score) for i in range(n)], dtype=torch.float32),
        statuses=[verdicts[i][1].status for i in range(n)],
        contexts=[verdicts[i][2] for i in range(n)],
        answers=[problems[flat[i]].answer for i in range(n)],
        group_index=torch.tensor(flat, dtype=torch.long),
        sources=[sources[which[flat[i]]].name for i in range(n)],
        clipped=torch.tensor([completions[i][1] for i in range(n)], dtype=torch.bool),
        group_size=group_size,
        problems=[problems[flat[i]] for i in range(n)],
        results=[raw_result(verdicts[i][1]) for i in range(n)],  # the verifier's verdicts; rewards may be shaped
        gen_seconds=gen_s,
        verify_wait_seconds=wait_s,
    )


def _verify(sources, which, problems, flat, idx, texts) -> dict[int, tuple[str, VerifierResult, str]]:
    """Score one generation chunk, source by source -> {sample index: (text, result, privileged context)}."""
    out: dict[int, tuple[str, VerifierResult, str]] = {}
    for s in sorted({which[flat[i]] for i in idx}):
        mine = [(i, t) for i, t in zip(idx, texts) if which[flat[i]] == s]
        probs = [problems[flat[i]] for i, _ in mine]
        results = sources[s].score(probs, [t for _, t in mine])
        if len(results) != len(mine):
            raise RuntimeError(f"{sources[s].name}: verify_batch returned {len(results)} results for {len(mine)}")
        for (i, t), p, r in zip(mine, probs, results):
            out[i] = (t, r, sources[s].context(p, r))
    return out
