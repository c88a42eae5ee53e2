"""TRL's multi-turn path on our repair envs: a ``rollout_func`` for ``trl.GRPOTrainer`` (TRL >= 1.16).

:class:`RepairRollout` plays each prompt TRL hands it as an episode of a repair env
(:class:`~sdpg_envs.multiturn.MultiTurnEnv`: generate, verify, feedback as the next observation, generate again),
with the same episode loop as ``SDPGTrainer`` (:func:`sdpg_train.core.multiturn_rollout.run_episodes`), and returns
what TRL's ``rollout_func`` contract asks for: ``prompt_ids``, ``completion_ids`` (the model's turns with the
observations between them, exact ids), ``logprobs`` (None: TRL recomputes them), and ``env_mask`` (1 on model
tokens, 0 on observation tokens: TRL masks the latter out of its loss). Extra fields reach the reward functions:
``episode_reward`` (the env's episode reward), ``turn_statuses`` and ``privileged_context`` (the last attempt's).

Example::

    from trl import GRPOConfig, GRPOTrainer
    from sdpg_train.trl_repair import RepairRollout

    rollout = RepairRollout("sdpg/PyFuncRepair-v0", n=256, max_attempts=2)
    trainer = GRPOTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", reward_funcs=[rollout.reward],
                          train_dataset=rollout.dataset, rollout_func=rollout, args=GRPOConfig(...))

Problems are found again from the prompt TRL passes (``rollout.dataset`` has one row per problem; its ``prompt`` is
the env's prompt, plain or chat with ``chat=True``). TRL's own environment path (``environment_factory``) exposes
an env's methods as tools the model calls; a repair env instead answers every attempt, which is what
``rollout_func`` expresses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["RepairRollout"]


class RepairRollout:
    """A TRL ``rollout_func`` (and its dataset and reward) over a repair env.

    Args:
        env: a multi-turn env id (``sdpg/PyFuncRepair-v0`` ...) made with ``make_kwargs``, or an env instance.
        n: problems in :attr:`dataset` (required for procedural envs).
        chat: conversational ``prompt`` column (``[{"role": "user", ...}]``) instead of plain text.
        chat_template_kwargs: passed to the chat template for prompts and chat observations.
    """

    def __init__(self, env: Any, *, n: int | None = None, chat: bool = False,
                 chat_template_kwargs: dict | None = None, **make_kwargs: Any) -> None:
        from sdpg_envs import to_dataset
        from sdpg_envs.adapters import _resolve
        from sdpg_envs.multiturn import MultiTurnEnv

        self.env, self.name = _resolve(env, make_kwargs)
        if not isinstance(self.env, MultiTurnEnv):
            raise TypeError(f"{self.name} is not a multi-turn env (use sdpg_envs.as_reward_func for single-step envs)")
        self.dataset = to_dataset(self.env, n=n, chat=chat)
        self._index = {row["problem_id"]: row["problem_index"] for row in self.dataset}
        self._by_prompt = {self.env.prompt_for(self.env.problem_at(i)): i for i in self.dataset["problem_index"]}
        self.chat_template_kwargs = chat_template_kwargs
        slug = self.name.split("/")[-1].lower().replace("-", "_")
        self.__name__ = f"{slug}_rollout"
        self.reward = _named(self.reward, f"{slug}_episode")  # TRL logs rewards/<name>/mean

    def problem_for(self, prompt: Any):
        """The problem of a prompt TRL passes (plain text, or messages whose last user turn is the env's prompt)."""
        text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
        if text not in self._by_prompt:
            raise ValueError(f"{self.name}: a prompt that is not in RepairRollout.dataset: {text[:80]!r}...; train on "
                             "rollout.dataset")
        return self.env.problem_at(self._by_prompt[text])

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list]:
        """Play one episode per prompt with ``trainer``'s model and sampling settings -> TRL's rollout dict."""
        from sdpg_train.core.multiturn_rollout import Episode, run_episodes
        from sdpg_train.core.rollout import encode_prompt, generate

        tok, args = trainer.processing_class, trainer.args
        model = trainer.accelerator.unwrap_model(trainer.model)
        gen = {"max_completion_length": args.max_completion_length, "temperature": args.temperature,
               "top_p": args.top_p, "top_k": args.top_k or None, "stop_strings": None}
        episodes = []
        for prompt in prompts:
            problem = self.problem_for(prompt)
            text = self.env.prompt_for(problem)
            episodes.append(Episode(0, problem, text, encode_prompt(tok, text, self.chat_template_kwargs)))
        run_episodes(episodes, [self.env], tok, lambda p: generate(model, tok, p, gen), chunk_size=len(episodes),
                     chat_template_kwargs=self.chat_template_kwargs)
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": None, "env_mask": [],
                                "episode_reward": [], "turn_statuses": [], "privileged_context": []}
        for e in episodes:
            ids: list[int] = []
            mask: list[int] = []
            for turn in e.turns:
                ids += turn.completion_ids + turn.observation_ids
                mask += [1] * len(turn.completion_ids) + [0] * len(turn.observation_ids)
            out["prompt_ids"].append(list(e.prompt_ids))
            out["completion_ids"].append(ids)
            out["env_mask"].append(mask)
            out["episode_reward"].append(e.reward)
            out["turn_statuses"].append([t.result.status for t in e.turns])
            out["privileged_context"].append(e.turns[-1].context)
        return out

    def reward(self, completions: Sequence[Any], episode_reward: Sequence[float] | None = None,
               **_: Any) -> list[float]:
        """The reward function to pass to TRL: each episode's reward as the env gave it (``episode_reward``)."""
        if episode_reward is None:
            raise ValueError("no episode_reward column: pass the RepairRollout itself as GRPOTrainer's rollout_func")
        return [float(r) for r in episode_reward]


def _named(method: Any, name: str) -> Any:
    def fn(*args: Any, **kwargs: Any) -> list[float]:
        return method(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = method.__doc__
    return fn
