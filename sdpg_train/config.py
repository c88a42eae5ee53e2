"""``SDPGConfig``: one flat, documented, validated, immutable dataclass for the SDPG trainer.

Load it from YAML (``SDPGConfig.from_yaml(path, **overrides)``) or from the command line
(``SDPGConfig.from_args(["--config", "x.yaml", "--learning_rate", "1e-6"])``). Field names follow TRL's
``GRPOConfig``/``SDPOConfig`` where the meaning is the same. The instance is frozen: derived quantities are
properties, never fields filled in later.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sdpg_train.methods import BUILTIN_METHODS, get_method, method_names

LOSSES = tuple(BUILTIN_METHODS)
"""The built-in methods (``sdpg_train/methods/``); ``loss`` also accepts registered ones (:func:`method_names`)."""
KL_MODES = ("urkl", "ufkl", "rkl", "fkl", "k1", "k3")
CONTEXT_SOURCES = ("env", "reference", "feedback", "sibling", "sibling_else_feedback")
TEACHER_KINDS = ("live", "ema", "base", "encoder")
DIVERGENCES = ("full", "topk", "sampled")
REPORT_BACKENDS = ("jsonl", "tensorboard", "wandb", "none")
DEFAULT_TEACHER_TEMPLATE = (
    "{prompt}\n\n[Privileged information for this attempt]\n{context}\n\n"
    "Use it to solve the problem above; do not mention that it was given."
)


@dataclass(frozen=True)
class SDPGConfig:
    """Every knob of one SDPG (or GRPO) training run. See ``docs/training.md`` for the full reference."""

    # ------------------------------------------------------------------ model
    model_name_or_path: str | None = None
    """Hub id or local path of an ``AutoModelForCausalLM``; ``"tiny"`` builds the offline tiny Qwen2-style model
    with the byte tokenizer (CPU demos and tests). May be None when a model instance is passed to the trainer."""
    torch_dtype: str = "float32"
    """Compute dtype: float32 | bfloat16 | float16 | auto (the checkpoint's). bfloat16/float16 keep fp32 master
    weights and run every forward under torch.autocast in this dtype (float16 adds a dynamic loss scaler)."""
    low_precision_params: bool = False
    """Keep the parameters themselves in torch_dtype (bfloat16 only; no fp32 master copy). Saves memory but AdamW
    updates below bf16's resolution are lost (most of them at lr ≈ 1e-6); warns. Off: mixed precision."""
    device: str = "auto"
    """auto (cuda if available, else cpu) | cpu | cuda | cuda:N. Under torchrun the local rank picks the GPU."""
    chat_template_kwargs: dict = field(default_factory=dict)
    """Extra flags for ``apply_chat_template`` (e.g. ``{enable_thinking: false}``); identical for every view."""
    gradient_checkpointing: bool = False
    """Recompute decoder activations in backward (saves memory, costs one extra forward); the model is trained
    in train mode with the KV cache off, so the checkpointing really runs."""
    disable_dropout: bool = True
    """Set every dropout probability of the policy to 0 (the model trains in train mode; RL wants no dropout)."""
    lora_r: int = 0
    """LoRA rank through ``peft`` (0 = full fine-tuning). With LoRA the reference policy (and a base teacher) is the
    same model with its adapters disabled: no second copy of the weights."""
    lora_alpha: float = 16.0
    """LoRA scaling α (the update is (α / r)·B·A)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch."""
    lora_target_modules: list = field(default_factory=lambda: ["all-linear"])
    """Modules that get adapters: ``all-linear`` (every linear layer but the LM head) or module names
    (``q_proj``, ``v_proj``, ...)."""
    lora_merge_on_save: bool = True
    """Checkpoints also hold the merged weights as ``model.safetensors`` (``from_pretrained`` loads them as a plain
    model); the adapter alone is always saved under ``adapter/`` (used for resume)."""

    # ------------------------------------------------------------------ env
    env_ids: list = field(default_factory=lambda: ["sdpg/Arith-v0"])
    """Environment ids (``sdpg/...``) to train on; ignored when env instances are passed to the trainer."""
    env_weights: list | None = None
    """Sampling weight per env (one per env id/instance); None = uniform."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments for ``gym.make``, keyed by env id: ``{"sdpg/Arith-v0": {"digits": 3}}``."""

    # ------------------------------------------------------------------ generation
    num_prompts_per_step: int = 4
    """Prompts (groups) per optimisation step and per process; completions per step = this × num_generations."""
    num_generations: int = 8
    """G: completions sampled per prompt (the GRPO group)."""
    max_prompt_length: int = 512
    """Student prompts longer than this (in tokens) are cut from the left, keeping the chat header; on multi-turn
    envs each turn's prefix, dropping the oldest earlier attempts first (docs/training.md, *Prompt budget*)."""
    max_completion_length: int = 256
    """Maximum new tokens per completion."""
    temperature: float = 1.0
    """Sampling temperature; the same temperature scales student logits in the loss (and the teacher's)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1.0 = off)."""
    top_k: int = 0
    """Top-k sampling (0 = off)."""
    stop_strings: list = field(default_factory=list)
    """Generation stops for a completion once its text contains one of these (the stop string is kept)."""
    generation_batch_size: int = 32
    """Sequences per ``generate`` call; the previous call's completions are verified while the next generates."""
    generation_backend: str = "fast"
    """fast: the trainer's own sampling loop (pre-allocated KV cache, finished rows dropped, a group's prompt prefilled
    once), which draws the same tokens as HF ``generate`` for the same seed (sdpg_train/core/sampler.py); hf: HF
    ``generate`` itself. Models the fast loop cannot reproduce (sliding-window layers, ...) use ``generate``."""

    # ------------------------------------------------------------------ teacher view
    teacher_model_kind: str = "live"
    """live: the current weights, no grad (the paper's); ema: an EMA copy; base: the frozen initial model; encoder:
    the live weights plus a trainable context encoder (K soft prefix vectors, docs/methods.md) instead of the context
    in the prompt."""
    teacher_update_rate: float = 0.05
    """EMA rate for ``teacher_model_kind="ema"``: teacher ← (1 − rate)·teacher + rate·student after each step."""
    teacher_temperature: float = 1.0
    """Sharpens (< 1) or flattens (> 1) the distillation target: the teacher's logits are divided by
    ``temperature · teacher_temperature`` (the student's by ``temperature``). 1.0 is the paper's SDPG. A small model
    that knows the answer in the teacher view but spreads its mass (teacher greedy accuracy far above its
    sampled accuracy) gives a much better target at 0.5 (docs/results.md)."""
    context_sources: list = field(default_factory=lambda: ["env"])
    """Privileged-context sources, combinable, in this order: env (the env's own context template, by default its
    reference + this rollout's verifier feedback), reference (the problem's reference answer/solution), feedback
    (this rollout's verifier feedback), sibling (a successful completion of another sample of the same group,
    never the sample itself), sibling_else_feedback (the sibling if one exists, else the feedback: SDPO's)."""
    success_reward_threshold: float = 0.5
    """A sibling counts as successful when its reward is ≥ this (sibling source)."""
    max_context_length: int = 1024
    """Token budget for the privileged context; longer contexts are truncated (the chat header never is)."""
    teacher_template: str = DEFAULT_TEACHER_TEMPLATE
    """User-turn text of the teacher prompt; must contain ``{prompt}`` and ``{context}``."""

    # ------------------------------------------------------------------ algorithm
    loss: str = "sdpg"
    """sdpg (PPO dual-clip + β·KL(student‖SG teacher) + α·reference term) | grpo (the same with β = 0, no teacher) |
    ppo (value head + GAE) | rlsd | sdpo | opsd (sibling methods) | a method registered with
    ``sdpg_train.methods.register_method``; see docs/methods.md."""
    beta: float = 1e-3
    """β_base: weight of the full-vocabulary distillation KL."""
    beta_warmup_steps: int = 0
    """T_warm of the β schedule, in training steps (0 = no warm-up)."""
    beta_decay_steps: int = 0
    """T_decay of the β schedule, in training steps: β falls linearly to 0 over the last T_decay of max_steps
    (0 = no decay)."""
    gate_positive: bool = False
    """Distil only on completions with advantage > 0 (paper Eq. 3.5)."""
    kl_clamp: float = 20.0
    """Upper clamp of the per-token distillation KL(student‖teacher) (zero gradient above it)."""
    alpha: float = 1e-3
    """α: weight of the reference-policy term (0 disables the reference model)."""
    kl_mode: str = "urkl"
    """Reference term: urkl | ufkl | rkl | fkl (paper surrogates) | k1 | k3 (sampled-token estimators)."""
    log_ratio_clamp: float = 20.0
    """The reference term's log w = log π_θ(y_t) − log π_ref(y_t) is clamped to ±this before f_kl_mode (guards
    exp(−log w); zero gradient outside). Independent of kl_clamp."""
    full_ref_kl: bool = False
    """Use the exact full-vocabulary KL(student‖reference) from the head instead of the sampled-token surrogate."""
    clip_low: float = 0.2
    """ε_low of the PPO ratio clip."""
    clip_high: float = 0.28
    """ε_high of the PPO ratio clip ("clip-higher")."""
    dual_clip_c: float = 10.0
    """Dual-clip constant c for negative advantages."""
    advantage_scale: str = "group"
    """Advantage normalisation: group (per-group std) | batch (batch std) | none (mean-centred only)."""

    # ------------------------------------------------------------------ baselines and sibling modes (docs/methods.md)
    gamma: float = 1.0
    """ppo: discount γ of GAE over completion tokens."""
    lam: float = 0.95
    """ppo: GAE λ."""
    cliprange: float = 0.2
    """ppo: ε of the (symmetric) policy-ratio clip."""
    cliprange_value: float = 0.2
    """ppo: ε_v of the value clip around the rollout values."""
    vf_coef: float = 0.1
    """ppo: weight of the clipped value loss."""
    kl_coef: float = 0.05
    """ppo: per-token KL-to-reference penalty in the reward, r_t −= kl_coef·(log π_old − log π_ref)(y_t) (0 = off)."""
    whiten_advantages: bool = True
    """ppo: whiten the GAE advantages over the step's completion tokens."""
    value_head_detach: bool = False
    """ppo: feed the value head detached hidden states (the value loss then trains only the head)."""
    rlsd_lambda: float = 0.5
    """rlsd: λ, weight of the teacher-reweighted advantage in A_mix = (1 − λ)·A + λ·Â."""
    rlsd_lambda_decay_steps: int = 50
    """rlsd: λ decays linearly to 0 over this many steps (0 = constant)."""
    rlsd_eps_w: float = 0.2
    """rlsd: ε_w, the clip of the per-token weight exp(sign(A)·Δ_t) to [1 − ε_w, 1 + ε_w]."""
    distill_alpha: float = 0.5
    """sdpo/opsd divergence: 0 = forward KL(teacher‖student), 1 = reverse KL(student‖teacher), else generalised JSD."""
    distill_estimator: str = "topk"
    """sdpo/opsd: full (whole vocabulary) | topk (student top-k tokens + a tail bucket) | sampled (sampled token,
    reverse KL only)."""
    distill_topk: int = 100
    """sdpo/opsd: k of the top-k estimator."""
    distill_is_clip: float = 2.0
    """sdpo: upper clip of the detached importance weight π_θ/π_old on the distillation loss."""
    encoder_num_prefix: int = 4
    """teacher_model_kind=encoder: K, soft prefix vectors the context encoder produces."""
    encoder_hidden_size: int = 256
    """teacher_model_kind=encoder: width of the encoder MLP."""
    encoder_learning_rate: float = 1e-3
    """teacher_model_kind=encoder: AdamW learning rate of the encoder's own objective."""

    # ------------------------------------------------------------------ optimisation
    max_steps: int = 100
    """Number of training steps (rollout + update); also T of the β schedule."""
    num_mini_batches: int = 1
    """Optimiser updates per step; old log-probs are computed once per step, so later updates are off-policy."""
    learning_rate: float = 1e-6
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_beta1: float = 0.9
    """AdamW β1 (first-moment decay)."""
    adam_beta2: float = 0.999
    """AdamW β2 (second-moment decay)."""
    adam_epsilon: float = 1e-8
    """AdamW ε (denominator guard)."""
    warmup_steps: int = 10
    """Linear learning-rate warm-up, in optimiser updates (``num_mini_batches`` per training step); 0 disables it.
    On by default: Adam's first updates, with empty moment estimates, move every weight by about the full learning
    rate whatever the size of its gradient (a sign step), and on noisy policy gradients one such step undid half
    of a warm start (docs/results.md, "Why nothing learned")."""
    lr_scheduler_type: str = "constant"
    """After warm-up: constant | linear (to 0 at the last update) | cosine."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip (≤ 0 disables clipping; non-finite norms always skip the update)."""
    distributed_strategy: str = "ddp"
    """Under torchrun: ddp (replicate the model, average gradients) | fsdp (FSDP2 ``fully_shard``: parameters,
    gradients and AdamW state sharded over ranks; sharded checkpoints). Ignored in a single process."""
    max_tokens_per_micro_batch: int = 8192
    """Micro-batch budget: token positions the decoder computes for the costlier of the forwarded views (student,
    teacher), padding included; sets gradient accumulation. Padded or packed layouts: samples × (longest prefix of
    both views + longest completion). With ``share_prefix``, per view in the layout it will run: distinct groups ×
    the longest group-common prefix + samples × (longest unshared prefix part + longest completion) (the padded
    size where sharing saves < 20 %); micro-batches are then whole groups, and a group over the budget on its own
    is split into equal parts (± 1 sample). Not counted: the LM head (chunked by ``head_chunk_size``) and each
    layer's prefix KV cache expanded over the group (the forward's keys/values, not its activations)."""
    head_chunk_size: int = 0
    """Tokens per chunk in the SDPG head, which never holds more than a few (chunk × vocab) fp32 buffers; 0 = auto:
    the chunk whose buffer is about 128 MiB on CPU (220 tokens for a 151,936-row LM head, 1024 for 32,768) or
    1 GiB on GPU (1766 for 151,936), within 64–4096."""
    fused_head: bool = True
    """For the token-separable losses (sdpg, grpo, rlsd): fuse the head with the loss so its gradient is formed in
    the forward pass (no recomputation in backward: 4 LM-head matmuls with a teacher instead of 6, 3 instead of 4
    without). Same parameters after a step as ``False`` (the two-pass head + loss) to fp32 rounding."""
    skip_zero_advantage: bool = True
    """sdpg/grpo: samples whose loss has no gradient (A = 0, α = 0, and β(k) = 0 or gated by ``gate_positive``) get
    no forward at all; their tokens stay in the loss denominator, so the update is the same (``skipped/*``)."""
    share_prefix: bool = True
    """Forward each group's common prefix (prompt; teacher prompt up to where the contexts differ) once and run
    the completions against its KV cache: teacher, reference and old log-prob forwards, and the student forward
    when activation checkpointing is off. Used per view when it saves ≥ 20 % of its padded tokens; same hidden
    states as the padded forward to fp32 rounding."""
    pack_sequences: bool = False
    """Views that do not share a prefix are packed into rows without padding (``position_ids`` restart per
    sequence; the attention implementation keeps them apart). Exact to fp32 rounding; off by default because
    the block-diagonal mask costs as much as the padding it removes with CPU sdpa (docs/benchmarks.md)."""
    seed: int = 0
    """One seed for torch, numpy, Python, env problem selection and sampling."""

    # ------------------------------------------------------------------ logging
    output_dir: str | None = None
    """Run folder; default ``runs/{env}__{loss}__{seed}__{time}``. A fresh run refuses a folder that already holds
    a run (its metrics, samples or checkpoints) unless ``overwrite_output_dir``; resume it instead."""
    overwrite_output_dir: bool = False
    """Let a fresh run replace the run already in ``output_dir`` (its checkpoints, metrics and samples are deleted)."""
    report_to: list = field(default_factory=lambda: ["jsonl"])
    """Metric backends besides the always-on ``metrics.jsonl``: tensorboard, wandb (or none)."""
    run_name: str | None = None
    """Run name for tensorboard/wandb (default: the output folder's name)."""
    project: str = "sdpg"
    """wandb project."""
    logging_steps: int = 1
    """Write metrics every this many steps."""
    log_completions: bool = True
    """Append sample completions with their privileged context to ``samples.jsonl`` (multi-turn: transcripts)."""
    num_completions_to_log: int = 2
    """Samples written per logged step (multi-turn envs: episodes, each with its whole transcript)."""
    disable_tqdm: bool = False
    """Hide the progress bar."""

    # ------------------------------------------------------------------ checkpointing
    save_steps: int = 0
    """Save ``checkpoint-N`` every this many steps (0 = only at the end)."""
    save_total_limit: int | None = None
    """Keep only the newest k checkpoints (None = keep all)."""
    save_final: bool = True
    """Save a checkpoint after the last step."""

    def __post_init__(self) -> None:
        _validate(self)

    # ---------------------------------------------------------------- derived
    @property
    def completions_per_step(self) -> int:
        """Completions sampled per step and process."""
        return self.num_prompts_per_step * self.num_generations

    @property
    def effective_beta_base(self) -> float:
        """β_base used by the loss (the method's, ``Method.beta_base``: ``beta`` for sdpg, 0 for the others)."""
        return get_method(self.loss).beta_base(self)

    @property
    def needs_teacher(self) -> bool:
        """Whether a teacher forward runs (β > 0, or a method that always uses the teacher)."""
        return get_method(self.loss).needs_teacher(self)

    def head_chunk_for(self, vocab_size: int, device_type: str = "cpu") -> int:
        """The head's chunk size for an LM head of ``vocab_size`` rows (resolves ``head_chunk_size=0``)."""
        if self.head_chunk_size:
            return self.head_chunk_size
        budget = 2**30 if device_type == "cuda" else 128 * 2**20  # bytes of one (chunk, vocab) fp32 buffer
        return int(min(4096, max(64, budget // (4 * max(vocab_size, 1)))))

    @property
    def needs_ref(self) -> bool:
        """Whether a frozen reference model is kept (the method's ``needs_ref``): α > 0 (sdpg/grpo), kl_coef > 0
        (ppo); never for rlsd/sdpo/opsd."""
        return get_method(self.loss).needs_ref(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict copy (JSON/YAML serialisable)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> SDPGConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SDPGConfig:
        """Build from a dict, rejecting unknown keys with a helpful message."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SDPGConfig field(s): {', '.join(unknown)}; see docs/training.md")
        return cls(**{k: _coerce(cls, k, v) for k, v in data.items()})

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> SDPGConfig:
        """Load a YAML file of field values, then apply ``overrides``."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"{path} is not valid YAML{where}: {problem}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of SDPGConfig fields, got {type(data).__name__}")
        return cls.from_dict({**data, **overrides})

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> SDPGConfig:
        """Parse ``[--config FILE.yaml] [--field value ...]`` (command line wins over the file)."""
        parser = argparse.ArgumentParser(prog="sdpg train")
        add_arguments(parser)
        return from_namespace(parser.parse_args(argv))


# ---------------------------------------------------------------------------- CLI layer
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one ``--<field>`` flag per ``SDPGConfig`` field (all default to "not given")."""
    parser.add_argument("--config", default=None, help="YAML file of SDPGConfig fields (flags override it)")
    hints = typing.get_type_hints(SDPGConfig)
    for f in fields(SDPGConfig):
        kind = _base_type(hints[f.name])
        doc = _FIELD_DOCS.get(f.name, "")
        if kind is list:
            parser.add_argument(f"--{f.name}", nargs="*", default=argparse.SUPPRESS, help=doc)
        elif kind is dict:
            parser.add_argument(f"--{f.name}", type=_json_dict, default=argparse.SUPPRESS, help=f"{doc} (JSON)")
        elif kind is bool:
            parser.add_argument(f"--{f.name}", type=_parse_bool, nargs="?", const=True, default=argparse.SUPPRESS,
                                help=doc)
        else:
            parser.add_argument(f"--{f.name}", type=str, default=argparse.SUPPRESS, help=doc)


def from_namespace(ns: argparse.Namespace) -> SDPGConfig:
    """Build a config from parsed flags: YAML file (if ``--config``) overridden by the given flags."""
    names = {f.name for f in fields(SDPGConfig)}
    given = {k: v for k, v in vars(ns).items() if k in names}
    config_path = getattr(ns, "config", None)
    if config_path:
        return SDPGConfig.from_yaml(config_path, **given)
    return SDPGConfig.from_dict(given)


def _json_dict(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _base_type(hint: Any) -> type:
    """``int | None`` -> int, ``list[str]`` -> list, ``str`` -> str."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0])
    return origin or hint


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Convert strings from the command line (or YAML scalars) to the field's type, with clear errors."""
    hint = typing.get_type_hints(cls)[name]
    optional = type(None) in typing.get_args(hint)
    kind = _base_type(hint)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if not optional:
            raise ValueError(f"SDPGConfig.{name} may not be None")
        return None
    try:
        if kind is bool:
            return _parse_bool(value) if isinstance(value, str) else bool(value)
        if kind is int and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{value} is not an integer")
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if kind is float:
            return float(value)
        if kind is list:
            return list(value) if isinstance(value, (list, tuple)) else [value]
        if kind is dict:
            return json.loads(value) if isinstance(value, str) else dict(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"SDPGConfig.{name}: cannot read {value!r} as {kind.__name__} ({exc})") from exc
    return value


# ---------------------------------------------------------------------------- validation
def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(f"invalid SDPGConfig: {msg}")


def _validate(c: SDPGConfig) -> None:
    names = method_names()
    _check(c.loss in names, f"loss must be one of {names}, got {c.loss!r} (your own method: "
                            "sdpg_train.methods.register_method, docs/methods.md)")
    _check(c.kl_mode in KL_MODES, f"kl_mode must be one of {KL_MODES}, got {c.kl_mode!r}")
    _check(c.teacher_model_kind in TEACHER_KINDS, f"teacher_model_kind must be one of {TEACHER_KINDS}")
    _check(c.advantage_scale in ("group", "batch", "none"), "advantage_scale must be group, batch or none")
    _check(c.lr_scheduler_type in ("constant", "linear", "cosine"), "lr_scheduler_type must be constant|linear|cosine")
    _check(c.torch_dtype in ("float32", "bfloat16", "float16", "auto"),
           "torch_dtype must be float32|bfloat16|float16|auto")
    bad_src = [s for s in c.context_sources if s not in CONTEXT_SOURCES]
    _check(not bad_src, f"context_sources entries must be in {CONTEXT_SOURCES}, got {bad_src}")
    bad_rep = [r for r in c.report_to if r not in REPORT_BACKENDS]
    _check(not bad_rep, f"report_to entries must be in {REPORT_BACKENDS}, got {bad_rep}")
    _check(len(c.env_ids) >= 1 and all(isinstance(e, str) for e in c.env_ids), "env_ids must list ≥ 1 env id")
    if c.env_weights is not None:
        _check(len(c.env_weights) == len(c.env_ids), "env_weights needs one weight per env id")
        _check(all(float(w) >= 0 for w in c.env_weights) and sum(map(float, c.env_weights)) > 0,
               "env_weights must be ≥ 0 with a positive sum")
    for name in ("num_prompts_per_step", "num_generations", "max_prompt_length", "max_completion_length",
                 "generation_batch_size", "max_context_length", "max_steps", "num_mini_batches",
                 "max_tokens_per_micro_batch", "logging_steps"):
        _check(getattr(c, name) >= 1, f"{name} must be ≥ 1, got {getattr(c, name)}")
    for name in ("beta", "alpha", "learning_rate", "weight_decay", "warmup_steps", "beta_warmup_steps",
                 "head_chunk_size", "beta_decay_steps", "top_k", "save_steps", "num_completions_to_log", "clip_low",
                 "clip_high"):
        _check(getattr(c, name) >= 0, f"{name} must be ≥ 0, got {getattr(c, name)}")
    _check(c.temperature > 0, f"temperature must be > 0, got {c.temperature}")
    _check(c.generation_backend in ("fast", "hf"), f"generation_backend must be 'fast' or 'hf', got "
           f"{c.generation_backend!r}")
    _check(0 < c.top_p <= 1, f"top_p must be in (0, 1], got {c.top_p}")
    _check(c.dual_clip_c > 1, f"dual_clip_c must be > 1, got {c.dual_clip_c}")
    _check(c.kl_clamp > 0, f"kl_clamp must be > 0, got {c.kl_clamp}")
    _check(c.log_ratio_clamp > 0, f"log_ratio_clamp must be > 0, got {c.log_ratio_clamp}")
    _check(not c.low_precision_params or c.torch_dtype in ("bfloat16", "auto"),
           "low_precision_params needs torch_dtype bfloat16 (fp16 parameters cannot be trained with a loss scaler)")
    _check(c.lora_r >= 0 and c.lora_alpha > 0 and 0 <= c.lora_dropout < 1,
           "lora_r must be ≥ 0, lora_alpha > 0 and lora_dropout in [0, 1)")
    _check(c.distributed_strategy in ("ddp", "fsdp"), "distributed_strategy must be ddp or fsdp")
    _check(c.distributed_strategy != "fsdp" or (c.teacher_model_kind != "ema" and not c.lora_r),
           "distributed_strategy fsdp does not support teacher_model_kind ema or LoRA yet; use ddp")
    _check(len(c.lora_target_modules) >= 1, "lora_target_modules must name at least one module (or all-linear)")
    _check(0 < c.teacher_update_rate <= 1, "teacher_update_rate must be in (0, 1]")
    _check(c.teacher_temperature > 0, f"teacher_temperature must be > 0, got {c.teacher_temperature}")
    _check(c.teacher_temperature == 1.0 or c.loss == "sdpg", "teacher_temperature applies to loss sdpg only")
    _check(c.completions_per_step % c.num_mini_batches == 0 and c.num_prompts_per_step % c.num_mini_batches == 0,
           "num_prompts_per_step must be divisible by num_mini_batches")
    _check(c.save_total_limit is None or c.save_total_limit >= 1, "save_total_limit must be ≥ 1 or None")
    for key in ("{prompt}", "{context}"):
        _check(key in c.teacher_template, f"teacher_template must contain {key}")
    if c.needs_teacher:
        _check(len(c.context_sources) >= 1, f"loss={c.loss} needs at least one context source")
    _validate_modes(c)


def _validate_modes(c: SDPGConfig) -> None:
    """Fields of the baseline and sibling modes (docs/methods.md)."""
    _check(0 <= c.gamma <= 1 and 0 <= c.lam <= 1, f"gamma and lam must be in [0, 1], got {c.gamma}, {c.lam}")
    for name in ("cliprange", "cliprange_value", "distill_is_clip", "encoder_learning_rate"):
        _check(getattr(c, name) > 0, f"{name} must be > 0, got {getattr(c, name)}")
    for name in ("vf_coef", "kl_coef", "rlsd_lambda_decay_steps", "rlsd_eps_w"):
        _check(getattr(c, name) >= 0, f"{name} must be ≥ 0, got {getattr(c, name)}")
    _check(0 <= c.rlsd_lambda <= 1, f"rlsd_lambda must be in [0, 1], got {c.rlsd_lambda}")
    _check(0 <= c.distill_alpha <= 1, f"distill_alpha must be in [0, 1], got {c.distill_alpha}")
    _check(c.distill_estimator in DIVERGENCES, f"distill_estimator must be one of {DIVERGENCES}")
    _check(c.distill_topk >= 1 and c.encoder_num_prefix >= 1 and c.encoder_hidden_size >= 1,
           "distill_topk, encoder_num_prefix and encoder_hidden_size must be ≥ 1")
    if c.teacher_model_kind == "encoder":
        _check(c.needs_teacher, "teacher_model_kind=encoder needs a teacher: loss sdpg (beta > 0), rlsd, sdpo or opsd")
    get_method(c.loss).validate(c)


def _field_docs() -> dict[str, str]:
    """Per-field docstrings read from this file's source (used for ``--help`` and the docs)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(SDPGConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())  # type: ignore[union-attr]
    return docs


_FIELD_DOCS = _field_docs()
