"""Evaluate a causal LM on any ``sdpg/*`` environment: pass@k, accuracy, compile-error rate, status histogram.

``evaluate`` samples ``samples`` completions for each of ``n`` problems (``env.problem_at(offset + i)``), scores
them with the env's own verifier (``env.verify_batch``) and returns an
:class:`~sdpg_train.evaluation.report.EvalReport`.
Problems are processed in fixed chunks, each generated under its own seed derived from ``seed`` and the chunk
index, so results are deterministic and an interrupted run resumed from ``output_dir`` gives the same samples
as an uninterrupted one. The caller's RNG state is left untouched.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sdpg_envs.metrics import compile_error_rate, status_histogram
from sdpg_train.core.multiturn_rollout import is_multiturn_env
from sdpg_train.evaluation.generation import generate_batch, generate_ids, seeded
from sdpg_train.evaluation.report import (
    CODE_STATUSES,
    RESULTS_FILE,
    SAMPLES_FILE,
    EvalReport,
    SampleRecord,
    append_samples,
    environment_info,
    read_results,
    read_samples,
    write_jsonl_atomic,
    write_results,
)

_RESULT_AFFECTING = (
    "env_id", "env_kwargs", "model_digest", "offset", "samples", "temperature", "top_p", "max_new_tokens", "stop",
    "batch_size", "seed",
)
"""Config fields that decide the samples of a chunk; ``n`` only decides how many chunks (an eval can grow)."""


@dataclass(frozen=True)
class EvalConfig:
    """What one evaluation ran. ``model`` is a label; the weights are identified by ``model_digest``."""

    env_id: str
    model: str
    n: int
    env_kwargs: dict[str, Any]
    model_digest: str = ""
    offset: int = 0
    samples: int = 1
    ks: tuple[int, ...] = (1,)
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    batch_size: int = 16
    seed: int = 0

    @property
    def problems_per_chunk(self) -> int:
        return max(1, self.batch_size // self.samples)

    def fingerprint(self) -> str:
        d = asdict(self)
        blob = json.dumps({k: d[k] for k in _RESULT_AFFECTING}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------- metrics


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): ``1 - C(n-c, k) / C(n, k)`` for ``c`` correct out of ``n`` samples.

    >>> round(pass_at_k(5, 2, 1), 6)
    0.4
    >>> round(pass_at_k(4, 1, 2), 6)
    0.5
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # product form avoids huge binomials: C(n-c,k)/C(n,k) = prod_{i=n-c+1}^{n} (1 - k/i)
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def compute_metrics(
    records: Sequence[SampleRecord], ks: Sequence[int] = (1,), *, code_task: bool | None = None
) -> dict[str, Any]:
    """Aggregate per-sample records into the report's metrics (pure; recomputable from ``samples.jsonl``).

    Args:
        records: one per completion; problems are grouped by ``problem_index``.
        ks: pass@k values to estimate; each must be at most the samples of every problem.
        code_task: whether the compile-error rate applies; ``None`` infers it from code-only statuses.
    """
    if not records:
        raise ValueError("no samples to compute metrics from")
    groups: dict[int, list[SampleRecord]] = defaultdict(list)
    for r in records:
        groups[r.problem_index].append(r)
    per_problem = min(len(g) for g in groups.values())
    pass_at: dict[str, float] = {}
    for k in sorted(set(ks)):
        if k > per_problem:
            raise ValueError(f"pass@{k} needs at least {k} samples per problem, have {per_problem}")
        pass_at[f"pass@{k}"] = _mean(pass_at_k(len(g), sum(r.passed for r in g), k) for g in groups.values())
    statuses = [r.status for r in records]
    is_code = any(s in CODE_STATUSES for s in statuses) if code_task is None else code_task
    # code: the full taxonomy, zeros included (fixed rows to compare); math: the statuses seen
    counts = status_histogram(statuses) if is_code else Counter(statuses)
    total = len(records)
    return {
        "num_problems": len(groups),
        "samples_per_problem": per_problem,
        "num_samples": total,
        "accuracy": _mean(float(r.score) for r in records),
        "pass_rate": sum(r.passed for r in records) / total,
        "pass_at_k": pass_at,
        "compile_error_rate": compile_error_rate(statuses) if is_code else None,
        "status_counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "mean_completion_tokens": _mean(r.num_tokens for r in records),
        "mean_completion_chars": _mean(len(r.completion) for r in records),
        "truncated_rate": sum(r.truncated for r in records) / total,
        **per_turn_metrics(records),
    }


def per_turn_metrics(records: Sequence[SampleRecord]) -> dict[str, Any]:
    """Multi-turn records: ``{"turns": [{"turn": t, "pass@1", "compile_error_rate", "repair_rate"}, ...]}`` for
    t = 1..max attempts (an episode that ended earlier keeps its last verdict: a pass stays a pass), plus
    ``first_turn_failures`` (episodes whose first attempt failed, the repair rate's denominator); {} otherwise."""
    from sdpg_train.core.multiturn_rollout import turn_metrics

    if not any(r.turns for r in records):
        return {}
    outcomes = [[(t["status"], bool(t["passed"])) for t in r.turns] for r in records]
    max_turns = max(len(o) for o in outcomes)
    flat = turn_metrics(outcomes, max_turns)
    return {"turns": [{"turn": t, **{k: flat[f"{k}/turn{t}"] for k in ("pass@1", "compile_error_rate", "repair_rate")}}
                      for t in range(1, max_turns + 1)],
            "first_turn_failures": sum(1 for o in outcomes if o and not o[0][1])}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


# ----------------------------------------------------------------------------------------- environment


def resolve_env(env_or_id: Any, env_kwargs: dict[str, Any] | None = None) -> tuple[Any, str, dict[str, Any], bool]:
    """``(reasoning_env, env_id, env_kwargs, created)`` for an id (made with ``gym.make``) or an env instance.

    For an instance, the id and kwargs come from its ``spec`` (what ``gym.make`` recorded) unless given.
    """
    if isinstance(env_or_id, str):
        import gymnasium as gym

        import sdpg_envs  # noqa: F401  (registers the sdpg/* ids)
        from sdpg_envs.registration import make_error_message

        try:
            env = gym.make(env_or_id, **(env_kwargs or {}))
        except (gym.error.Error, TypeError, ModuleNotFoundError) as exc:
            raise ValueError(make_error_message(env_or_id, exc)) from exc
        env_id, created = env_or_id, True
    else:
        env, created = env_or_id, False
        spec = getattr(env, "spec", None)
        env_id = spec.id if spec is not None else type(getattr(env, "unwrapped", env)).__name__
        if env_kwargs is None and spec is not None:
            env_kwargs = {k: v for k, v in (spec.kwargs or {}).items() if _jsonable(v)}
    base = getattr(env, "unwrapped", env)
    missing = [m for m in ("problem_at", "prompt_for", "verify_batch") if not hasattr(base, m)]
    if missing:
        raise ValueError(f"{env_id} is not an sdpg ReasoningEnv (lacks {', '.join(missing)})")
    return base, env_id, dict(env_kwargs or {}), created


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def _num_problems(env: Any) -> int | None:
    """The env's problem count, or None when it has none or is procedural (``UNBOUNDED``)."""
    from sdpg_envs.tasks.sources import UNBOUNDED

    size = getattr(env, "num_problems", None)
    return int(size) if isinstance(size, int) and size < UNBOUNDED else None


def _model_digest(model) -> str:
    """A cheap fingerprint of the weights (first and last tensors) so resume never mixes two checkpoints."""
    params = list(model.parameters())
    h = hashlib.sha256(str(sum(p.numel() for p in params)).encode())
    for p in (params[0], params[-1]):
        h.update(repr(float(p.detach().double().sum())).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------- resume


def _load_finished(out: Path, config: EvalConfig, overwrite: bool) -> list[SampleRecord]:
    """Records of finished chunks from an earlier run of the same config in ``out`` (the file is rewritten cleanly).

    A torn line or an unfinished chunk is dropped; a different config, or fewer problems than before, is refused.
    """
    results, samples = out / RESULTS_FILE, out / SAMPLES_FILE
    if overwrite:
        results.unlink(missing_ok=True)
        samples.unlink(missing_ok=True)
        return []
    if not results.exists():
        if samples.exists() and samples.stat().st_size > 0:
            raise ValueError(f"{samples} exists without {RESULTS_FILE}; pass overwrite (--overwrite) or another dir")
        return []
    previous = read_results(results)
    if previous.get("fingerprint") != config.fingerprint():
        old = previous.get("config", {})
        new = asdict(config)
        diff = [k for k in _RESULT_AFFECTING if json.dumps(old.get(k), default=str) != json.dumps(new[k], default=str)]
        raise ValueError(
            f"{out} holds an evaluation with a different config (differs in: {', '.join(diff) or 'fingerprint'}); "
            "pass overwrite (--overwrite) or choose another output dir"
        )
    prev_n = int(previous.get("config", {}).get("n", config.n))
    if prev_n > config.n:
        raise ValueError(f"{out} holds an evaluation of {prev_n} problems, more than the {config.n} asked for; "
                         "pass overwrite (--overwrite) or choose another output dir")
    records = read_samples(samples) if samples.exists() else []
    unique = {(r.problem_index, r.sample_index): r for r in records}
    per_chunk: dict[int, int] = Counter(_chunk_of(pi, config) for pi, _ in unique)
    # a chunk is reusable when finished and, if n grew, it was a full chunk then (same problems, same batches)
    full_then = prev_n // config.problems_per_chunk if prev_n != config.n else math.inf
    done = {c for c, k in per_chunk.items() if k == _chunk_len(c, config) * config.samples and c < full_then}
    kept = sorted((r for r in unique.values() if _chunk_of(r.problem_index, config) in done), key=_order)
    write_jsonl_atomic(samples, (asdict(r) for r in kept))
    return kept


def _chunk_of(problem_index: int, config: EvalConfig) -> int:
    return (problem_index - config.offset) // config.problems_per_chunk


def _chunk_len(chunk: int, config: EvalConfig) -> int:
    return min(config.problems_per_chunk, config.n - chunk * config.problems_per_chunk)


def _order(r: SampleRecord) -> tuple[int, int]:
    return r.problem_index, r.sample_index


# ----------------------------------------------------------------------------------------- main loop


def _run_chunk(model, tokenizer, env, config: EvalConfig, chunk: int, timing: dict[str, float]) -> list[SampleRecord]:
    """Generate and verify every sample of one chunk of problems under the chunk's own seed."""
    first = config.offset + chunk * config.problems_per_chunk
    indices = range(first, first + _chunk_len(chunk, config))
    problems = [env.problem_at(i) for i in indices]
    prompts = [env.prompt_for(p) for p in problems]
    flat = [(pi, p, prompt, s) for pi, p, prompt in zip(indices, problems, prompts) for s in range(config.samples)]
    if is_multiturn_env(env):
        return _run_episodes(model, tokenizer, env, config, chunk, flat, timing)
    t0 = time.perf_counter()
    gens = []
    with seeded(config.seed * 1_000_003 + chunk):
        for start in range(0, len(flat), config.batch_size):
            batch = [row[2] for row in flat[start : start + config.batch_size]]
            gens += generate_batch(
                model, tokenizer, batch, temperature=config.temperature, top_p=config.top_p,
                max_new_tokens=config.max_new_tokens, stop=config.stop,
            )
    t1 = time.perf_counter()
    verdicts = env.verify_batch([row[1] for row in flat], [g.text for g in gens])
    timing["generate_s"] += t1 - t0
    timing["verify_s"] += time.perf_counter() - t1
    return [
        SampleRecord(
            problem_index=pi, problem_id=str(getattr(p, "id", pi)), sample_index=s, prompt=prompt,
            completion=g.text, score=float(v.score), status=str(v.status), passed=bool(v.passed),
            feedback=str(v.feedback or ""), num_tokens=g.num_tokens, truncated=g.truncated,
        )
        for (pi, p, prompt, s), g, v in zip(flat, gens, verdicts)
    ]


def _run_episodes(model, tokenizer, env, config: EvalConfig, chunk: int, flat, timing) -> list[SampleRecord]:
    """Multi-turn chunk: every sample is an episode (generate, verify, feedback, generate ...) under the chunk's
    seed; the record is the episode's (final status, episode reward) with each attempt in ``turns``."""
    from sdpg_train.core.multiturn_rollout import Episode, run_episodes
    from sdpg_train.core.rollout import encode_prompt

    episodes = [Episode(0, p, prompt, encode_prompt(tokenizer, prompt)) for _, p, prompt, _ in flat]

    def gen(prefixes):
        return generate_ids(model, tokenizer, prefixes, temperature=config.temperature, top_p=config.top_p,
                            max_new_tokens=config.max_new_tokens, stop=config.stop)

    with seeded(config.seed * 1_000_003 + chunk):
        gen_s, wait_s = run_episodes(episodes, [env], tokenizer, gen, chunk_size=config.batch_size)
    timing["generate_s"] += gen_s
    timing["verify_s"] += wait_s
    records = []
    for (pi, p, prompt, s), e in zip(flat, episodes):
        last = e.turns[-1]
        turns = [{"status": str(t.result.status), "passed": bool(t.result.passed), "score": float(t.result.score),
                  "completion": t.completion, "feedback": str(t.result.feedback or ""),
                  "num_tokens": len(t.completion_ids), "truncated": t.clipped} for t in e.turns]
        records.append(SampleRecord(
            problem_index=pi, problem_id=str(getattr(p, "id", pi)), sample_index=s, prompt=prompt,
            completion=last.completion, score=e.reward, status=str(last.result.status),
            passed=bool(last.result.passed), feedback=str(last.result.feedback or ""),
            num_tokens=sum(t["num_tokens"] for t in turns), truncated=any(t["truncated"] for t in turns),
            turns=turns))
    return records


def evaluate(
    model,
    tokenizer,
    env: Any,
    *,
    n: int | None = None,
    samples: int = 1,
    ks: Sequence[int] = (1,),
    temperature: float | None = None,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    stop: Sequence[str] = (),
    batch_size: int = 16,
    seed: int = 0,
    offset: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    model_name: str | None = None,
) -> EvalReport:
    """Sample, verify and score; optionally write (and resume) ``results.json`` + ``samples.jsonl``.

    Args:
        model: any ``AutoModelForCausalLM``-style model with ``generate``.
        tokenizer: its tokenizer (the chat template is applied when it has one).
        env: an ``sdpg/*`` id (made with ``env_kwargs``) or an env instance.
        n: problems to evaluate (``problem_at(offset) ...``); ``None`` means all (finite envs only).
        samples: completions per problem; ``ks`` must not exceed it.
        temperature: 0 is greedy; ``None`` picks 0 for one sample and 1.0 (the policy itself) otherwise.
        output_dir: when given, finished chunks are appended to ``samples.jsonl`` as they complete and a rerun
            with the same config continues where the last one stopped; a different config is refused unless
            ``overwrite``.
        model_name: recorded in the config (default: ``model.name_or_path``).

    Returns:
        The report; ``report.metrics`` is ``compute_metrics(report.records, ks)``.
    """
    base, env_id, env_kwargs, created = resolve_env(env, env_kwargs)
    try:
        size = _num_problems(base)
        if n is None:
            if size is None:
                raise ValueError(f"{env_id} is procedural (no fixed number of problems); pass n (--n)")
            n = size - offset
        if temperature is None:
            temperature = 0.0 if samples == 1 else 1.0
        config = EvalConfig(
            env_id=env_id, model=model_name or str(getattr(model, "name_or_path", "") or type(model).__name__),
            n=n, env_kwargs=env_kwargs, model_digest=_model_digest(model), offset=offset, samples=samples,
            ks=tuple(sorted({int(k) for k in ks})), temperature=float(temperature), top_p=float(top_p),
            max_new_tokens=max_new_tokens, stop=tuple(stop), batch_size=batch_size, seed=seed,
        )
        validate_config(config, size)
        return _evaluate(model, tokenizer, base, config, output_dir, overwrite, progress)
    finally:
        if created:
            base.close()


def validate_config(c: EvalConfig, num_problems: int | None = None) -> None:
    """Raise ``ValueError`` naming the first invalid field of ``c`` (``num_problems``: the env's size, if fixed)."""
    checks = [
        (c.n >= 1, f"n must be >= 1, got {c.n}"),
        (c.offset >= 0, f"offset must be >= 0, got {c.offset}"),
        (num_problems is None or c.offset + c.n <= num_problems,
         f"{c.env_id} has {num_problems} problems; offset {c.offset} + n {c.n} exceeds it"),
        (c.samples >= 1, f"samples must be >= 1, got {c.samples}"),
        (bool(c.ks) and min(c.ks) >= 1 and max(c.ks) <= c.samples,
         f"each k must be in 1..samples={c.samples}, got {list(c.ks)}"),
        (c.batch_size >= 1 and c.max_new_tokens >= 1, "batch_size and max_new_tokens must be >= 1"),
        (c.temperature >= 0, f"temperature must be >= 0, got {c.temperature}"),
        (0 < c.top_p <= 1, f"top_p must be in (0, 1], got {c.top_p}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _evaluate(model, tokenizer, env, config: EvalConfig, output_dir, overwrite: bool, progress: bool) -> EvalReport:
    out = Path(output_dir) if output_dir is not None else None
    meta = {"fingerprint": config.fingerprint(), **environment_info()}
    records = _load_finished(out, config, overwrite) if out is not None else []
    if out is not None:
        write_results(out, asdict(config), {}, meta, complete=False)
    resumed, passed = len(records), sum(r.passed for r in records)
    finished = {_chunk_of(r.problem_index, config) for r in records}
    num_chunks = math.ceil(config.n / config.problems_per_chunk)
    timing = {"generate_s": 0.0, "verify_s": 0.0}
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        with tqdm(total=config.n, initial=len(records) // config.samples, desc=f"eval {config.env_id}",
                  unit="problem", disable=not progress) as bar:
            for chunk in range(num_chunks):
                if chunk in finished:
                    continue
                new = _run_chunk(model, tokenizer, env, config, chunk, timing)
                if out is not None:
                    append_samples(out / SAMPLES_FILE, new)
                records += new
                passed += sum(r.passed for r in new)
                bar.update(len(new) // config.samples)
                bar.set_postfix(pass_rate=f"{passed / len(records):.3f}")
    finally:
        model.train(was_training)
    records.sort(key=_order)
    metrics = compute_metrics(records, config.ks, code_task=_is_code_env(env))
    meta["timing"] = {**timing, "wall_s": time.perf_counter() - t0, "resumed_samples": resumed}
    report = EvalReport(config=asdict(config), metrics=metrics, records=records, meta=meta)
    if out is not None:
        report.save(out)
    return report


def _is_code_env(env: Any) -> bool | None:
    """Whether compile errors apply: the env says so (``task_kind``), or its class does; None if unknown."""
    if is_multiturn_env(env):
        env = env.env  # the single-step env a repair env wraps
    kind = getattr(env, "task_kind", None)
    if isinstance(kind, str):
        return kind == "code"
    try:
        from sdpg_envs.envs.code_env import CodeEnv
        from sdpg_envs.envs.math_env import MathEnv
    except ImportError:
        return None
    return True if isinstance(env, CodeEnv) else False if isinstance(env, MathEnv) else None
