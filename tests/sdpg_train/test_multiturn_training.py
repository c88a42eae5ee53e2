"""Multi-turn training (repair envs): one update against a naive reimplementation written here, feedback in the
next turn's prefix, no gradient through environment tokens, a correct second attempt rewarded, refusals.

The naive side shares no learner code: it replays each episode on a fresh env (``reset`` + ``step``), builds the
whole transcript as ONE sequence, takes log-probs of the model's tokens only (a mask over the transcript), forms
the episode advantages and each turn's teacher (that step's ``info["privileged_context"]``) by hand.
"""

from __future__ import annotations

import re

import pytest
import torch

from sdpg_envs import Problem, ProceduralSource, ReasoningEnv, VerifierResult
from sdpg_envs.multiturn import MultiTurnEnv
from sdpg_train.config import SDPGConfig
from sdpg_train.core.multiturn_rollout import (
    Episode,
    EpisodeBatch,
    episode_advantages,
    episode_batch,
    observation_ids,
    run_episodes,
)
from sdpg_train.core.rollout import encode_prompt, problem_seed
from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm
from sdpg_train.training.trainer import SDPGTrainer


def parity_problem(seed, index: int) -> Problem:
    return Problem(f"parity-{index}", f"Say something of even length #{index % 97}", answer="even")


class ParityVerifier:
    """Reward 1 for a completion of even length (a random tiny model passes about half of its attempts)."""

    def __call__(self, problem: Problem, completion: str) -> VerifierResult:
        ok = len(completion) % 2 == 0
        feedback = "" if ok else f"odd length {len(completion)}"
        return VerifierResult(float(ok), "correct" if ok else "incorrect", feedback)

    def batch(self, problems, completions):
        return [self(p, c) for p, c in zip(problems, completions)]


class ParityEnv(ReasoningEnv):
    def __init__(self, **kwargs):
        super().__init__(ProceduralSource(parity_problem, seed=0, name="parity"), ParityVerifier(), **kwargs)


def parity_repair(**kwargs) -> MultiTurnEnv:
    return MultiTurnEnv(ParityEnv(context="reference+feedback"), max_attempts=2, **kwargs)


def cfg(tmp_path, **changes) -> SDPGConfig:
    base = dict(model_name_or_path=None, device="cpu", num_prompts_per_step=2, num_generations=4,
                max_completion_length=6, temperature=0.7, loss="sdpg", beta=0.5, alpha=0.0, gate_positive=True,
                learning_rate=2e-3, adam_epsilon=1.0, weight_decay=0.0, warmup_steps=0, max_grad_norm=1e9,
                max_steps=1, output_dir=str(tmp_path / "run"), disable_tqdm=True, save_final=False,
                log_completions=False, max_context_length=400)
    return SDPGConfig(**{**base, **changes})


# ---------------------------------------------------------------------------------------------- naive side
def logprobs(model, ids: list[int], tau: float) -> torch.Tensor:
    """(L-1, V) log-softmax(logits / τ) predicting tokens 1..L-1 of ``ids``."""
    return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].double() / tau, -1)


def naive_update(tok, batch: EpisodeBatch, c: SDPGConfig, train_env_tokens: bool = False) -> torch.nn.Module:
    """The update as docs/training.md describes it; ``train_env_tokens`` (wrong on purpose) also puts the
    observation tokens into the policy-gradient term, to show the comparison would catch that."""
    model = tiny_causal_lm(seed=0).double()
    opt = torch.optim.AdamW(model.parameters(), lr=c.learning_rate, eps=c.adam_epsilon, weight_decay=0.0)
    g = c.num_generations
    rows_of = {}  # episode -> its rows, in turn order
    for i, k in enumerate(batch.episode_index.tolist()):
        rows_of.setdefault(k, []).append(i)
    episodes = []
    for k, rows in sorted(rows_of.items()):
        env = parity_repair()
        task, _ = env.reset(seed=problem_seed(c.seed, 0, 1, k // g))
        assert env.problem.id == batch.problems[rows[0]].id
        ids, mask, turns, reward = encode_prompt(tok, task), [], [], None
        mask = [False] * len(ids)
        for t, i in enumerate(rows):
            comp = batch.completion_ids[i]
            obs, reward, done, _, info = env.step(tok.decode(comp, skip_special_tokens=True))
            turns.append((len(ids), comp, info["privileged_context"]))
            ids, mask = ids + comp, mask + [True] * len(comp)
            assert done == (t == len(rows) - 1)
            if not done:
                obs_ids = tok(obs, add_special_tokens=False)["input_ids"]
                ids, mask = ids + obs_ids, mask + [train_env_tokens] * len(obs_ids)
        episodes.append((task, ids, mask, turns, reward))
    r = torch.tensor([e[4] for e in episodes], dtype=torch.float64).view(-1, g)
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).flatten()
    n_tokens = sum(sum(e[2]) for e in episodes)
    total = 0.0
    for (task, ids, mask, turns, _), a in zip(episodes, adv.tolist()):
        lp = logprobs(model, ids, c.temperature)  # (L-1, V): row j predicts token j+1
        pos = torch.tensor([j - 1 for j, m in enumerate(mask) if m])  # model tokens only
        target = torch.tensor([ids[j] for j, m in enumerate(mask) if m])
        lp_tok = lp[pos]
        logp = lp_tok.gather(1, target[:, None]).squeeze(1)
        ratio = torch.exp(logp - logp.detach())
        loss = (-a * ratio).sum()
        if a > 0:  # the gate; each turn's teacher: its own context in the first user turn, then the transcript
            kl = []
            for start, comp, ctx in turns:
                tprefix = encode_prompt(tok, c.teacher_template.format(prompt=task, context=ctx))
                tprefix += ids[len(encode_prompt(tok, task)):start]
                with torch.no_grad():
                    lq = logprobs(model, tprefix + comp, c.temperature)[len(tprefix) - 1:]
                lpc = lp[start - 1:start - 1 + len(comp)]
                kl.append((lpc.exp() * (lpc - lq)).sum(-1).clamp(max=c.kl_clamp))
            loss = loss + c.beta * torch.cat(kl).sum()
        total = total + loss
    (total / n_tokens).backward()
    opt.step()
    return model


@pytest.mark.timeout(300)
@pytest.mark.parametrize("layout", [{}, {"share_prefix": False}, {"share_prefix": False, "pack_sequences": True}],
                         ids=["shared-prefix", "padded", "packed"])
def test_one_multiturn_update_matches_a_naive_reimplementation(tmp_path, layout):
    tok = byte_tokenizer()
    c = cfg(tmp_path, **layout)
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=[parity_repair()], args=c, processing_class=tok)
    start = {k: v.detach().double().clone() for k, v in trainer.model.named_parameters()}
    batch = trainer._rollout(1)
    assert isinstance(batch, EpisodeBatch) and max(batch.turn_index) == 2  # some episodes needed a second turn
    assert float(episode_advantages(batch)[0].abs().max()) > 0
    metrics = trainer.learn(batch, step=1)
    # only model tokens are trained: the token count is the completions', observations excluded
    assert metrics["train/num_tokens"] == sum(len(x) for x in batch.completion_ids)
    assert metrics["distill/beta"] == 0.5 and metrics["episode/turns"] > 1
    got = {k: v.detach().double() - start[k] for k, v in trainer.model.named_parameters()}

    def matches(naive) -> bool:
        ok = True
        for name, p in naive.named_parameters():
            want = p.detach() - start[name]
            assert float(want.abs().max()) > 0, name
            ok &= bool(((got[name] - want).abs() <= 2e-3 * float(want.abs().max()) + 5e-7 * start[name].abs()).all())
        return ok

    assert matches(naive_update(tok, batch, c))
    assert not matches(naive_update(tok, batch, c, train_env_tokens=True))  # env tokens get no gradient


def scripted(answers: list[list[str]], tok):
    """A generate_fn that answers episode e's turn t with ``answers[e][t]`` (EOS appended), in call order."""
    calls = {"n": 0}

    def fn(prefixes):
        out = []
        for prefix in prefixes:
            text = prefix_owner(prefix)
            out.append((tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], False))
        return out

    def prefix_owner(prefix):  # which episode and turn: the number of turns already in the transcript
        decoded = tok.decode(prefix, skip_special_tokens=False)
        e = int(re.search(r"#(\d+)", decoded).group(1)) % len(answers)
        turn = decoded.count("</s>")
        calls["n"] += 1
        return answers[e][turn]

    return fn


def test_feedback_reaches_the_next_turn_and_a_correct_second_attempt_scores():
    tok = byte_tokenizer()
    env = parity_repair()
    problems = [env.problem_at(0), env.problem_at(1)]  # "#0" and "#1"
    eps = [Episode(0, p, env.prompt_for(p), encode_prompt(tok, env.prompt_for(p))) for p in problems]
    # episode 0: odd, then even (fixed on turn 2); episode 1: odd twice (fails)
    run_episodes(eps, [env], tok, scripted([["abc", "abcd"], ["x", "xyz"]], tok), chunk_size=1)
    assert [len(e.turns) for e in eps] == [2, 2]
    assert [e.reward for e in eps] == [1.0, 0.0]
    second = eps[0].turns[1]
    shown = tok.decode(second.prefix_ids, skip_special_tokens=False)
    assert "Attempt 1 of 2 failed (incorrect)" in shown and "odd length 3" in shown  # the feedback is in the prefix
    assert shown.startswith(tok.decode(eps[0].prompt_ids)) and "abc</s>" in shown
    assert "odd length 3" in eps[0].turns[0].context  # turn 1's teacher sees turn 1's feedback
    batch = episode_batch(eps, ["parity"], group_size=2)
    adv, _ = episode_advantages(batch)
    assert batch.turn_index == [1, 2, 1, 2] and batch.rewards.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert adv[0] == adv[1] > 0 > adv[2] == adv[3]  # the episode's advantage on all its turns


def test_chat_observations_use_the_chat_template():
    tok = byte_tokenizer()
    env = parity_repair(observation="chat")
    ids = observation_ids(tok, env, [{"role": "user", "content": "bad"}], "ab", [50, tok.eos_token_id])
    assert tok.decode(ids) == "\n<|user|>\nbad\n<|assistant|>\n"
    # a template that closes every turn with EOS (as Qwen's <|im_end|>): the model's own EOS is not repeated,
    # a clipped turn (no EOS) gets it from the template
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    closed = observation_ids(tok, env, [{"role": "user", "content": "bad"}], "ab", [50, tok.eos_token_id])
    clipped = observation_ids(tok, env, [{"role": "user", "content": "bad"}], "ab", [50, 51])
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert closed == enc("\n<|user|>\nbad</s>\n<|assistant|>\n")
    assert clipped == enc("</s>\n<|user|>\nbad</s>\n<|assistant|>\n")
    text_env = parity_repair()
    assert tok.decode(observation_ids(tok, text_env, "\n\nfix it\n\n", "ab", [50])) == "\n\nfix it\n\n"


def test_chat_env_feedback_is_a_chat_templated_user_turn_in_the_trainer(tmp_path):
    tok = byte_tokenizer()
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=[parity_repair(observation="chat")], args=cfg(tmp_path),
                          processing_class=tok)
    batch = trainer._rollout(1)
    second = [i for i, t in enumerate(batch.turn_index) if t == 2]
    assert second
    for i in second:
        prev = i - 1  # the same episode's first turn (rows are episode-major, in turn order)
        tail = batch.prompt_ids[i][len(batch.prompt_ids[prev]) + len(batch.completion_ids[prev]):]
        shown = tok.decode(tail)
        assert shown.startswith("\n<|user|>\nAttempt 1 of 2 failed (incorrect).") and shown.endswith("<|assistant|>\n")
    assert trainer.learn(batch, step=1)["episode/turns"] > 1


@pytest.mark.parametrize("loss", ["grpo", "rlsd", "sdpo", "opsd"])
def test_every_other_method_trains_on_episodes(tmp_path, loss):
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=[parity_repair()], args=cfg(tmp_path, loss=loss),
                          processing_class=byte_tokenizer())
    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.train()
    assert metrics["episode/turns"] > 1 and torch.isfinite(torch.tensor(metrics["loss/total"]))
    assert any(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters()))


@pytest.mark.parametrize("changes, message", [
    (dict(loss="ppo"), "does not support multi-turn"),
    (dict(num_mini_batches=2), "num_mini_batches=1"),
])
def test_unsupported_multiturn_setups_are_refused_at_construction(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        SDPGTrainer(tiny_causal_lm(seed=0), env=[parity_repair()], args=cfg(tmp_path, **changes),
                    processing_class=byte_tokenizer())
    with pytest.raises(ValueError, match="cannot be mixed"):
        SDPGTrainer(tiny_causal_lm(seed=0), env=[parity_repair(), ParityEnv()], args=cfg(tmp_path),
                    processing_class=byte_tokenizer())


def test_single_attempt_repair_env_keeps_the_single_turn_path(tmp_path):
    env = MultiTurnEnv(ParityEnv(), max_attempts=1)
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=[env], args=cfg(tmp_path), processing_class=byte_tokenizer())
    assert not trainer.multiturn and not isinstance(trainer._rollout(1), EpisodeBatch)


@pytest.mark.timeout(300)
def test_sdpg_train_cli_on_pyfunc_repair(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "sdpg_train.cli", "train", "--model_name_or_path", "tiny", "--device", "cpu",
           "--env_ids", "sdpg/PyFuncRepair-v0", "--env_kwargs", '{"sdpg/PyFuncRepair-v0": {"max_attempts": 2}}',
           "--num_prompts_per_step", "2", "--num_generations", "2", "--max_completion_length", "12",
           "--max_steps", "2", "--output_dir", str(out), "--save_steps", "0", "--save_final", "false"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[-1]["episode/turns"] > 1 and "episode/compile_error_rate/turn1" in rows[-1]
