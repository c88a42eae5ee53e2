"""Held-out learning curves: every method trains from one warm start on the same problem stream and is scored
on a FIXED held-out set every ``eval_every`` steps, over several seeds.

The training reward mixes learning with how hard each step's problems happen to be; a fixed held-out set does
not. Layout of ``output_dir``::

    warmstart/            the shared supervised warm start (model, tokenizer, sft.json, teacher_gap.json)
    jobs/<method>-s<seed>/curve.json   one finished (method, seed) run: its held-out curve and train metrics
    summary.json, summary.md, curves.png

A finished job is never rerun (the run resumes), a job's result is written atomically, and jobs run in worker
processes (``workers``), one torch thread each.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from sdpg_train.core.multiturn_rollout import is_multiturn_env
from sdpg_train.demo.repair import repair_scores
from sdpg_train.training.sft import SFTConfig, TeacherFormat, TeacherViewEnv

ARITH_ID, PYFUNC_ID = "sdpg/Arith-v0", "sdpg/PyFunc-v0"
TEACHER_TEMPLATE = "{prompt}\n\n[Privileged information]\n{context}"
BASELINE = "grpo"
SDPG_RECIPE = {"loss": "sdpg", "beta": 1.0, "teacher_model_kind": "base", "teacher_temperature": 0.5}
"""SDPG as this benchmark runs it: a frozen teacher (the warm start in the teacher view) sharpened to half its
temperature, β = 1. docs/results.md explains each choice and measures the paper's live teacher beside it."""


@dataclass(frozen=True)
class LearningConfig:
    """Everything one learning-curve sweep depends on (written to ``summary.json``)."""

    output_dir: str
    methods: dict = field(default_factory=lambda: {
        "grpo": {"loss": "grpo"},
        "sdpg": dict(SDPG_RECIPE),
        "ppo": {"loss": "ppo"},
    })
    """label -> ``SDPGConfig`` overrides (must set ``loss``)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    envs: dict = field(default_factory=lambda: {
        ARITH_ID: {"digits": 1, "operators": "+-", "prompt_template": "terse", "context": "reference"},
    })
    """env id -> kwargs; training draws every env with equal weight, the held-out set holds each env."""
    # model and warm start (shared by every job)
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    sft: SFTConfig = SFTConfig(steps=250, context_fraction=0.5)
    # RL: identical budget and problem stream for every method
    steps: int = 100
    eval_every: int = 10
    prompts_per_step: int = 64
    generations: int = 4
    max_completion_length: int = 16
    rl: dict = field(default_factory=lambda: {
        "learning_rate": 5e-4, "warmup_steps": 5, "alpha": 0.0})
    """``SDPGConfig`` fields shared by every method (a method's own overrides win)."""
    # held-out evaluation
    eval_n: int = 100
    eval_samples: int = 4
    eval_seed: int = 1234
    workers: int = 2
    progress: bool = True
    title: str = ""
    """``summary.md``'s heading; empty: one naming the sweep by its env ids (``sdpg demo`` sets ``DEMO_TITLE``)."""

    def job_name(self, method: str, seed: int) -> str:
        return f"{method}-s{seed}"


DEMO_TITLE = "SDPG CPU demo: held-out learning curves"


def summary_title(cfg: LearningConfig) -> str:
    """``cfg.title``, else "Learning sweep on <env ids>: held-out learning curves"."""
    return cfg.title or f"Learning sweep on {', '.join(cfg.envs)}: held-out learning curves"


def quick_config(output_dir: str, **overrides: Any) -> LearningConfig:
    """The reduced sweep (``--quick``): Arith only, GRPO and SDPG, 2 seeds, fewer steps."""
    base = LearningConfig(output_dir=output_dir, methods={"grpo": {"loss": "grpo"}, "sdpg": dict(SDPG_RECIPE)},
                          seeds=(0,), steps=30, eval_every=10)
    return replace(base, **overrides)


PYFUNC_EXAMPLES = {"level": 1, "prompt_template": "examples", "num_examples": 3, "context": "reference"}
"""The code task: three input/output examples, the one-operation function to be inferred (``f(1)=-2; f(6)=3;
f(9)=6`` -> ``def f(x): return x - 3``); the teacher view adds the reference program. docs/results.md measures
why: with the function in the prompt (``compact``) the teacher view had nothing to add (+1.75 points)."""


def code_config(output_dir: str, **overrides: Any) -> LearningConfig:
    """The code sweep (``--code``): PyFunc alone, 40 new tokens, a warm start long enough for the teacher view to
    copy the reference's constants (2,000 SFT steps; at 600 it copied the operation but not the constant)."""
    base = LearningConfig(output_dir=output_dir, envs={PYFUNC_ID: dict(PYFUNC_EXAMPLES)}, max_completion_length=40,
                          sft=SFTConfig(steps=2000, context_fraction=0.5))
    return replace(base, **overrides)


def demo_quick_config(output_dir: str, **overrides: Any) -> LearningConfig:
    """``sdpg demo --quick``: the plumbing at CI size (about a minute on 2 cores); its scores are not evidence."""
    base = LearningConfig(output_dir=output_dir, methods={"grpo": {"loss": "grpo"}, "sdpg": dict(SDPG_RECIPE)},
                          seeds=(0,), hidden_size=64, sft=SFTConfig(steps=60, context_fraction=0.5), steps=6,
                          eval_every=3, prompts_per_step=16, eval_n=20, eval_samples=2)
    return replace(base, **overrides)


# ---------------------------------------------------------------------------- environments and evaluation
def make_env(env_id: str, kwargs: dict, split: str):
    import gymnasium as gym

    import sdpg_envs  # noqa: F401  (registers the sdpg/* ids)

    return gym.make(env_id, split=split, **kwargs).unwrapped


def teacher_format(cfg: LearningConfig) -> TeacherFormat:
    return TeacherFormat(str(cfg.rl.get("teacher_template", TEACHER_TEMPLATE)),
                         int(cfg.rl.get("max_context_length", 256)))


def heldout_scores(model, tokenizer, cfg: LearningConfig, *, teacher: bool = False) -> dict[str, dict[str, float]]:
    """Pass@1 (temperature 1, ``eval_samples`` per problem), greedy accuracy and compile-error rate per env on
    the fixed held-out problems ``0 .. eval_n - 1`` of the ``test`` split. Deterministic given the model."""
    from sdpg_train.evaluation.generation import generate_completions

    was_training = model.training
    model.eval()
    out: dict[str, dict[str, float]] = {}
    try:
        for env_id, kwargs in cfg.envs.items():
            env = make_env(env_id, kwargs, "test")
            view = TeacherViewEnv(env, tokenizer, teacher_format(cfg)) if teacher else env
            problems = [env.problem_at(i) for i in range(cfg.eval_n)]
            prompts = [view.prompt_for(p) for p in problems]
            if is_multiturn_env(env):  # whole episodes: first-turn compile errors, repair rate (demo/repair.py)
                out[env_id] = repair_scores(model, tokenizer, env, problems, prompts, samples=cfg.eval_samples,
                                            max_new_tokens=cfg.max_completion_length, seed=cfg.eval_seed)
                env.close()
                continue
            sampled = generate_completions(model, tokenizer, prompts, n=cfg.eval_samples, temperature=1.0,
                                           max_new_tokens=cfg.max_completion_length, batch_size=256,
                                           seed=cfg.eval_seed)
            greedy = generate_completions(model, tokenizer, prompts, n=1, temperature=0.0,
                                          max_new_tokens=cfg.max_completion_length, batch_size=256)
            flat_p = [p for p in problems for _ in range(cfg.eval_samples)]
            res = env.verify_batch(flat_p, [c for cs in sampled for c in cs])
            res_g = env.verify_batch(problems, [g[0] for g in greedy])
            out[env_id] = {
                "pass1": sum(r.score for r in res) / len(res),
                "greedy": sum(r.score for r in res_g) / len(res_g),
                "compile_errors": sum(r.status == "compile_error" for r in res) / len(res),
            }
            env.close()
    finally:
        model.train(was_training)
    return out


# ---------------------------------------------------------------------------- stages
def _write_json(path: Path, data: Any) -> None:
    """Atomic write: a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def load_model(path: Path):
    from transformers import AutoModelForCausalLM

    from sdpg_train.tiny import load_tokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), load_tokenizer(str(path))


def warm_key(cfg: LearningConfig) -> dict[str, Any]:
    return json.loads(json.dumps({"model": [cfg.hidden_size, cfg.num_layers, cfg.num_heads], "sft": asdict(cfg.sft),
                                  "envs": cfg.envs, "teacher": asdict(teacher_format(cfg)),
                                  "eval": [cfg.eval_n, cfg.eval_samples, cfg.eval_seed, cfg.max_completion_length]}))


def stage_warm_start(cfg: LearningConfig) -> dict[str, Any]:
    """Train (or reuse) the shared warm start and measure its held-out student and teacher-view scores."""
    from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm
    from sdpg_train.training.sft import supervised_warm_start

    warm = Path(cfg.output_dir) / "warmstart"
    info_file = warm / "warm.json"
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        if info.get("key") == warm_key(cfg):
            return info
    torch.set_num_threads(1)
    model = tiny_causal_lm(hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads, seed=0)
    tokenizer = byte_tokenizer()
    envs = [make_env(e, k, "train") for e, k in cfg.envs.items()]
    t0 = time.perf_counter()
    hist = supervised_warm_start(model, tokenizer, envs, cfg.sft, teacher_format(cfg), progress=cfg.progress)
    for env in envs:
        env.close()
    info = {"key": warm_key(cfg), "sft_seconds": time.perf_counter() - t0, "sft_final_loss": hist["losses"][-1],
            "parameters": sum(p.numel() for p in model.parameters()),
            "student": heldout_scores(model, tokenizer, cfg),
            "teacher": heldout_scores(model, tokenizer, cfg, teacher=True)}
    tmp = warm.with_name("warmstart.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    _write_json(tmp / "warm.json", info)
    shutil.rmtree(warm, ignore_errors=True)
    tmp.rename(warm)
    return info


def rl_config(cfg: LearningConfig, method: str, seed: int, output_dir: Path):
    from sdpg_train.config import SDPGConfig

    fields: dict[str, Any] = dict(
        device="cpu", num_prompts_per_step=cfg.prompts_per_step, num_generations=cfg.generations,
        max_completion_length=cfg.max_completion_length, generation_batch_size=256,
        teacher_template=TEACHER_TEMPLATE, max_context_length=256, context_sources=["env"], max_steps=cfg.steps,
        seed=seed, output_dir=str(output_dir), report_to=["jsonl"], disable_tqdm=True, save_steps=0,
        save_final=False, num_completions_to_log=0)
    fields.update(cfg.rl)
    fields.update(cfg.methods[method])
    return SDPGConfig(**fields)


def run_job(cfg: LearningConfig, method: str, seed: int) -> dict[str, Any]:
    """Train one (method, seed) from the warm start; held-out scores at step 0 and every ``eval_every`` steps."""
    from sdpg_train.training.trainer import SDPGTrainer

    torch.set_num_threads(1)
    job = Path(cfg.output_dir) / "jobs" / cfg.job_name(method, seed)
    done = job / "curve.json"
    if done.is_file():
        return json.loads(done.read_text())
    shutil.rmtree(job, ignore_errors=True)  # a partial job restarts from the warm start
    job.mkdir(parents=True)
    warm = json.loads((Path(cfg.output_dir) / "warmstart" / "warm.json").read_text())
    model, tokenizer = load_model(Path(cfg.output_dir) / "warmstart")
    envs = [make_env(e, k, "train") for e, k in cfg.envs.items()]
    trainer = SDPGTrainer(model, env=envs, args=rl_config(cfg, method, seed, job / "run"), processing_class=tokenizer)
    curve = [{"step": 0, "scores": warm["student"]}]
    train: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        m = trainer.step(step)
        trainer.global_step = step
        train.append({k: float(m[k]) for k in ("reward", "entropy", "distill/kl", "completions/clipped_ratio")
                      if k in m})
        if step % cfg.eval_every == 0 or step == cfg.steps:
            curve.append({"step": step, "scores": heldout_scores(trainer.model, tokenizer, cfg)})
    for env in envs:
        env.close()
    result = {"method": method, "seed": seed, "curve": curve, "train": train,
              "train_seconds": time.perf_counter() - t0, "config": trainer.args.to_dict()}
    _write_json(done, result)
    return result


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: a killed sweep must not leave workers finishing jobs into a later run's folders."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM this worker when its parent exits
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def run_all(cfg: LearningConfig, on_done: Callable[[str], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every (method, seed) job, ``cfg.workers`` at a time -> ``{method: [job results by seed]}``."""
    jobs = [(m, s) for s in cfg.seeds for m in cfg.methods]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=max(1, min(cfg.workers, len(jobs))), mp_context=get_context("spawn"),
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as ex:
        futures = {ex.submit(run_job, cfg, m, s): (m, s) for m, s in jobs}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if on_done:
                on_done(cfg.job_name(*futures[fut]))
    return {m: [results[(m, s)] for s in cfg.seeds] for m in cfg.methods}


# ---------------------------------------------------------------------------- summary
def is_code_env(env_id: str) -> bool:
    """Whether an env id is a code task (its compile-error rate is reported)."""
    return any(k in env_id for k in ("Func", "HumanEval", "MBPP"))



def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = list(values)
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def mean_curve(runs: Sequence[dict[str, Any]], env_id: str, key: str) -> list[tuple[int, float, float]]:
    """[(step, mean, std)] over seeds of one held-out score."""
    steps = [p["step"] for p in runs[0]["curve"]]
    out = []
    for i, step in enumerate(steps):
        m, s = _mean_std([r["curve"][i]["scores"][env_id][key] for r in runs])
        out.append((step, m, s))
    return out


def summarize(cfg: LearningConfig, warm: dict[str, Any], results: dict[str, list[dict[str, Any]]]
              ) -> list[dict[str, Any]]:
    """One row per method with the JSON-line keys of ``benchmarks/learning.py`` (scores are fractions).

    ``warm_start``/``final``/``best`` are the pass@1 averaged over the held-out envs; ``compile_errors_*`` come
    from the code env (None without one); ``steps_to_grpo_final`` is the first evaluated step at which the
    method's seed-mean curve reaches GRPO's seed-mean final score (None if never).
    """
    env_ids = list(cfg.envs)
    code = [e for e in env_ids if is_code_env(e)]

    def avg_curve(runs):
        per_env = [mean_curve(runs, e, "pass1") for e in env_ids]
        return [(pts[0][0], statistics.fmean(p[1] for p in pts)) for pts in zip(*per_env)]

    def final_per_seed(run):
        return statistics.fmean(run["curve"][-1]["scores"][e]["pass1"] for e in env_ids)

    base_final = None
    if BASELINE in results:
        base_final = statistics.fmean(final_per_seed(r) for r in results[BASELINE])
    rows = []
    for method, runs in results.items():
        curve = avg_curve(runs)
        finals = [final_per_seed(r) for r in runs]
        final, final_std = _mean_std(finals)
        reach = None if base_final is None else next((s for s, v in curve if v >= base_final - 1e-12), None)
        ce = code[0] if code else None
        row = {
            "method": method, "env": "+".join(e.replace("sdpg/", "") for e in env_ids), "seeds": list(cfg.seeds),
            "warm_start": curve[0][1], "final": final, "final_std": final_std, "best": max(v for _, v in curve),
            "steps_to_grpo_final": reach,
            "compile_errors_start": None if ce is None else warm["student"][ce]["compile_errors"],
            "compile_errors_end": None if ce is None else _mean_std(
                [r["curve"][-1]["scores"][ce]["compile_errors"] for r in runs])[0],
            "ratio_final_to_grpo": None if not base_final else final / base_final,
            "final_greedy": statistics.fmean(
                statistics.fmean(r["curve"][-1]["scores"][e]["greedy"] for e in env_ids) for r in runs),
            "per_env_final": {e: _mean_std([r["curve"][-1]["scores"][e]["pass1"] for r in runs]) for e in env_ids},
        }
        repair = [e for e in env_ids if "repair" in warm["student"].get(e, {})]
        if repair:  # repair envs: the repair rate (failed first attempts fixed by the last turn), start -> end
            row["repair_rate_start"] = warm["student"][repair[0]]["repair"]
            row["repair_rate_end"] = _mean_std([r["curve"][-1]["scores"][repair[0]]["repair"] for r in runs])[0]
        rows.append(row)
    return rows


def plot_curves(cfg: LearningConfig, results: dict[str, list[dict[str, Any]]], path: Path) -> Path | None:
    """Held-out pass@1 (and compile errors for code envs) against step, seed-mean with ±1 std bands."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [(e, "pass1") for e in cfg.envs] + [(e, "compile_errors") for e in cfg.envs if is_code_env(e)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (env_id, key) in zip(axes[0], panels):
        for method, runs in results.items():
            pts = mean_curve(runs, env_id, key)
            xs, ms, ss = [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]
            ax.plot(xs, ms, marker="o", ms=3, label=method)
            ax.fill_between(xs, [m - s for m, s in zip(ms, ss)], [m + s for m, s in zip(ms, ss)], alpha=0.2)
        ax.set_title(f"{env_id.replace('sdpg/', '')} held-out {'pass@1' if key == 'pass1' else 'compile errors'}")
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def render_markdown(cfg: LearningConfig, warm: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    pct = lambda v: "—" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines = [f"# {summary_title(cfg)}", "", "![held-out curves](curves.png)", "",
             f"Seeds {list(cfg.seeds)}; {cfg.steps} RL steps of {cfg.prompts_per_step} prompts × {cfg.generations} "
             f"generations; held-out: {cfg.eval_n} fixed test problems × {cfg.eval_samples} samples (temperature 1) "
             f"every {cfg.eval_every} steps.", "", "## Warm start: student vs teacher view (held-out)", "",
             "| env | student pass@1 | teacher-view pass@1 | gap | student greedy | teacher greedy |",
             "|---|---:|---:|---:|---:|---:|"]
    for e in cfg.envs:
        s, t = warm["student"][e], warm["teacher"][e]
        lines.append(f"| {e} | {pct(s['pass1'])} | {pct(t['pass1'])} | {100 * (t['pass1'] - s['pass1']):+.1f} pts "
                     f"| {pct(s['greedy'])} | {pct(t['greedy'])} |")
    lines += ["", "## Results (seed mean ± std)", "",
              "| method | warm start | final | best | final greedy | steps to GRPO's final "
              "| compile errors start → end | final / GRPO |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = "—" if r["ratio_final_to_grpo"] is None else f"{r['ratio_final_to_grpo']:.2f}"
        reach = "—" if r["steps_to_grpo_final"] is None else r["steps_to_grpo_final"]
        lines.append(f"| {r['method']} | {pct(r['warm_start'])} | {pct(r['final'])} ± {100 * r['final_std']:.1f} | "
                     f"{pct(r['best'])} | {pct(r['final_greedy'])} | {reach} | "
                     f"{pct(r['compile_errors_start'])} → {pct(r['compile_errors_end'])} | {ratio} |")
    if any("repair_rate_start" in r for r in rows):
        lines += ["", "Repair env: compile errors are the first attempt's; the repair rate is the share of failed "
                  "first attempts that pass by the last attempt.", "", "| method | repair rate start → end |",
                  "|---|---:|"]
        lines += [f"| {r['method']} | {pct(r['repair_rate_start'])} → {pct(r['repair_rate_end'])} |" for r in rows]
    lines += ["", "Reproducibility: every job is seeded and runs with one torch thread, so a rerun on the same "
              "machine "
              "(same CPU, torch build and thread count) gives these numbers exactly. Another CPU can round "
              "differently, sample other tokens and land elsewhere within the seed spread.", ""]
    return "\n".join(lines)


def run_learning(cfg: LearningConfig) -> tuple[list[dict[str, Any]], Path]:
    """Warm start, every job, then ``summary.json``/``summary.md``/``curves.png``; returns (rows, summary.md)."""
    from tqdm.auto import tqdm

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    warm = stage_warm_start(cfg)
    total = len(cfg.seeds) * len(cfg.methods)
    with tqdm(total=total, desc="learning jobs", unit="job", disable=not cfg.progress) as bar:
        results = run_all(cfg, on_done=lambda name: (bar.update(1), bar.set_postfix(done=name)))
    rows = summarize(cfg, warm, results)
    plot_curves(cfg, results, out / "curves.png")
    _write_json(out / "summary.json", {"config": asdict(cfg), "warm_start": warm, "rows": rows,
                                       "curves": {m: [r["curve"] for r in runs] for m, runs in results.items()}})
    md = out / "summary.md"
    md.write_text(render_markdown(cfg, warm, rows))
    return rows, md
