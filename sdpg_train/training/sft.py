"""Supervised warm start on procedural tasks: prompt → gold completion, loss on completion tokens only.

A fraction of the examples show the problem in the trainer's *teacher view* — the same ``teacher_template``,
the same privileged context (``env.build_context``, stripped and truncated exactly as ``sdpg_train.core.teacher``
does) and the same chat template — so after the warm start the model can use privileged context, and the
self-teacher of SDPG is better than the student. :class:`TeacherViewEnv` presents held-out problems in that
view so ``sdpg_train.evaluation.evaluate.evaluate`` can measure the teacher-vs-student gap.

Exactness: the teacher-view prompt ids are built by :func:`sdpg_train.core.teacher.teacher_prompt_ids` on the
context of :func:`sdpg_train.core.teacher.truncate_context`; this matches the trainer's teacher view whenever the
env's context does not depend on the attempt (``context="reference"``, what the demo uses). With a context
that includes verifier feedback, the warm start shows the reference part only.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import torch
from tqdm.auto import tqdm

from sdpg_train.config import DEFAULT_TEACHER_TEMPLATE
from sdpg_train.core.multiturn_rollout import is_multiturn_env, observation_ids
from sdpg_train.core.rollout import encode_prompt, pad_token_id
from sdpg_train.core.teacher import teacher_prompt_ids, truncate_context

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SFTConfig:
    """Knobs of the supervised warm start."""

    steps: int = 300
    """Optimizer steps."""
    batch_size: int = 32
    """Examples per step (student and teacher views together)."""
    learning_rate: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, then cosine to 10% of it)."""
    warmup_steps: int = 20
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    context_fraction: float = 0.4
    """Fraction of examples shown in the teacher view (privileged context in the prompt)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    seed: int = 0
    """Seeds the problem draws and the view choice."""
    repair_fraction: float = 0.0
    """Fraction of the examples drawn from a multi-turn (repair) env shown as its *second* attempt: the task, a
    wrong first attempt, the env's real feedback on it, then the gold program (:func:`repair_example_ids`). Without
    them a warm start has never seen feedback, and its second attempts are not programs."""
    repair_pool: int = 512
    """Wrong first attempts verified up front per repair env (drawn with replacement): another problem's gold
    program, or a gold program cut short (a compile error)."""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"SFTConfig: steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        for name in ("context_fraction", "repair_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SFTConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.repair_pool < 1:
            raise ValueError(f"SFTConfig.repair_pool must be >= 1, got {self.repair_pool}")
        if self.learning_rate <= 0:
            raise ValueError(f"SFTConfig.learning_rate must be > 0, got {self.learning_rate}")


@dataclass(frozen=True)
class TeacherFormat:
    """How the trainer renders the teacher view (copy these from the ``SDPGConfig`` the RL run uses)."""

    template: str = DEFAULT_TEACHER_TEMPLATE
    max_context_length: int = 1024
    chat_template_kwargs: dict | None = None


# ---------------------------------------------------------------------------- the teacher view
def privileged_context(env: Any, problem: Any, result: Any = None) -> str:
    """The env's privileged context as the trainer's ``env`` context source passes it (stripped)."""
    return (env.build_context(problem, result) or "").strip()


def teacher_text(tokenizer, env: Any, problem: Any, fmt: TeacherFormat) -> str:
    """The user turn of the teacher view for ``problem`` (the student prompt when the context is empty)."""
    prompt = env.prompt_for(problem)
    raw = privileged_context(env, problem)
    if not raw:
        return prompt
    ctx, _, _ = truncate_context(tokenizer, raw, fmt.max_context_length)
    return fmt.template.format(prompt=prompt, context=ctx)


def example_ids(tokenizer, env: Any, problem: Any, *, teacher: bool, fmt: TeacherFormat
                ) -> tuple[list[int], list[int]]:
    """``(prompt ids, completion ids)`` for one supervised example; the completion ends with EOS.

    The prompt ids are exactly what the trainer feeds: the student prompt (``encode_prompt``) or, with
    ``teacher=True``, the teacher prompt (``teacher_prompt_ids``, which checks the generation-prompt tail).
    """
    return task_prompt_ids(tokenizer, env, problem, teacher=teacher, fmt=fmt), gold_ids(tokenizer, env, problem)


def task_prompt_ids(tokenizer, env: Any, problem: Any, *, teacher: bool, fmt: TeacherFormat,
                    result: Any = None) -> list[int]:
    """The student prompt (``encode_prompt``) or, with ``teacher=True``, the teacher prompt on the privileged
    context the env gives after ``result`` (None: before any attempt)."""
    prompt = env.prompt_for(problem)
    student = encode_prompt(tokenizer, prompt, fmt.chat_template_kwargs)
    if not teacher:
        return student
    raw = privileged_context(env, problem, result)
    ctx = truncate_context(tokenizer, raw, fmt.max_context_length)[0] if raw else ""
    return teacher_prompt_ids(tokenizer, prompt, ctx, student, template=fmt.template,
                              chat_template_kwargs=fmt.chat_template_kwargs)


def gold_ids(tokenizer, env: Any, problem: Any) -> list[int]:
    """The gold completion's ids, ending with EOS."""
    gold = env.gold_completion(problem)
    return list(tokenizer(gold, add_special_tokens=False)["input_ids"]) + [int(tokenizer.eos_token_id)]


# ---------------------------------------------------------------------------- repair transcripts
@dataclass(frozen=True)
class WrongAttempt:
    """A verified wrong first attempt at ``problem`` (``completion`` scored ``result``)."""

    problem: Any
    completion: str
    result: Any


def wrong_attempts(env: Any, rng: random.Random, n: int) -> list[WrongAttempt]:
    """``n`` wrong first attempts at train problems of ``env``, verified by the env in batches: mostly another
    problem's gold program (it runs but answers wrongly), one in five a gold program cut short (a compile error).
    Draws that pass anyway are replaced."""
    out: list[WrongAttempt] = []
    for _ in range(20):
        need = n - len(out)
        if need <= 0:
            break
        problems, texts = [], []
        for _ in range(max(need + need // 4, 8)):
            problem = env.problem_at(rng.randrange(10**9))
            gold = env.gold_completion(problem)
            if rng.random() < 0.2 and len(gold) > 1:
                text = gold[: rng.randrange(1, len(gold))]
            else:
                text = env.gold_completion(env.problem_at(rng.randrange(10**9)))
            problems.append(problem)
            texts.append(text)
        results = env.verify_batch(problems, texts)
        out += [WrongAttempt(p, t, r) for p, t, r in zip(problems, texts, results) if not r.passed][:need]
    if len(out) < n:
        raise ValueError(f"{type(env).__name__}: could not draw {n} wrong first attempts (its problems' gold "
                         "programs pass each other's tests)")
    return out


def repair_example_ids(tokenizer, env: Any, attempt: WrongAttempt, *, teacher: bool, fmt: TeacherFormat
                       ) -> tuple[list[int], list[int]]:
    """``(prefix ids, completion ids)`` of a second attempt, token for token what a multi-turn rollout builds.

    The prefix is the task prompt (``encode_prompt``), the wrong attempt's ids with EOS (as sampled), and the
    observation the env returns for it (``env.outcome`` → ``observation_ids``); in the teacher view the task prompt
    is the teacher prompt of *that* attempt's privileged context, as in ``build_episode_teacher_view``. The
    completion is the gold program with EOS.
    """
    problem, text = attempt.problem, attempt.completion
    task = task_prompt_ids(tokenizer, env, problem, teacher=teacher, fmt=fmt, result=attempt.result)
    wrong = list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [int(tokenizer.eos_token_id)]
    obs, _, done = env.outcome(problem, text, attempt.result, 1)
    if done:
        raise ValueError(f"{type(env).__name__}: a failed first attempt ended the episode (max_attempts < 2?)")
    obs_ids = observation_ids(tokenizer, env, obs, text, wrong, fmt.chat_template_kwargs)
    return task + wrong + obs_ids, gold_ids(tokenizer, env, problem)


class TeacherViewEnv:
    """An env facade whose prompts are the teacher view (privileged context included); verification unchanged.

    Pass it to ``evaluate`` to score the model *as the teacher*; comparing with the plain env gives the gap.
    """

    def __init__(self, env: Any, tokenizer, fmt: TeacherFormat, env_id: str | None = None) -> None:
        self.env = getattr(env, "unwrapped", env)
        self.tokenizer, self.fmt = tokenizer, fmt
        spec = getattr(env, "spec", None)
        base_id = env_id or (spec.id if spec is not None else type(self.env).__name__)
        kwargs = dict(getattr(spec, "kwargs", None) or {})
        self.spec = SimpleNamespace(id=f"{base_id}+teacher-view", kwargs={**kwargs, "teacher_template": fmt.template})
        self.task_kind = getattr(self.env, "task_kind", None)
        self.num_problems = getattr(self.env, "num_problems", None)

    @property
    def unwrapped(self) -> TeacherViewEnv:
        return self

    def problem_at(self, index: int) -> Any:
        return self.env.problem_at(index)

    def prompt_for(self, problem: Any) -> str:
        return teacher_text(self.tokenizer, self.env, problem, self.fmt)

    def verify_batch(self, problems: Sequence[Any], completions: Sequence[str]) -> list[Any]:
        return self.env.verify_batch(problems, completions)

    def close(self) -> None:
        """The wrapped env belongs to the caller; nothing to release."""


# ---------------------------------------------------------------------------- batches
def collate(examples: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (prompt and padding masked with -100)."""
    width = max(len(p) + len(c) for p, c in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(examples), width), dtype=torch.long)  # (B, T)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    for i, (p, c) in enumerate(examples):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c, dtype=torch.long)
        mask[i, :n] = 1
        labels[i, len(p) : n] = torch.tensor(c, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def draw_batch(tokenizer, envs: Sequence[Any], rng: random.Random, cfg: SFTConfig, fmt: TeacherFormat,
               pools: Sequence[Sequence[WrongAttempt] | None] | None = None
               ) -> list[list[tuple[list[int], list[int]]]]:
    """One step's examples split into micro-batches by view (student, teacher) and turn (first, repair) to keep
    padding small. ``pools[i]``: env ``i``'s wrong first attempts (None: no repair examples from it)."""
    views: dict[tuple[bool, bool], list[tuple[list[int], list[int]]]] = {}
    for _ in range(cfg.batch_size):
        i = rng.randrange(len(envs))
        env, pool = envs[i], (pools[i] if pools else None)
        repair = bool(pool) and cfg.repair_fraction > 0 and rng.random() < cfg.repair_fraction
        item = pool[rng.randrange(len(pool))] if repair else env.problem_at(rng.randrange(10**9))
        teacher = rng.random() < cfg.context_fraction
        make = repair_example_ids if repair else example_ids
        views.setdefault((teacher, repair), []).append(make(tokenizer, env, item, teacher=teacher, fmt=fmt))
    return [views[k] for k in sorted(views)]


def _completion_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over completion tokens and their count."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
    targets = batch["labels"][:, 1:]  # (B, T-1): token t+1 predicted at t
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((targets != IGNORE_INDEX).sum())


def _lr_factor(step: int, cfg: SFTConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))


# ---------------------------------------------------------------------------- training
def supervised_warm_start(model, tokenizer, envs: Sequence[Any], cfg: SFTConfig, fmt: TeacherFormat | None = None,
                          *, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` in place on gold completions of ``envs``' train problems; returns the loss history.

    Args:
        envs: ``ReasoningEnv`` instances (``problem_at``, ``prompt_for``, ``gold_completion``, ``build_context``);
            each step draws every example's env uniformly.
        fmt: the teacher view to imitate (the RL config's template and context budget).

    Returns:
        ``{"config", "losses" (mean completion-token loss per step), "seconds", "tokens"}``.
    """
    if not envs:
        raise ValueError("supervised_warm_start needs at least one env")
    fmt = fmt or TeacherFormat()
    envs = [getattr(e, "unwrapped", e) for e in envs]
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    pad = pad_token_id(tokenizer)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: _lr_factor(k, cfg))
    losses: list[float] = []
    tokens, t0 = 0, time.perf_counter()
    pool_rng = random.Random(cfg.seed + 1)  # its own stream: repair_fraction=0 draws exactly as before
    pools = [wrong_attempts(e, pool_rng, cfg.repair_pool) if cfg.repair_fraction > 0 and is_multiturn_env(e) else None
             for e in envs]
    model.train()
    with tqdm(total=cfg.steps, desc="warm start (SFT)", unit="step", disable=not progress) as bar:
        for _ in range(cfg.steps):
            micro = [collate(m, pad) for m in draw_batch(tokenizer, envs, rng, cfg, fmt, pools)]
            n_tok = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro)
            total = 0.0
            for b in micro:
                loss, _ = _completion_loss(model, b)
                (loss / n_tok).backward()
                total += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(total / n_tok)
            tokens += n_tok
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}")
    model.eval()
    return {"config": asdict(cfg), "losses": losses, "seconds": time.perf_counter() - t0, "tokens": tokens}
