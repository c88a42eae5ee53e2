"""The learning benchmark on a repair env (``benchmarks/learning.py --repair``): held-out scores of whole
episodes (generate, verify, feedback, generate again), so the summary can report, per method, the change in
first-turn compile errors and in the repair rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sdpg_train.training.sft import SFTConfig

REPAIR_ID = "sdpg/PyFuncRepair-v0"
REPAIR_EXTRA = {"max_attempts": 2, "feedback_template": "compact"}
"""``--repair``: the code sweep's PyFunc task (``PYFUNC_EXAMPLES``) with two attempts and one-line feedback
(``# wrong_answer: ...``), short enough for the tiny model's context."""
REPAIR_SFT_FRACTION = 0.3
"""``--repair``: warm-start examples shown as a second attempt after real feedback (``SFTConfig.repair_fraction``);
without them the warm start's second attempts are not programs (0% repaired, every one a compile error)."""
REPAIR_METHODS = {"grpo": {"loss": "grpo"}}
"""Methods ``--repair`` runs besides SDPG (PPO cannot train on episodes)."""


def repair_overrides(task: dict, sdpg: dict, sft: SFTConfig, methods: dict | None = None,
                     repair_fraction: float | None = None) -> dict[str, Any]:
    """``LearningConfig`` overrides of ``benchmarks/learning.py --repair`` on top of ``code_config``: the repair
    env alone on the code sweep's ``task`` kwargs (``PYFUNC_EXAMPLES``), GRPO and SDPG (``sdpg``: its recipe)
    unless ``methods`` is given, and ``sft`` with ``repair_fraction`` (default :data:`REPAIR_SFT_FRACTION`)."""
    fraction = REPAIR_SFT_FRACTION if repair_fraction is None else repair_fraction
    return {"envs": {REPAIR_ID: {**task, **REPAIR_EXTRA}},
            "methods": methods or {**REPAIR_METHODS, "sdpg": dict(sdpg)},
            "sft": replace(sft, repair_fraction=fraction)}


def repair_scores(model, tokenizer, env: Any, problems: Sequence[Any], prompts: Sequence[str], *, samples: int,
                  max_new_tokens: int, seed: int) -> dict[str, float]:
    """Held-out episode scores on ``problems`` (shown as ``prompts``): ``samples`` sampled episodes per problem
    (temperature 1, seeded) and one greedy episode. Keys, fractions in [0, 1]:

    ``pass1`` mean episode reward (sampled), ``greedy`` the same greedy, ``pass1_turn1`` first-attempt pass rate,
    ``compile_errors`` first-attempt compile-error rate, ``compile_errors_last`` the rate at the last turn,
    ``repair`` failed first attempts passed by the last turn.
    """
    from sdpg_train.core.multiturn_rollout import Episode, run_episodes, turn_metrics
    from sdpg_train.core.rollout import encode_prompt
    from sdpg_train.evaluation.generation import generate_ids, seeded

    last = env.max_attempts

    def play(n: int, temperature: float) -> tuple[dict[str, float], float]:
        eps = [Episode(0, p, t, encode_prompt(tokenizer, t)) for p, t in zip(problems, prompts) for _ in range(n)]

        def gen(prefixes):
            return generate_ids(model, tokenizer, prefixes, temperature=temperature, max_new_tokens=max_new_tokens)

        with seeded(seed):
            run_episodes(eps, [env], tokenizer, gen, chunk_size=256)
        outcomes = [[(t.result.status, bool(t.result.passed)) for t in e.turns] for e in eps]
        return turn_metrics(outcomes, last), sum(e.reward for e in eps) / len(eps)

    sampled, reward = play(samples, 1.0)
    _, greedy = play(1, 0.0)
    return {"pass1": reward, "greedy": greedy, "pass1_turn1": sampled["pass@1/turn1"],
            "compile_errors": sampled["compile_error_rate/turn1"],
            "compile_errors_last": sampled[f"compile_error_rate/turn{last}"],
            "repair": sampled[f"repair_rate/turn{last}"]}
