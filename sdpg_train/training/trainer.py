"""``SDPGTrainer``: the training loop, readable top to bottom, the same for every method.

One step (:meth:`SDPGTrainer.step`): rollout → advantages → teacher view → old/ref log-probs → for each
micro-batch: teacher forward (no grad), student forward, loss, backward → optimizer step → log. What differs
between methods (SDPG, GRPO, PPO, ...) is the :class:`~sdpg_train.methods.base.Method` of ``args.loss``
(``sdpg_train/methods/``): its declarations and hooks, and its loss. Everything else lives in its own module:
``core.rollout``, ``core.advantages``, ``core.teacher``, ``core.model_io`` + ``core.head``, ``training.checkpoint``,
``training.logging``, ``training.distributed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sdpg_train.config import SDPGConfig
from sdpg_train.core.advantages import group_advantages
from sdpg_train.core.head import HeadOutput, sdpg_head, sdpg_head_loss
from sdpg_train.core.layout import ViewLayout
from sdpg_train.core.lora import apply_lora
from sdpg_train.core.model_io import (
    CompletionModel,
    MicroBatch,
    is_checkpointing,
    load_model_and_tokenizer,
    plan_step,
    sampled_logprobs,
)
from sdpg_train.core.multiturn_rollout import (
    EpisodeBatch,
    build_episode_teacher_view,
    check_multiturn,
    collect_episodes,
    episode_advantages,
    episode_metrics,
    episode_samples,
)
from sdpg_train.core.precision import setup_precision
from sdpg_train.core.rollout import DatasetSource, RolloutBatch, collect_rollouts, make_sources, pad_token_id
from sdpg_train.core.teacher import build_teacher_view, ema_update_, make_teacher_and_ref
from sdpg_train.methods import get_method
from sdpg_train.methods.base import Method
from sdpg_train.methods.sdpg import beta_schedule
from sdpg_train.training.checkpoint import last_checkpoint, load_checkpoint, save_checkpoint, seed_everything
from sdpg_train.training.distributed import (
    all_reduce_sum,
    barrier,
    full_tensor,
    init_distributed,
    is_fsdp,
    wrap_model,
)
from sdpg_train.training.logging import check_backends, make_logger, progress_postfix, step_metrics, write_samples
from sdpg_train.training.run_dir import prepare_fresh_run, truncate_logs, warn_config_changes, write_run_info


def compute_loss(cfg: SDPGConfig, out, mb: MicroBatch, beta: float, num_tokens: float, **extra: Any):
    """The single loss dispatch point: per-token head outputs of one micro-batch -> (loss, stats), by the method of
    ``cfg.loss`` (:meth:`Method.compute_loss`). ``extra`` carries the method's per-token tensors from
    :meth:`Method.loss_inputs` (PPO values, divergences)."""
    return get_method(cfg.loss).compute_loss(cfg, out, mb, beta, num_tokens, **extra)


class SDPGTrainer:
    """Train an ``AutoModelForCausalLM`` on verifier environments with SDPG (``args.loss="sdpg"``) or GRPO.

    Args:
        model: an ``AutoModelForCausalLM`` instance, or a hub id / local path (``"tiny"``: the offline tiny model);
            None uses ``args.model_name_or_path``.
        env: an env id, a ``ReasoningEnv`` instance, or a list of either (weights from ``args.env_weights``);
            None uses ``args.env_ids``.
        args: the :class:`SDPGConfig` (default config when None).
        processing_class: the tokenizer (loaded from the model path when None).
        reward_funcs, train_dataset: TRL style instead of ``env``: callables ``fn(prompts, completions, **columns)``
            (summed) over a dataset with a text ``prompt`` column (optional ``privileged_context`` column).
    """

    def __init__(self, model: Any = None, env: Any = None, args: SDPGConfig | None = None,
                 processing_class: Any = None, reward_funcs: Any = None, train_dataset: Any = None) -> None:
        self.args = args = args or SDPGConfig()
        check_backends(args.report_to)  # a missing wandb/tensorboard fails now, not after the model has loaded
        self.dist = init_distributed(args.device)
        seed_everything(args.seed)
        lm, self.tokenizer = load_model_and_tokenizer(
            model, processing_class, name_or_path=args.model_name_or_path, dtype=args.torch_dtype, seed=args.seed,
            gradient_checkpointing=args.gradient_checkpointing, low_precision_params=args.low_precision_params,
            disable_dropout=args.disable_dropout)
        lm, self.precision = setup_precision(lm, args.torch_dtype, args.low_precision_params, self.dist.device)
        if args.lora_r:  # adapters on the fp32 (or low-precision) weights; the base stays frozen
            lm = apply_lora(lm, args)
        self.policy = CompletionModel(lm, self.precision.compute_dtype).to(self.dist.device)
        self.teacher, self.ref = make_teacher_and_ref(self.policy, args.teacher_model_kind, args.needs_ref,
                                                      frozen_dtype=self.precision.compute_dtype)
        self.train_model = wrap_model(self.policy, self.dist, args.distributed_strategy)  # DDP wrapper or FSDP2
        self.sharded = is_fsdp(self.train_model)
        if (reward_funcs is None) != (train_dataset is None):
            raise ValueError("reward_funcs and train_dataset go together (TRL style); or pass env=...")
        if reward_funcs is not None:
            if env is not None:
                raise ValueError("pass either env=... or reward_funcs + train_dataset, not both")
            self.sources, self.weights = [DatasetSource(train_dataset, reward_funcs)], [1.0]
        else:
            self.sources, self.weights = make_sources(env, args.env_ids, args.env_kwargs, args.env_weights)
        self.multiturn = check_multiturn(self.sources, args)  # repair envs: episodes (core.multiturn_rollout)
        self.method: Method = get_method(args.loss)(self)  # value head, RLSD/SDPO teacher passes, encoder teacher
        self.optimizer, self.scheduler = make_optimizer(self.policy, args, self.method.extra_parameters())
        self.pad_id = pad_token_id(self.tokenizer)
        self.output_dir = Path(args.output_dir or _default_run_dir(args, self.sources))
        self.global_step = 0
        self._saved_step = -1
        seed_everything(args.seed + self.dist.rank)  # sampling differs per rank, model init did not

    @property
    def model(self) -> torch.nn.Module:
        """The trained ``AutoModelForCausalLM``."""
        return self.policy.lm

    # ------------------------------------------------------------------ the loop
    def train(self, resume_from_checkpoint: bool | str | Path | None = None) -> dict[str, float]:
        """Run ``max_steps`` steps (continuing from a checkpoint when asked); returns the last step's metrics."""
        args = self.args
        resumed_from = self._maybe_resume(resume_from_checkpoint)
        if resumed_from is None and self.global_step == 0:  # a fresh run: never mix it with an earlier one
            if self.dist.is_main:
                prepare_fresh_run(self.output_dir, args.overwrite_output_dir)
            barrier(self.dist)
        if self.dist.is_main:
            write_run_info(self.output_dir, args.to_dict(), resumed_from, self.global_step)
        logger = make_logger(args.report_to, self.output_dir, run_name=args.run_name or self.output_dir.name,
                             project=args.project, config=args.to_dict(), rank=self.dist.rank)
        bar = tqdm(total=args.max_steps, initial=self.global_step, desc="sdpg train", unit="step",
                   disable=args.disable_tqdm or not self.dist.is_main)
        metrics: dict[str, float] = {}
        try:
            while self.global_step < args.max_steps:
                metrics = self.step(self.global_step + 1)
                self.global_step += 1
                if self.global_step % args.logging_steps == 0 or self.global_step == args.max_steps:
                    logger.log(metrics, self.global_step)
                bar.update(1)
                bar.set_postfix(progress_postfix(metrics))
                if args.save_steps and self.global_step % args.save_steps == 0:
                    self.save_checkpoint()
            if args.save_final and self._saved_step != self.global_step:
                self.save_checkpoint()
        finally:
            bar.close()
            logger.close()
        return metrics

    def step(self, step: int) -> dict[str, float]:
        """One SDPG step: rollout, then :meth:`learn` on it."""
        t0 = time.perf_counter()
        # 1. rollout: G completions per prompt, verified (verification overlaps generation)
        batch = self._rollout(step)
        return self.learn(batch, step, t0=t0)

    def learn(self, batch: RolloutBatch, step: int, *, t0: float | None = None) -> dict[str, float]:
        """Advantages, teacher view, old/ref log-probs, update(s) and metrics for one rollout batch."""
        args, t1 = self.args, time.perf_counter()
        t0 = t1 if t0 is None else t0
        beta = beta_schedule(step, args.effective_beta_base, args.beta_warmup_steps, args.beta_decay_steps,
                             args.max_steps)
        # 2. group-relative advantages
        episodes = isinstance(batch, EpisodeBatch)  # multi-turn: one row per model turn, advantages per episode
        adv, adv_stats = (episode_advantages(batch, args.advantage_scale) if episodes else
                          group_advantages(batch.rewards, batch.group_size, scale=args.advantage_scale))
        # 3. teacher view: template(privileged context, prompt) ++ the exact completion ids
        tview = None
        if self.method.needs_teacher_view(beta):  # with gate_positive only samples with A > 0 need a teacher
            tview = (build_episode_teacher_view if episodes else build_teacher_view)(
                self.tokenizer, batch, sources=args.context_sources, template=args.teacher_template,
                max_context_length=args.max_context_length, success_threshold=args.success_reward_threshold,
                chat_template_kwargs=args.chat_template_kwargs,
                active=self.method.teacher_active(batch, adv))
        skip = self.method.zero_gradient_samples(adv, beta) if args.skip_zero_advantage else None
        if skip is not None and self.dist.enabled:  # every rank must run the same backward passes (DDP/FSDP)
            skip = None
        minis = plan_step(batch, tview.prompt_ids if tview is not None else None, adv,
                          num_mini_batches=args.num_mini_batches, max_tokens=args.max_tokens_per_micro_batch,
                          pad_id=self.pad_id, device=self.dist.device, skip=None if skip is None else skip.tolist(),
                          layout=self._layout)
        # 4. old (and reference) log-probs once per step, through the same code path as the update; with a single
        #    update per step the old policy IS the current one, so old = current log-prob detached (bitwise equal)
        t2 = time.perf_counter()
        for mb in (mb for mini in minis for mb in mini):
            if args.num_mini_batches > 1:
                mb.old_logp = sampled_logprobs(self.policy, mb.student, **self._head_kw).logp
            if self.ref is not None and not args.full_ref_kl:
                mb.ref_logp = sampled_logprobs(self.ref, mb.student, **self._head_kw).logp
        mode_metrics = self.method.prepare(batch, tview, minis, step)  # PPO values + GAE, RLSD teacher log-probs
        # 5. update: per mini-batch, accumulate micro-batches, one optimizer step
        t3 = time.perf_counter()
        acc: Counter = Counter()
        for mini in minis:
            self._update(mini, beta, acc)
        if args.teacher_model_kind == "ema" and self.teacher is not None:
            ema_update_(self.teacher, self.policy, args.teacher_update_rate)
        mode_metrics = {**mode_metrics, **self.method.after_step(batch, tview, minis)}
        # 6. metrics
        t4 = time.perf_counter()
        timings = {"rollout_s": t1 - t0, "verify_wait_s": batch.verify_wait_seconds, "teacher_view_s": t2 - t1,
                   "logprob_pass_s": t3 - t2, "update_s": t4 - t3, "step_s": t4 - t0}
        metrics = step_metrics(batch, tview, adv_stats, acc, timings, beta, self.scheduler.get_last_lr()[0],
                               self.dist.device)
        metrics.update(mode_metrics)
        if episodes:
            metrics.update(episode_metrics(batch))
        metrics.update(self._skip_metrics(batch, minis))
        self._log_samples(step, batch, tview)
        return metrics

    def _update(self, micro_batches: list[MicroBatch], beta: float, acc: Counter) -> None:
        """Gradient accumulation over micro-batches, normalised by the GLOBAL completion-token count (skipped
        samples' tokens included: :class:`MiniBatch`)."""
        args = self.args
        local = getattr(micro_batches, "num_tokens", None)
        num_tokens = all_reduce_sum(sum(mb.num_tokens for mb in micro_batches) if local is None else local,
                                    self.dist)
        scale = self.dist.world_size  # DDP averages gradients over ranks; the loss is a global token mean
        for k, mb in enumerate(micro_batches):
            sync = k == len(micro_batches) - 1
            skip_sync = self.dist.enabled and not sync and not self.sharded  # FSDP2 reduce-scatters every backward
            ctx = self.train_model.no_sync() if skip_sync else contextlib.nullcontext()
            with ctx:
                ts = time.perf_counter()
                h_student = self.train_model(**mb.student.inputs())  # (Ntok, H), student forward with grad
                tt = time.perf_counter()
                with torch.no_grad():  # teacher forward: stop-gradient, never part of the graph
                    h_teacher = self._teacher_hidden(mb, h_student)
                    h_ref = self.ref(**mb.student.inputs()) if args.full_ref_kl and self.ref is not None else None
                tu = time.perf_counter()
                loss, out, stats, reported = self._head_and_loss(mb, h_student, h_teacher, h_ref, beta, num_tokens)
                self.precision.backward(loss * scale)  # fp16: scaled by the loss scaler
                acc["time/teacher"] += tu - tt
                acc["time/student"] += time.perf_counter() - tu + tt - ts
            _accumulate(acc, out, stats, mb, reported)
            acc["train/micro_batches"] += 1
        if not micro_batches:  # every sample skipped (zero gradient): the optimizer still steps, as it would have
            for p in (*self.policy.parameters(), *self.method.extra_parameters()):
                if p.requires_grad and p.grad is None:
                    p.grad = torch.zeros_like(p)
        self.method.sync_gradients()
        self.precision.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [*self.policy.parameters(), *self.method.extra_parameters()],
            args.max_grad_norm if args.max_grad_norm > 0 else float("inf"))
        grad_norm = full_tensor(grad_norm)  # FSDP2: a DTensor norm over the shards
        finite = bool(torch.isfinite(grad_norm))
        self.precision.step(self.optimizer, finite)
        if finite:
            self.scheduler.step()
        else:  # skip the update (and its learning-rate tick) on inf/NaN gradients
            acc["train/skipped_updates"] += 1
        self.optimizer.zero_grad(set_to_none=True)
        acc["train/grad_norm"] += float(grad_norm)
        acc["train/updates"] += 1

    def _head_and_loss(self, mb: MicroBatch, h_student: torch.Tensor, h_teacher: torch.Tensor | None,
                       h_ref: torch.Tensor | None, beta: float, num_tokens: float):
        """One micro-batch's head + loss -> (loss to backward, HeadOutput, stats, loss value to report).

        With ``fused_head`` and a token-separable loss (``Method.token_separable``) the loss runs chunk by chunk inside
        :func:`sdpg_head_loss`, which forms the gradient in its forward pass (no recompute in backward); the
        reported loss and the stats then come from the same :func:`compute_loss` on the whole micro-batch's
        (detached) outputs, so the metrics are computed exactly as on the two-pass path.
        """
        args = self.args
        w = self.policy.head_weight()  # (V, H), the compute dtype on CUDA under mixed precision
        head_args = (h_student, w, mb.student.targets)
        tmod = self._teacher_module()
        t_bias = None if h_teacher is None else _detached(tmod.lm_head_bias)
        if h_teacher is not None and args.teacher_temperature != 1.0:
            # (h W^T + b) / τ == (h / τ) W^T + b / τ: sharpen the teacher's distribution without touching the head
            h_teacher = h_teacher / args.teacher_temperature
            t_bias = None if t_bias is None else t_bias / args.teacher_temperature
        head_kw = dict(teacher_hidden=h_teacher, ref_hidden=h_ref, lm_bias=self.policy.lm_head_bias,
                       teacher_weight=None if h_teacher is None else (
                           w.detach() if tmod is self.policy else tmod.head_weight().detach()),
                       teacher_bias=t_bias,
                       ref_weight=None if h_ref is None else self.ref.head_weight(),
                       ref_bias=None if h_ref is None else _detached(self.ref.lm_head_bias), **self._head_kw)
        if args.fused_head and self.method.token_separable:
            def chunk_loss(rows: slice, logp, entropy, kl_teacher, kl_ref) -> torch.Tensor:
                part = HeadOutput(logp=logp, entropy=entropy, kl_teacher=kl_teacher, kl_ref=kl_ref)
                return compute_loss(args, part, _rows_of(mb, rows), beta, num_tokens)[0]

            loss, out = sdpg_head_loss(*head_args, chunk_loss, **head_kw)
            with torch.no_grad():
                reported, stats = compute_loss(args, out, mb, beta, num_tokens)
            return loss, out, stats, reported
        out = sdpg_head(*head_args, **head_kw)
        loss, stats = compute_loss(args, out, mb, beta, num_tokens,
                                   **self.method.loss_inputs(mb, out, h_student, h_teacher))
        return loss, out, stats, loss

    # ------------------------------------------------------------------ helpers
    @property
    def _layout(self) -> ViewLayout:
        """Shared-prefix / packed view layouts (``share_prefix``, ``pack_sequences``); the student forward shares
        prefixes only without activation checkpointing (a checkpointed layer cannot replay a KV cache) and in a
        single process (FSDP2's per-layer reshard cannot serve a second forward of the layers before the backward;
        DDP keeps the same layout as FSDP2 so both train alike)."""
        a = self.args
        return ViewLayout(share_prefix=a.share_prefix, pack=a.pack_sequences,
                          share_grad=not (is_checkpointing(self.policy.lm) or self.dist.enabled))

    def _skip_metrics(self, batch: RolloutBatch, minis) -> dict[str, float]:
        """``train/num_tokens`` (the loss denominator: skipped samples' tokens included) and the fractions of samples
        whose forward did not run: ``skipped/student_forward`` (zero-gradient samples),
        ``skipped/teacher_forward`` (no teacher view: β(k) = 0, gated, skipped; only for methods with a teacher),
        ``skipped/ref_forward`` (no reference log-prob pass: α = 0, full_ref_kl's pass is in the update, skipped)."""
        n = max(len(batch), 1)
        ran = sum(len(mb.index) for mini in minis for mb in mini)
        m = {"skipped/student_forward": 1.0 - ran / n,
             "train/num_tokens": float(sum(getattr(mini, "num_tokens", 0) for mini in minis))}  # skipped included
        if self.args.needs_teacher:
            rows = sum(mb.teacher.token_mask.shape[0] for mini in minis for mb in mini if mb.teacher is not None)
            m["skipped/teacher_forward"] = 1.0 - rows / n
        ref_rows = ran if self.ref is not None else 0
        m["skipped/ref_forward"] = 1.0 - ref_rows / n
        views = [v for mini in minis for mb in mini for v in (mb.student, mb.teacher) if v is not None]
        m["layout/shared_frac"] = sum(v.layout == "shared" for v in views) / max(len(views), 1)
        m["layout/packed_frac"] = sum(v.layout == "packed" for v in views) / max(len(views), 1)
        return m

    @property
    def _head_kw(self) -> dict[str, Any]:
        return {"temperature": self.args.temperature,
                "chunk_size": self.args.head_chunk_for(self.policy.lm_head_weight.shape[0], self.dist.device.type)}

    def _teacher_module(self) -> CompletionModel:
        return self.policy if self.teacher is None else self.teacher

    def _teacher_hidden(self, mb: MicroBatch, h_student: torch.Tensor) -> torch.Tensor | None:
        """(Ntok, H) teacher hidden states; gated-out rows reuse the student's (KL = 0, weight 0 anyway)."""
        if mb.teacher is None:
            return None
        h = self.method.teacher_forward(mb)  # (Ntok_active, H)
        if mb.teacher_tokens is None:
            return h
        full = h_student.detach().clone()  # (Ntok, H)
        full[mb.teacher_tokens] = h.to(full.dtype)
        return full

    def _rollout(self, step: int) -> RolloutBatch:
        a = self.args
        gen = {"max_completion_length": a.max_completion_length, "temperature": a.temperature, "top_p": a.top_p,
               "top_k": a.top_k, "stop_strings": a.stop_strings, "backend": a.generation_backend}
        with self.precision.autocast(), self._unsharded():  # generation in the compute dtype too
            return (collect_episodes if self.multiturn else collect_rollouts)(
                self.policy.lm, self.tokenizer, self.sources, self.weights, step=step,
                num_prompts=a.num_prompts_per_step, group_size=a.num_generations, gen=gen,
                generation_batch_size=a.generation_batch_size, max_prompt_length=a.max_prompt_length,
                chat_template_kwargs=a.chat_template_kwargs, seed=a.seed, rank=self.dist.rank)

    @contextlib.contextmanager
    def _unsharded(self):
        """FSDP2: the root's (embeddings, LM head) parameters gathered for ``generate``, which calls the HF model
        directly; decoder layers gather themselves in their own forward. A no-op otherwise."""
        if not self.sharded:
            yield
            return
        if not getattr(self, "_fsdp_root_ready", False):  # FSDP2 initialises from the root's first forward
            one = torch.ones(1, 1, dtype=torch.long, device=self.dist.device)
            with torch.no_grad():
                self.policy(input_ids=one * self.pad_id, attention_mask=one, position_ids=one * 0,
                            gather_index=one * 0, token_mask=one.bool())
            self._fsdp_root_ready = True
        self.train_model.unshard()
        try:
            yield
        finally:
            self.train_model.reshard()

    def _log_samples(self, step: int, batch: RolloutBatch, tview) -> None:
        a = self.args
        if not (a.log_completions and self.dist.is_main and a.num_completions_to_log):
            return
        distilled = [bool(tview is not None and tview.active[i]) for i in range(len(batch))]
        if isinstance(batch, EpisodeBatch):  # multi-turn: one row per episode, with its whole transcript
            rows = episode_samples(batch, distilled, None if tview is None else tview.contexts,
                                   a.num_completions_to_log)
        else:
            rows = [{"source": batch.sources[i], "prompt": batch.prompts[i], "completion": batch.completions[i],
                     "reward": float(batch.rewards[i]), "status": batch.statuses[i], "distilled": distilled[i],
                     "privileged_context": tview.contexts[i] if distilled[i] else batch.contexts[i]}
                    for i in range(min(a.num_completions_to_log, len(batch)))]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_samples(self.output_dir / "samples.jsonl", step, rows)

    def save_checkpoint(self) -> Path:
        """Write ``output_dir/checkpoint-{global_step}`` (every rank saves its RNG; rank 0 the rest)."""
        kwargs = dict(model=self.policy.lm, tokenizer=self.tokenizer, optimizer=self.optimizer,
                      scheduler=self.scheduler, save_total_limit=self.args.save_total_limit,
                      trainer_state={"config": self.args.to_dict(), "world_size": self.dist.world_size},
                      ema_teacher=self.teacher if self.args.teacher_model_kind == "ema" else None,
                      extra_modules=self.method.modules(), scaler_state=self.precision.state_dict(),
                      lora_merge=self.args.lora_merge_on_save)
        barrier(self.dist)
        if self.sharded:  # FSDP2: all ranks write their shards into the temporary folder, rank 0 gets full weights
            from sdpg_train.training.checkpoint import full_model_state, save_sharded, tmp_checkpoint_dir

            tmp = tmp_checkpoint_dir(self.output_dir, self.global_step)
            if self.dist.is_main:
                shutil.rmtree(tmp, ignore_errors=True)
            barrier(self.dist)
            kwargs.update(model_state=full_model_state(self.policy), sharded=True)
            save_sharded(tmp, self.policy, self.optimizer)
            barrier(self.dist)
        if self.dist.is_main:  # rank 0 writes and renames the folder first, then the others add their RNG
            save_checkpoint(self.output_dir, self.global_step, rank=0, **kwargs)
        barrier(self.dist)
        if not self.dist.is_main:
            save_checkpoint(self.output_dir, self.global_step, rank=self.dist.rank, **kwargs)
        barrier(self.dist)
        self._saved_step = self.global_step
        return self.output_dir / f"checkpoint-{self.global_step}"

    def save_model(self, output_dir: str | Path) -> None:
        """``save_pretrained`` the model and tokenizer (rank 0); with LoRA the merged model (``lora_merge_on_save``)
        plus ``adapter/``."""
        from sdpg_train.core.lora import is_peft, save_lora
        from sdpg_train.training.checkpoint import full_model_state

        state = full_model_state(self.policy) if self.sharded else None  # collective under FSDP2
        if self.dist.is_main:
            if state is not None:
                self.policy.lm.save_pretrained(output_dir, state_dict=state)
            elif is_peft(self.policy.lm):
                save_lora(self.policy.lm, Path(output_dir), merge=self.args.lora_merge_on_save)
            else:
                self.policy.lm.save_pretrained(output_dir)
            self.tokenizer.save_pretrained(output_dir)

    def _maybe_resume(self, resume: bool | str | Path | None) -> Path | None:
        """Load the checkpoint asked for; cut the logs back to its step and warn about config changes."""
        if not resume:
            return None
        path = last_checkpoint(self.output_dir) if resume is True else Path(resume)
        if path is None:
            raise FileNotFoundError(f"resume_from_checkpoint=True but {self.output_dir} has no checkpoint-N")
        state = load_checkpoint(path, model=self.policy.lm, optimizer=self.optimizer, scheduler=self.scheduler,
                                ema_teacher=self.teacher if self.args.teacher_model_kind == "ema" else None,
                                rank=self.dist.rank, extra_modules=self.method.modules(), precision=self.precision,
                                sharded_model=self.policy if self.sharded else None)
        self.global_step = int(state["global_step"])
        if self.dist.is_main:
            warn_config_changes(path, state.get("config"), self.args.to_dict())
            truncate_logs(self.output_dir, self.global_step)
        barrier(self.dist)
        return path


def _detached(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def _rows_of(mb: MicroBatch, rows: slice) -> MicroBatch:
    """The per-token fields of ``mb`` restricted to ``rows`` (the loss inputs of one head chunk)."""
    sl = lambda t: t[rows] if isinstance(t, torch.Tensor) and t.dim() >= 1 else t  # noqa: E731
    return dataclasses.replace(mb, advantages=sl(mb.advantages), mask=sl(mb.mask), old_logp=sl(mb.old_logp),
                               ref_logp=sl(mb.ref_logp), teacher_tokens=sl(mb.teacher_tokens),
                               extra={k: sl(v) for k, v in mb.extra.items()})


def _accumulate(acc: Counter, out, stats: dict[str, float], mb: MicroBatch, loss: torch.Tensor) -> None:
    """Fold one micro-batch into the step's sums: ``sum/`` add up, ``mean/`` are token-weighted, ``max/`` max."""
    n = mb.num_tokens
    acc["tokens"] += n
    acc["sum/loss/total"] += float(loss.detach())
    acc["mean/entropy"] += float(out.entropy.detach().sum())
    if out.kl_teacher is not None:  # means over the tokens the teacher actually saw (gated-out rows excluded)
        rows = mb.teacher_tokens if mb.teacher_tokens is not None else slice(None)
        acc["teacher/tokens"] += int(out.kl_teacher[rows].numel())
        acc["teacher/sum/distill/kl"] += float(out.kl_teacher.detach()[rows].sum())
        acc["teacher/sum/distill/teacher_entropy"] += float(out.teacher_entropy[rows].sum())
    for k, v in stats.items():
        if k in ("tokens", "beta", "alpha", "distill/kl"):
            continue
        if k.startswith("loss/"):
            acc[f"sum/{k}"] += v
        elif k.endswith("max"):
            acc[f"max/{k}"] = max(acc.get(f"max/{k}", v), v)
        else:
            acc[f"mean/{k}"] += v * n


def make_optimizer(policy: torch.nn.Module, args: SDPGConfig, extra_params=()):
    """AdamW over trainable parameters (policy, then ``extra_params`` such as PPO's value head) + linear warm-up,
    then constant / linear / cosine decay."""
    import math

    params = [p for p in policy.parameters() if p.requires_grad] + [p for p in extra_params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                            eps=args.adam_epsilon, weight_decay=args.weight_decay)
    total, warm = args.max_steps * args.num_mini_batches, args.warmup_steps

    def factor(k: int) -> float:
        if k < warm:
            return (k + 1) / warm
        frac = (k - warm) / max(total - warm, 1)
        if args.lr_scheduler_type == "linear":
            return max(0.0, 1.0 - frac)
        if args.lr_scheduler_type == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))
        return 1.0

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _default_run_dir(args: SDPGConfig, sources) -> str:
    env = sources[0].name.replace("/", "-") if sources else "env"
    return f"runs/{env}__{args.loss}__{args.seed}__{int(time.time())}"
