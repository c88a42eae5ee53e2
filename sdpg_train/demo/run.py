"""The CPU demo: warm start a tiny byte-level model, then SDPG vs GRPO (vs PPO) with identical sample budgets.

Stages, each skipped when its outputs already exist (so an interrupted demo resumes):

1. ``warmstart/``: a tiny Qwen2-style model with the byte tokenizer, trained by supervised warm start
   (:mod:`sdpg_train.training.sft`) on ``sdpg/Arith-v0`` and ``sdpg/PyFunc-v0``, part of it in the teacher view.
2. ``warmstart/eval/<env>`` and ``warmstart/eval-teacher/<env>``: held-out (``split="test"``) evaluation of the
   student view and of the teacher view (privileged context in the prompt) -> the teacher-vs-student gap.
3. ``runs/<method>/``: one ``SDPGTrainer`` run per method from the same checkpoint, with the same seed (so the
   same prompts at every step), prompts per step, generations and steps; ``runs/<method>/eval/<env>`` its
   held-out evaluation. Methods run in parallel worker processes, one torch thread each.
4. ``report.md``, ``report.json`` and ``curves.png`` (:mod:`sdpg_train.demo.report`).
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sdpg_train.config import SDPGConfig
from sdpg_train.demo.report import EVAL_DIR, RUNS_DIR, TEACHER_EVAL_DIR, WARM_DIR, env_slug, write_report
from sdpg_train.methods import method_names
from sdpg_train.training.sft import SFTConfig, TeacherFormat, TeacherViewEnv, supervised_warm_start

ARITH_ID, PYFUNC_ID = "sdpg/Arith-v0", "sdpg/PyFunc-v0"
DEMO_TEACHER_TEMPLATE = "{prompt}\n\n[Privileged information]\n{context}"
"""A short teacher template (byte-level tokens are expensive on CPU); the warm start and the trainer share it."""
SFT_FILE = "sft.json"


@dataclass(frozen=True)
class DemoConfig:
    """Everything one demo run depends on (written to ``report.json``)."""

    output_dir: str
    methods: tuple[str, ...] = ("sdpg", "grpo", "ppo")
    seed: int = 0
    # model: a few million parameters
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    # tasks (train split for training, test split for evaluation); context="reference": result-independent
    arith_kwargs: dict = field(default_factory=lambda: {
        "digits": 1, "operators": "+-", "prompt_template": "terse", "context": "reference"})
    pyfunc_kwargs: dict = field(default_factory=lambda: {
        "level": 3, "prompt_template": "compact", "context": "reference"})
    sft: SFTConfig = SFTConfig(steps=300, context_fraction=0.5)
    # RL: identical sample budget for every method
    steps: int = 20
    prompts_per_step: int = 8
    generations: int = 8
    max_completion_length: int = 48
    learning_rate: float = 2e-4
    beta: float = 0.05
    alpha: float = 1e-3
    method_overrides: dict = field(default_factory=dict)
    """Per-method ``SDPGConfig`` field overrides, keyed by method label; a label that is not a loss name must set
    ``loss`` (e.g. ``{"sdpg-b0.5": {"loss": "sdpg", "beta": 0.5}}``)."""
    # evaluation
    eval_n: int = 100
    eval_samples: int = 4
    eval_seed: int = 0
    """Sampling seed of every held-out evaluation (independent of ``seed``, so runs with different RL seeds
    can share one warm start and its evaluations)."""
    threshold: float | None = None
    """Training pass rate (5-step moving average) for steps-to-threshold; None = halfway from the first step's
    pass rate to the best method's final one."""
    workers: int = 2
    progress: bool = True

    def loss_of(self, method: str) -> str:
        """The ``SDPGConfig.loss`` a method label runs."""
        return str(self.method_overrides.get(method, {}).get("loss", method))


def quick_config(output_dir: str, **overrides: Any) -> DemoConfig:
    """The CI-sized demo (about 2 minutes on 2 cores): a smaller model, a short warm start, few steps."""
    base = DemoConfig(output_dir=output_dir, hidden_size=128, num_layers=2, sft=SFTConfig(steps=60, batch_size=24),
                      steps=4, prompts_per_step=4, generations=4, max_completion_length=32, eval_n=16,
                      eval_samples=2)
    return replace(base, **overrides)


def split_methods(cfg: DemoConfig) -> tuple[list[str], list[str]]:
    """``(runnable, missing)``: methods whose loss ``SDPGConfig`` accepts in this build, and the others."""
    runnable = [m for m in cfg.methods if cfg.loss_of(m) in method_names()]
    return runnable, [m for m in cfg.methods if m not in runnable]


# ---------------------------------------------------------------------------- building blocks
def make_envs(cfg: DemoConfig, split: str) -> dict[str, Any]:
    """``{env_id: env}`` for the demo's two tasks on ``split``."""
    import gymnasium as gym

    import sdpg_envs  # noqa: F401  (registers the sdpg/* ids)

    return {ARITH_ID: gym.make(ARITH_ID, split=split, **cfg.arith_kwargs),
            PYFUNC_ID: gym.make(PYFUNC_ID, split=split, **cfg.pyfunc_kwargs)}


def close_envs(envs: dict[str, Any]) -> None:
    for env in envs.values():
        env.close()


def rl_config(cfg: DemoConfig, method: str, output_dir: Path) -> SDPGConfig:
    """The trainer config of one method; everything but the method's own overrides is shared."""
    base = SDPGConfig(
        device="cpu", loss=cfg.loss_of(method), num_prompts_per_step=cfg.prompts_per_step,
        num_generations=cfg.generations, max_completion_length=cfg.max_completion_length,
        generation_batch_size=cfg.prompts_per_step * cfg.generations, teacher_template=DEMO_TEACHER_TEMPLATE,
        max_context_length=256, context_sources=["env"], beta=cfg.beta, alpha=cfg.alpha,
        learning_rate=cfg.learning_rate, max_steps=cfg.steps, seed=cfg.seed, output_dir=str(output_dir),
        report_to=["jsonl"], disable_tqdm=True, save_steps=0, save_total_limit=1, num_completions_to_log=2)
    extra = {k: v for k, v in cfg.method_overrides.get(method, {}).items() if k != "loss"}
    return base.replace(**extra) if extra else base


def teacher_format(cfg: DemoConfig) -> TeacherFormat:
    """The teacher view the RL runs use (from the shared part of :func:`rl_config`)."""
    c = rl_config(cfg, cfg.methods[0] if cfg.methods else "grpo", Path(cfg.output_dir))
    return TeacherFormat(c.teacher_template, c.max_context_length, c.chat_template_kwargs or None)


def evaluate_all(model, tokenizer, envs: dict[str, Any], cfg: DemoConfig, out: Path, *,
                 teacher: bool = False, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Evaluate ``model`` on every held-out env (optionally in the teacher view) -> ``{env_id: metrics}``."""
    from sdpg_train.evaluation.evaluate import evaluate

    fmt = teacher_format(cfg)
    results = {}
    for env_id, env in envs.items():
        target = TeacherViewEnv(env, tokenizer, fmt, env_id=env_id) if teacher else env
        kwargs = dict(n=cfg.eval_n, samples=cfg.eval_samples, ks=sorted({1, cfg.eval_samples}), temperature=1.0,
                      max_new_tokens=cfg.max_completion_length, batch_size=64, seed=cfg.eval_seed,
                      output_dir=out / env_slug(env_id), progress=progress,
                      model_name=f"{out.parent.name}{'+teacher-view' if teacher else ''}")
        try:
            report = evaluate(model, tokenizer, target, **kwargs)
        except ValueError as exc:  # an evaluation left by a demo with other settings: redo it
            if "different config" not in str(exc) and "more than the" not in str(exc):
                raise
            report = evaluate(model, tokenizer, target, overwrite=True, **kwargs)
        results[env_id] = report.metrics
    return results


def load_model(path: Path):
    """A saved demo model and its byte tokenizer (fp32, eval mode)."""
    from transformers import AutoModelForCausalLM

    from sdpg_train.tiny import load_tokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), load_tokenizer(str(path))


# ---------------------------------------------------------------------------- stages
def stage_warm_start(cfg: DemoConfig) -> dict[str, Any]:
    """Build and warm-start the tiny model into ``warmstart/`` (skipped when ``warmstart/sft.json`` exists)."""
    from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm

    warm = Path(cfg.output_dir) / WARM_DIR
    if (warm / SFT_FILE).is_file():
        info = json.loads((warm / SFT_FILE).read_text())
        if info.get("key", warm_key(cfg)) == warm_key(cfg):
            return info
    torch.set_num_threads(1)
    model = tiny_causal_lm(hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
                           seed=cfg.seed)
    tokenizer = byte_tokenizer()
    envs = make_envs(cfg, "train")
    try:
        history = supervised_warm_start(model, tokenizer, list(envs.values()), cfg.sft, teacher_format(cfg),
                                        progress=cfg.progress)
    finally:
        close_envs(envs)
    info = {**history, "parameters": sum(p.numel() for p in model.parameters()), "key": warm_key(cfg)}
    tmp = warm.with_name(warm.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / SFT_FILE).write_text(json.dumps(info))
    shutil.rmtree(warm, ignore_errors=True)
    tmp.rename(warm)
    return info


def warm_key(cfg: DemoConfig) -> dict[str, Any]:
    """What the warm start depends on; a stored warm start with another key is retrained."""
    return json.loads(json.dumps({
        "model": [cfg.hidden_size, cfg.num_layers, cfg.num_heads], "sft": asdict(cfg.sft),
        "tasks": [cfg.arith_kwargs, cfg.pyfunc_kwargs], "teacher": asdict(teacher_format(cfg))}))


def stage_warm_eval(cfg: DemoConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Held-out metrics of the warm start as the student and as the teacher (privileged context in the prompt)."""
    warm = Path(cfg.output_dir) / WARM_DIR
    model, tokenizer = load_model(warm)
    envs = make_envs(cfg, "test")
    try:
        student = evaluate_all(model, tokenizer, envs, cfg, warm / EVAL_DIR, progress=cfg.progress)
        teacher = evaluate_all(model, tokenizer, envs, cfg, warm / TEACHER_EVAL_DIR, teacher=True,
                               progress=cfg.progress)
    finally:
        close_envs(envs)
    return student, teacher


def train_method(cfg: DemoConfig, method: str) -> dict[str, Any]:
    """Train one method from the warm start (unless already finished) and evaluate it; runs in a worker."""
    from sdpg_train.training.trainer import SDPGTrainer

    torch.set_num_threads(1)
    run = Path(cfg.output_dir) / RUNS_DIR / method
    done_file, final = run / "demo_run.json", run / f"checkpoint-{cfg.steps}"
    wanted = json.loads(json.dumps(rl_config(cfg, method, run).to_dict()))
    if done_file.is_file() and final.is_dir() and json.loads(done_file.read_text()).get("config") == wanted:
        info = {**json.loads(done_file.read_text()), "resumed": True}
        model, tokenizer = load_model(final)
    else:
        shutil.rmtree(run, ignore_errors=True)  # a partial run restarts from the warm start
        model, tokenizer = load_model(Path(cfg.output_dir) / WARM_DIR)
        envs = make_envs(cfg, "train")
        t0 = time.perf_counter()
        try:
            trainer = SDPGTrainer(model, env=list(envs.values()), args=rl_config(cfg, method, run),
                                  processing_class=tokenizer)
            trainer.train()
        finally:
            close_envs(envs)
        info = {"method": method, "loss": cfg.loss_of(method), "train_seconds": time.perf_counter() - t0,
                "config": rl_config(cfg, method, run).to_dict()}
        done_file.write_text(json.dumps(info, indent=1))
        model = trainer.model
    envs = make_envs(cfg, "test")
    try:
        info["eval"] = evaluate_all(model, tokenizer, envs, cfg, run / EVAL_DIR, progress=False)
    finally:
        close_envs(envs)
    return info


def _steps_logged(cfg: DemoConfig, method: str) -> int:
    path = Path(cfg.output_dir) / RUNS_DIR / method / "metrics.jsonl"
    try:
        return min(cfg.steps, sum(1 for _ in path.open()))
    except OSError:
        return 0


def stage_train(cfg: DemoConfig, methods: list[str]) -> dict[str, dict[str, Any]]:
    """Run every method in worker processes (``cfg.workers`` at a time); one progress bar over all steps."""
    results: dict[str, dict[str, Any]] = {}
    workers = max(1, min(cfg.workers, len(methods)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool, \
            tqdm(total=cfg.steps * len(methods), desc=f"RL ({', '.join(methods)})", unit="step",
                 disable=not cfg.progress) as bar:
        futures = {m: pool.submit(train_method, cfg, m) for m in methods}
        while len(results) < len(methods):
            time.sleep(1.0)
            for m, fut in futures.items():
                if m not in results and fut.done():
                    results[m] = fut.result()  # re-raises a worker's exception with its traceback
            bar.n = sum(_steps_logged(cfg, m) for m in methods)
            bar.set_postfix(done=f"{len(results)}/{len(methods)}")
            bar.refresh()
    return {m: results[m] for m in methods}


def run_demo(cfg: DemoConfig) -> Path:
    """Run (or resume) every stage and write the report; returns the path of ``report.md``."""

    runnable, missing = split_methods(cfg)
    if not runnable:
        raise ValueError(f"none of the methods {list(cfg.methods)} is a loss this build supports "
                         f"({list(method_names())})")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps(asdict(cfg), indent=1, default=str))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    resumed = (out / WARM_DIR / SFT_FILE).is_file()
    sft = {**stage_warm_start(cfg), "resumed": resumed}
    timings["warm_start_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    warm_student, warm_teacher = stage_warm_eval(cfg)
    timings["warm_eval_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    methods = stage_train(cfg, runnable)
    timings["rl_and_eval_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    return write_report(cfg, sft=sft, warm=warm_student, teacher=warm_teacher, methods=methods, missing=missing,
                        timings=timings)
