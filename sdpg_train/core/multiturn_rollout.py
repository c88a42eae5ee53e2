"""Multi-turn rollouts: episodes on repair envs (:class:`~sdpg_envs.multiturn.MultiTurnEnv`) for ``SDPGTrainer``.

An episode is generate → verify → append the env's observation (feedback) → generate again, until it passes or
runs out of attempts. Every model turn becomes one row of an :class:`EpisodeBatch` (a :class:`RolloutBatch`):
its prefix (``prompt_ids``) is the exact token sequence the model conditioned on (the chat-templated task, the
earlier turns' sampled ids, the observations' ids), its completion the turn's sampled ids. The learner then
trains on rows as on single-turn samples, so:

* only model tokens are trained: observation tokens live in prefixes, which are never scored (no log-prob, no
  KL, no entropy term), yet every model token is conditioned on the whole transcript before it;
* advantages are group-relative over whole episodes (:func:`episode_advantages`: the episode's reward, which
  the env gives at its last step, discounted per extra attempt when the env says so), broadcast to its turns;
* the teacher view of turn k (:func:`build_episode_teacher_view`) puts turn k's own privileged context
  (``info["privileged_context"]`` of the step that scored it) into the first user turn, followed by the
  identical transcript (earlier turns, observations) and the turn's exact completion ids.

Prefix budget: with ``max_prompt_length`` set (the trainer's), a prefix over budget first drops the oldest earlier
attempts (each with its observation, so the transcript keeps its turn structure; the task prompt and the latest
attempt + feedback always stay), and only if the task prompt + the latest attempt + feedback still exceed it is it
left-truncated as a single-turn prompt is. :class:`Turn` records what was cut (:func:`episode_metrics` reports it
as ``episode/truncated_prefixes`` etc.) and where the task prompt ends in the prefix, so the teacher view pairs
the same visible transcript with the (whole) task prompt and its privileged context.

Observations: text observations are tokenised as they are; chat observations (``observation="chat"``) go
through the tokenizer's chat template (:func:`observation_ids`), or the env's text framing when it has none.
Episodes are stepped with the env's own :meth:`~sdpg_envs.multiturn.MultiTurnEnv.outcome` after one batched
``verify_batch`` per generation chunk (in a background thread, overlapping the next chunk's generation).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from sdpg_envs.types import Problem, VerifierResult
from sdpg_train.core.advantages import group_advantages
from sdpg_train.core.rollout import (
    EnvSource,
    RolloutBatch,
    choose_sources,
    decode_text,
    encode_prompt,
    generate,
    problem_seed,
)

__all__ = ["EpisodeBatch", "Turn", "build_episode_teacher_view", "check_multiturn", "collect_episodes",
           "episode_advantages", "episode_metrics", "episode_samples", "fit_prefix", "is_multiturn",
           "is_multiturn_env", "observation_ids", "run_episodes"]

COMPILE_ERROR = "compile_error"
_MARK = "\u2063sdpg-turn-mark\u2063"


def is_multiturn_env(env: Any) -> bool:
    """Whether ``env`` is a :class:`MultiTurnEnv` whose episodes can last 2+ attempts."""
    from sdpg_envs.multiturn import MultiTurnEnv

    return isinstance(env, MultiTurnEnv) and env.max_attempts > 1


def multiturn_env(source: Any) -> Any | None:
    """The :class:`MultiTurnEnv` behind a task source when it runs episodes of 2+ attempts, else None."""
    env = getattr(source, "env", None)
    return env if is_multiturn_env(env) else None


def is_multiturn(source: Any) -> bool:
    return multiturn_env(source) is not None


def check_multiturn(sources: Sequence[Any], args: Any) -> bool:
    """Whether the trainer's sources are multi-turn; refuses what multi-turn training does not support (a clear
    ``ValueError`` at trainer construction, never mid-run)."""
    from sdpg_train.methods import get_method

    flags = [is_multiturn(s) for s in sources]
    if not any(flags):
        return False
    names = [s.name for s in sources]
    if not all(flags):
        raise ValueError(f"multi-turn and single-turn envs cannot be mixed in one run: {names}")
    method = get_method(args.loss)
    if not getattr(method, "supports_multiturn", True):
        raise ValueError(f"loss={args.loss!r} does not support multi-turn envs ({', '.join(names)}): "
                         f"{getattr(method, 'multiturn_refusal', 'it cannot credit rewards across turns')}; "
                         "use sdpg, grpo, rlsd, sdpo or opsd, or max_attempts=1")
    if args.num_mini_batches != 1:
        raise ValueError("multi-turn envs need num_mini_batches=1 (episodes have different numbers of turns)")
    if args.teacher_model_kind == "encoder":
        raise ValueError("teacher_model_kind='encoder' does not support multi-turn envs yet; use live, ema or base")
    for s in sources:
        if not isinstance(s, EnvSource):
            raise ValueError(f"multi-turn source {s.name!r} must be an env")
        if s.shaping.active:
            raise ValueError(f"{s.name}: reward-shaping wrappers are not supported on multi-turn envs (the episode "
                             "reward is the env's own); set discount= on the env instead")
    return True


# ---------------------------------------------------------------------------------------------- observations
def observation_ids(tokenizer, env: Any, observation: str | list[dict[str, str]], completion: str,
                    completion_ids: Sequence[int], chat_template_kwargs: dict | None = None) -> list[int]:
    """Token ids of an observation appended after a model turn (``completion_ids``, as sampled).

    Text: the string tokenised as it is. Chat messages: what the tokenizer's chat template puts after an
    assistant turn (its end-of-turn marker unless the model already emitted it, the new user turn(s), the
    generation prompt); without a chat template, the env's text framing of the messages' content.
    """
    if isinstance(observation, str):
        text = observation
    elif not observation:
        text = ""
    elif getattr(tokenizer, "chat_template", None):
        base = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _MARK}]
        full = tokenizer.apply_chat_template(base + list(observation), tokenize=False, add_generation_prompt=True,
                                             **(chat_template_kwargs or {}))
        text = full[full.index(_MARK) + len(_MARK):]
        if completion_ids and completion_ids[-1] in set(getattr(tokenizer, "all_special_ids", ())):
            last = decode_text(tokenizer, [completion_ids[-1]], skip_special_tokens=False)
            if last and text.startswith(last):  # the model closed its turn itself
                text = text[len(last):]
    else:
        text = env._text_observation(completion, "".join(m["content"] for m in observation))
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


# ---------------------------------------------------------------------------------------------- episodes
@dataclass
class Turn:
    """One model turn of an episode."""

    prefix_ids: list[int]
    """Everything the model conditioned on (task, earlier turns, observations), exact ids."""
    completion_ids: list[int]
    clipped: bool
    completion: str
    result: VerifierResult
    context: str
    """The step's ``info["privileged_context"]`` (reference + this attempt's feedback)."""
    observation: str | list[dict[str, str]]
    observation_ids: list[int]
    """The observation's tokens as appended to the transcript ([] on the last turn)."""
    reward: float
    """The env's step reward (0 before the last turn)."""
    task_len: int
    """How many leading ``prefix_ids`` are the task prompt (fewer than its length when left-truncated)."""
    dropped_attempts: int
    """Earlier attempts (with their observations) left out of ``prefix_ids`` to fit the prompt budget."""
    cut_tokens: int
    """Tokens left-truncated off the start of ``prefix_ids`` after dropping attempts (0: the task prompt is whole)."""


@dataclass
class Episode:
    source: int
    problem: Problem
    prompt: str
    prompt_ids: list[int]
    turns: list[Turn] = field(default_factory=list)
    done: bool = False

    @property
    def reward(self) -> float:
        return self.turns[-1].reward if self.turns else 0.0


GenerateFn = Callable[[list[list[int]]], list[tuple[list[int], bool]]]


def run_episodes(episodes: list[Episode], envs: Sequence[Any], tokenizer, generate_fn: GenerateFn, *,
                 chunk_size: int, chat_template_kwargs: dict | None = None,
                 max_prompt_length: int | None = None) -> tuple[float, float]:
    """Play ``episodes`` to the end in place: each round generates the next turn of every unfinished episode (in
    chunks of ``chunk_size``), verifies them (``envs[episode.source].verify_batch``, overlapping the next chunk's
    generation) and steps them with the env's :meth:`outcome`. Each turn's prefix is fitted to
    ``max_prompt_length`` tokens by :func:`fit_prefix` (None: no budget). Returns (generation seconds,
    verify-wait seconds).
    """
    gen_s = wait_s = 0.0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdpg-verify") as pool:
        while True:
            live = [e for e in episodes if not e.done]
            if not live:
                return gen_s, wait_s
            fitted = [fit_prefix(e.prompt_ids, [t.completion_ids + t.observation_ids for t in e.turns],
                                 max_prompt_length) for e in live]
            prefixes = [f[0] for f in fitted]
            futures, outs = [], []
            t0 = time.perf_counter()
            for start in range(0, len(live), chunk_size):
                chunk = generate_fn(prefixes[start:start + chunk_size])
                outs.extend(chunk)
                texts = [decode_text(tokenizer, ids) for ids, _ in chunk]
                futures.append(pool.submit(_verify, live[start:start + chunk_size], envs, texts))
            gen_s += time.perf_counter() - t0
            t1 = time.perf_counter()
            verdicts = [v for f in futures for v in f.result()]
            wait_s += time.perf_counter() - t1
            for e, (prefix, task_len, dropped, cut), (ids, clipped), (text, result) in zip(live, fitted, outs,
                                                                                          verdicts):
                env = envs[e.source]
                attempt = len(e.turns) + 1
                obs, reward, done = env.outcome(e.problem, text, result, attempt)
                obs_ids = [] if done else observation_ids(tokenizer, env, obs, text, ids, chat_template_kwargs)
                e.turns.append(Turn(prefix, list(ids), bool(clipped), text, result,
                                    env.build_context(e.problem, result) or "", obs, obs_ids, float(reward),
                                    task_len, dropped, cut))
                e.done = done


def fit_prefix(task_ids: list[int], segments: Sequence[list[int]],
               budget: int | None) -> tuple[list[int], int, int, int]:
    """A turn's prefix within ``budget`` tokens: the task prompt, then the finished turns' ``segments``
    (completion + observation ids each), dropping the oldest segments first but always keeping the latest one,
    then left-truncating what is still over (as a single-turn prompt is).

    Returns (prefix, task-prompt tokens at its start, segments dropped, tokens left-truncated).
    """
    n = len(segments)
    total = len(task_ids) + sum(len(s) for s in segments)
    dropped = 0
    if budget is not None:
        while dropped < n - 1 and total > budget:
            total -= len(segments[dropped])
            dropped += 1
    prefix = list(task_ids) + [i for s in segments[dropped:] for i in s]
    cut = 0 if budget is None else max(0, len(prefix) - budget)
    return prefix[cut:], max(0, len(task_ids) - cut), dropped, cut


def _verify(chunk: list[Episode], envs: Sequence[Any], texts: list[str]) -> list[tuple[str, VerifierResult]]:
    out: dict[int, tuple[str, VerifierResult]] = {}
    for s in sorted({e.source for e in chunk}):
        mine = [i for i, e in enumerate(chunk) if e.source == s]
        results = envs[s].verify_batch([chunk[i].problem for i in mine], [texts[i] for i in mine])
        if len(results) != len(mine):
            raise RuntimeError(f"verify_batch returned {len(results)} results for {len(mine)} completions")
        clipped = [envs[s]._clip(texts[i]) for i in mine]
        out.update({i: (c, r) for i, c, r in zip(mine, clipped, results)})
    return [out[i] for i in range(len(chunk))]


# ---------------------------------------------------------------------------------------------- the batch
@dataclass
class EpisodeBatch(RolloutBatch):
    """A :class:`RolloutBatch` whose rows are the model turns of E = B·G episodes (episode-major, turn order).

    Row fields are per turn: ``prompt_ids`` the turn's whole prefix, ``completion_ids`` its sampled ids,
    ``prompts`` the task's prompt text, ``rewards`` the turn's own verifier score, ``contexts`` its privileged
    context, ``group_index`` its episode's group. ``group_size`` is G (episodes per problem).
    """

    episode_index: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    """(N,) long: the episode of each row (episodes of group b are ``b*G : (b+1)*G``)."""
    turn_index: list[int] = field(default_factory=list)
    """1-based attempt number of each row."""
    task_prompt_ids: list[list[int]] = field(default_factory=list)
    """Per row: the encoded task prompt (the prefix before any turn)."""
    task_lengths: list[int] = field(default_factory=list)
    """Per row: how many leading ``prompt_ids`` are the task prompt; the transcript follows them (fewer than
    ``len(task_prompt_ids[i])`` when the prefix was left-truncated to the prompt budget)."""
    dropped_attempts: list[int] = field(default_factory=list)
    """Per row: earlier attempts left out of its prefix to fit the prompt budget."""
    cut_tokens: list[int] = field(default_factory=list)
    """Per row: tokens left-truncated off its prefix after dropping attempts."""
    observations: list[str] = field(default_factory=list)
    """Per row: the feedback observation that followed the turn, as text (chat: the messages' contents; "" on an
    episode's last turn)."""
    episode_rewards: Tensor = field(default_factory=lambda: torch.zeros(0))
    """(E,) fp32: each episode's reward (the env's reward at its last step)."""
    max_attempts: int = 1


def collect_episodes(model, tokenizer, sources: Sequence[EnvSource], weights: Sequence[float], *, step: int,
                     num_prompts: int, group_size: int, gen: dict[str, Any], generation_batch_size: int,
                     max_prompt_length: int, chat_template_kwargs: dict | None = None, seed: int = 0,
                     rank: int = 0) -> EpisodeBatch:
    """``num_prompts`` groups of ``group_size`` episodes on multi-turn sources (problems drawn exactly as
    :func:`~sdpg_train.core.rollout.collect_rollouts` draws them), played to the end, as an :class:`EpisodeBatch`."""
    which = choose_sources(num_prompts, weights, seed, rank, step)
    problems = [sources[s].sample(problem_seed(seed, rank, step, b)) for b, s in enumerate(which)]
    prompts = [sources[s].prompt(p) for s, p in zip(which, problems)]
    encoded = [encode_prompt(tokenizer, t, chat_template_kwargs)[-max_prompt_length:] for t in prompts]
    episodes = [Episode(which[b], problems[b], prompts[b], encoded[b]) for b in range(num_prompts)
                for _ in range(group_size)]
    envs = [multiturn_env(s) for s in sources]
    gen_s, wait_s = run_episodes(episodes, envs, tokenizer, lambda p: generate(model, tokenizer, p, gen),
                                 chunk_size=generation_batch_size, chat_template_kwargs=chat_template_kwargs,
                                 max_prompt_length=max_prompt_length)
    return episode_batch(episodes, [s.name for s in sources], group_size, gen_s, wait_s)


def observation_text(observation: str | list[dict[str, str]]) -> str:
    """An observation as text: the string itself, or chat messages' contents joined by blank lines."""
    return observation if isinstance(observation, str) else "\n\n".join(m["content"] for m in observation)


def episode_batch(episodes: Sequence[Episode], source_names: Sequence[str], group_size: int,
                  gen_seconds: float = 0.0, verify_wait_seconds: float = 0.0) -> EpisodeBatch:
    """Flatten played episodes into an :class:`EpisodeBatch` (one row per model turn)."""
    rows = [(k, e, t, turn) for k, e in enumerate(episodes) for t, turn in enumerate(e.turns, 1)]
    if not rows:
        raise ValueError("no turns to train on")
    return EpisodeBatch(
        prompt_ids=[turn.prefix_ids for _, _, _, turn in rows],
        completion_ids=[turn.completion_ids for _, _, _, turn in rows],
        prompts=[e.prompt for _, e, _, _ in rows],
        completions=[turn.completion for _, _, _, turn in rows],
        rewards=torch.tensor([float(turn.result.score) for _, _, _, turn in rows], dtype=torch.float32),
        statuses=[turn.result.status for _, _, _, turn in rows],
        contexts=[turn.context for _, _, _, turn in rows],
        answers=[e.problem.answer for _, e, _, _ in rows],
        group_index=torch.tensor([k // group_size for k, _, _, _ in rows], dtype=torch.long),
        sources=[source_names[e.source] for _, e, _, _ in rows],
        clipped=torch.tensor([turn.clipped for _, _, _, turn in rows], dtype=torch.bool),
        group_size=group_size,
        problems=[e.problem for _, e, _, _ in rows],
        results=[turn.result for _, _, _, turn in rows],
        gen_seconds=gen_seconds,
        verify_wait_seconds=verify_wait_seconds,
        episode_index=torch.tensor([k for k, _, _, _ in rows], dtype=torch.long),
        turn_index=[t for _, _, t, _ in rows],
        task_prompt_ids=[e.prompt_ids for _, e, _, _ in rows],
        task_lengths=[turn.task_len for _, _, _, turn in rows],
        dropped_attempts=[turn.dropped_attempts for _, _, _, turn in rows],
        cut_tokens=[turn.cut_tokens for _, _, _, turn in rows],
        observations=[observation_text(turn.observation) for _, _, _, turn in rows],
        episode_rewards=torch.tensor([e.reward for e in episodes], dtype=torch.float32),
        max_attempts=max(len(e.turns) for e in episodes),
    )


# ---------------------------------------------------------------------------------------------- learner hooks
def episode_advantages(batch: EpisodeBatch, scale: str = "group") -> tuple[Tensor, dict[str, float]]:
    """Group-relative advantages of the episodes' rewards, broadcast to each episode's turns -> ((N,), stats)."""
    adv, stats = group_advantages(batch.episode_rewards, batch.group_size, scale=scale)  # (E,)
    return adv[batch.episode_index], stats


def build_episode_teacher_view(tokenizer, batch: EpisodeBatch, **kwargs: Any):
    """The teacher view of every turn: ``template(turn context, task prompt)`` followed by the turn's transcript
    exactly as the student saw it (the ids after the task prompt in its prefix: the earlier turns and observations
    kept within the prompt budget); a turn without context gets the student's prefix itself. ``kwargs`` as
    :func:`~sdpg_train.core.teacher.build_teacher_view`."""
    from sdpg_train.core.teacher import build_teacher_view

    first = dataclasses.replace(batch, prompt_ids=batch.task_prompt_ids)
    view = build_teacher_view(tokenizer, first, **kwargs)
    view.prompt_ids = [None if ids is None else list(batch.prompt_ids[i]) if not view.contexts[i]
                       else list(ids) + batch.prompt_ids[i][batch.task_lengths[i]:]
                       for i, ids in enumerate(view.prompt_ids)]
    return view


def episode_samples(batch: EpisodeBatch, distilled: Sequence[bool], teacher_contexts: Sequence[str] | None,
                    limit: int) -> list[dict[str, Any]]:
    """``samples.jsonl`` rows of the first ``limit`` episodes, one per episode: its source, task prompt, reward
    (the episode's) and final status, and the transcript: per turn the completion, the verifier's status and score,
    the feedback observation that followed, whether it was distilled and the privileged context (the one the
    teacher saw when distilled, else the env's)."""
    rows: list[dict[str, Any]] = []
    for i, k in enumerate(batch.episode_index.tolist()):
        if k >= limit:
            break
        if k == len(rows):
            rows.append({"source": batch.sources[i], "prompt": batch.prompts[i],
                         "reward": float(batch.episode_rewards[k]), "status": "", "turns": []})
        ctx = teacher_contexts[i] if distilled[i] and teacher_contexts is not None else batch.contexts[i]
        rows[k]["turns"].append({"attempt": batch.turn_index[i], "completion": batch.completions[i],
                                 "status": batch.statuses[i], "score": float(batch.rewards[i]),
                                 "feedback": batch.observations[i], "distilled": bool(distilled[i]),
                                 "privileged_context": ctx})
        rows[k]["status"] = batch.statuses[i]
    return rows


def episode_outcomes(batch: EpisodeBatch) -> list[list[tuple[str, bool]]]:
    """Per episode, ``(status, passed)`` of each attempt in order."""
    out: list[list[tuple[str, bool]]] = [[] for _ in range(len(batch.episode_rewards))]
    for k, r in zip(batch.episode_index.tolist(), batch.results):
        out[k].append((r.status, bool(r.passed)))
    return out


def turn_metrics(outcomes: Sequence[Sequence[tuple[str, bool]]], max_turns: int) -> dict[str, float]:
    """Per turn t (1-based, episodes that stopped earlier keep their last attempt's verdict): ``pass@1/turn{t}``,
    ``compile_error_rate/turn{t}`` and ``repair_rate/turn{t}`` (failed first attempts passing by turn t)."""
    n = max(len(outcomes), 1)
    failed_first = [o for o in outcomes if o and not o[0][1]]
    m: dict[str, float] = {}
    for t in range(1, max_turns + 1):
        at = [o[min(t, len(o)) - 1] for o in outcomes if o]
        m[f"pass@1/turn{t}"] = sum(p for _, p in at) / n
        m[f"compile_error_rate/turn{t}"] = sum(s == COMPILE_ERROR for s, _ in at) / n
        m[f"repair_rate/turn{t}"] = (sum(o[min(t, len(o)) - 1][1] for o in failed_first) / len(failed_first)
                                     if failed_first else 0.0)
    return m


def episode_metrics(batch: EpisodeBatch) -> dict[str, float]:
    """Step metrics of a multi-turn batch: episode reward and length, and per-turn outcomes (``episode/...``)."""
    outcomes = episode_outcomes(batch)
    m = {f"episode/{k}": v for k, v in turn_metrics(outcomes, batch.max_attempts).items()}
    m["episode/turns"] = sum(len(o) for o in outcomes) / max(len(outcomes), 1)
    m["episode/reward"] = float(batch.episode_rewards.mean())
    # prompt budget: model turns whose prefix was shortened, earlier attempts dropped, prefixes left-truncated
    m["episode/truncated_prefixes"] = float(sum(d > 0 or c > 0 for d, c in zip(batch.dropped_attempts,
                                                                                 batch.cut_tokens)))
    m["episode/dropped_attempts"] = float(sum(batch.dropped_attempts))
    m["episode/left_truncated_prefixes"] = float(sum(c > 0 for c in batch.cut_tokens))
    return m
