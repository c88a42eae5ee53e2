"""Multi-turn training (repair envs): one update against a naive reimplementation written here, feedback in the
next turn's prefix, no gradient through environment tokens, a correct second attempt rewarded, refusals.

The naive side shares no learner code: it replays each episode on a fresh env (``reset`` + ``step``), builds the
whole transcript as ONE sequence, takes log-probs of the model's tokens only (a mask over the transcript), forms
the episode advantages and each turn's teacher (that step's ``info["privileged_context"]``) by hand.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from sdpg_envs import Problem, ProceduralSource, ReasoningEnv, VerifierResult
from sdpg_envs.multiturn import MultiTurnEnv
from sdpg_train.config import SDPGConfig
from sdpg_train.core.multiturn_rollout import (
    Episode,
    EpisodeBatch,
    build_episode_teacher_view,
    episode_advantages,
    episode_batch,
    episode_metrics,
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


def parity_repair(max_attempts: int = 2, **kwargs) -> MultiTurnEnv:
    return MultiTurnEnv(ParityEnv(context="reference+feedback"), max_attempts=max_attempts, **kwargs)


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


def naive_update(tok, batch: EpisodeBatch, c: SDPGConfig, train_env_tokens: bool = False, attempts: int = 2,
                 budget: int | None = None, teacher_prefixes: list | None = None) -> torch.nn.Module:
    """The update as docs/training.md describes it; ``train_env_tokens`` (wrong on purpose) also puts the
    observation tokens into the policy-gradient term, to show the comparison would catch that. With a prompt
    ``budget`` every turn is its own sequence: the task prompt, the latest earlier attempts that fit (with their
    observations), cut from the left when even the latest alone does not fit, then the turn's completion; each
    turn's teacher prefix is appended to ``teacher_prefixes`` (row order)."""
    if budget is not None:
        return naive_truncated_update(tok, batch, c, attempts, budget, [] if teacher_prefixes is None
                                      else teacher_prefixes)
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


def naive_truncated_update(tok, batch: EpisodeBatch, c: SDPGConfig, attempts: int, budget: int,
                           teacher_prefixes: list) -> torch.nn.Module:
    model = tiny_causal_lm(seed=0).double()
    opt = torch.optim.AdamW(model.parameters(), lr=c.learning_rate, eps=c.adam_epsilon, weight_decay=0.0)
    g = c.num_generations
    rows_of = {}
    for i, k in enumerate(batch.episode_index.tolist()):
        rows_of.setdefault(k, []).append(i)
    episodes = []  # (reward, [(prefix, completion, task tokens in the prefix, context)])
    for k, rows in sorted(rows_of.items()):
        env = parity_repair(attempts)
        task, _ = env.reset(seed=problem_seed(c.seed, 0, 1, k // g))
        task_ids, done_turns, seqs = encode_prompt(tok, task), [], []
        for i in rows:
            keep = list(done_turns)
            while len(keep) > 1 and len(task_ids) + sum(map(len, keep)) > budget:
                keep.pop(0)  # the oldest earlier attempt goes first
            prefix = task_ids + [t for seg in keep for t in seg]
            cut = max(0, len(prefix) - budget)
            comp = batch.completion_ids[i]
            obs, reward, done, _, info = env.step(tok.decode(comp, skip_special_tokens=True))
            seqs.append((prefix[cut:], comp, max(0, len(task_ids) - cut), info["privileged_context"]))
            if not done:
                done_turns.append(comp + tok(obs, add_special_tokens=False)["input_ids"])
        episodes.append((task, reward, seqs))
    r = torch.tensor([e[1] for e in episodes], dtype=torch.float64).view(-1, g)
    adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).flatten()
    n_tokens = sum(len(comp) for e in episodes for _, comp, _, _ in e[2])
    total = 0.0
    for (task, _, seqs), a in zip(episodes, adv.tolist()):
        for prefix, comp, task_in, ctx in seqs:
            lpc = logprobs(model, prefix + comp, c.temperature)[len(prefix) - 1:]  # the completion's rows only
            logp = lpc.gather(1, torch.tensor(comp)[:, None]).squeeze(1)
            total = total + (-a * torch.exp(logp - logp.detach())).sum()
            # the teacher: the whole task prompt with this turn's context, then the transcript the student saw
            tprefix = encode_prompt(tok, c.teacher_template.format(prompt=task, context=ctx)) + prefix[task_in:]
            teacher_prefixes.append(tprefix)
            if a > 0:
                with torch.no_grad():
                    lq = logprobs(model, tprefix + comp, c.temperature)[len(tprefix) - 1:]
                total = total + c.beta * (lpc.exp() * (lpc - lq)).sum(-1).clamp(max=c.kl_clamp).sum()
    (total / n_tokens).backward()
    opt.step()
    return model


@pytest.mark.timeout(300)
@pytest.mark.parametrize("layout", [{}, {"share_prefix": False}, {"share_prefix": False, "pack_sequences": True},
                                    {"max_prompt_length": 100, "seed": 1}],
                         ids=["shared-prefix", "padded", "packed", "truncated-prefixes"])
def test_one_multiturn_update_matches_a_naive_reimplementation(tmp_path, layout):
    tok = byte_tokenizer()
    c = cfg(tmp_path, **layout)
    attempts = 3 if "max_prompt_length" in layout else 2
    budget = layout.get("max_prompt_length")
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=[parity_repair(attempts)], args=c, processing_class=tok)
    start = {k: v.detach().double().clone() for k, v in trainer.model.named_parameters()}
    batch = trainer._rollout(1)
    assert isinstance(batch, EpisodeBatch) and max(batch.turn_index) == attempts  # some episodes needed them all
    if budget is not None:  # transcripts over budget: earlier attempts dropped, then left-truncated
        assert max(map(len, batch.prompt_ids)) == budget and max(batch.dropped_attempts) > 0
        assert max(batch.cut_tokens) > 0
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

    teacher_prefixes = []
    assert matches(naive_update(tok, batch, c, attempts=attempts, budget=budget, teacher_prefixes=teacher_prefixes))
    if budget is None:
        assert not matches(naive_update(tok, batch, c, train_env_tokens=True))  # env tokens get no gradient
    else:
        assert metrics["episode/truncated_prefixes"] == sum(d + x > 0 for d, x in zip(batch.dropped_attempts,
                                                                                      batch.cut_tokens)) > 0
        view = build_episode_teacher_view(tok, batch, sources=c.context_sources, template=c.teacher_template,
                                          max_context_length=c.max_context_length)
        assert view.prompt_ids == teacher_prefixes  # each turn's teacher pairs with the student's own transcript


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


@pytest.mark.parametrize("observation", ["text", "chat"])
def test_a_transcript_over_the_prompt_budget_drops_the_oldest_attempts_then_left_truncates(observation):
    tok = byte_tokenizer()
    env = parity_repair(3, observation=observation)
    problem = env.problem_at(0)
    prompt = env.prompt_for(problem)
    task = encode_prompt(tok, prompt)
    odd = tok("abc", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]

    def play(budget):
        eps = [Episode(0, problem, prompt, task)]
        run_episodes(eps, [env], tok, lambda prefixes: [(odd, False)] * len(prefixes), chunk_size=1,
                     max_prompt_length=budget)
        assert len(eps[0].turns) == 3 and eps[0].reward == 0.0
        return eps

    whole = play(None)[0].turns  # no budget: every prefix is the whole transcript
    seg = [t.completion_ids + t.observation_ids for t in whole[:2]]  # attempt 1 / 2 + its feedback
    assert whole[2].prefix_ids == task + seg[0] + seg[1]
    budget = len(task) + len(seg[1]) + 5  # turn 3's transcript is over: attempt 1 goes, nothing else
    eps = play(budget)
    t1, t2, t3 = eps[0].turns
    assert max(len(t.prefix_ids) for t in eps[0].turns) <= budget
    assert t2.prefix_ids == whole[1].prefix_ids and (t2.dropped_attempts, t2.cut_tokens) == (0, 0)
    assert t3.prefix_ids == task + seg[1]  # the whole task prompt, then the latest attempt and its feedback
    assert (t3.task_len, t3.dropped_attempts, t3.cut_tokens) == (len(task), 1, 0)
    shown = tok.decode(t3.prefix_ids, skip_special_tokens=False)
    assert "Attempt 2 of 3 failed" in shown and "Attempt 1 of 3" not in shown

    tight = len(task) + len(seg[1]) - 10  # not even the task prompt + the latest attempt fit: cut from the left
    eps = play(tight)
    t1, t2, t3 = eps[0].turns
    assert t3.prefix_ids == (task + seg[1])[-tight:] and (t3.task_len, t3.dropped_attempts, t3.cut_tokens) == (
        len(task) - 10, 1, 10)
    assert t2.prefix_ids == (task + seg[0])[-tight:] and t1.prefix_ids == task
    batch = episode_batch(eps, ["parity"], group_size=1)
    m = episode_metrics(batch)
    assert (m["episode/truncated_prefixes"], m["episode/dropped_attempts"], m["episode/left_truncated_prefixes"]) \
        == (2.0, 1.0, 2.0)
    # each turn's teacher: the whole task prompt with that turn's context, then exactly the transcript it saw
    c = SDPGConfig(model_name_or_path=None)
    view = build_episode_teacher_view(tok, batch, sources=["env"], template=c.teacher_template,
                                      max_context_length=400)
    for i, turn in enumerate(eps[0].turns):
        head = encode_prompt(tok, c.teacher_template.format(prompt=prompt, context=turn.context))
        assert view.prompt_ids[i] == head + turn.prefix_ids[turn.task_len:]
    assert view.prompt_ids[2][-len(seg[1]):] == seg[1]


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


def test_samples_jsonl_logs_each_episode_transcript(tmp_path):
    trainer = SDPGTrainer(tiny_causal_lm(seed=0), env=[parity_repair()], processing_class=byte_tokenizer(),
                          args=cfg(tmp_path, log_completions=True, num_completions_to_log=5))
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and {r["step"] for r in rows} == {1}  # num_completions_to_log episodes
    assert any(len(r["turns"]) == 2 for r in rows)
    for r in rows:
        assert r["source"] == trainer.sources[0].name and r["prompt"].startswith("Say something of even length #")
        turns = r["turns"]
        assert [t["attempt"] for t in turns] == list(range(1, len(turns) + 1)) and r["status"] == turns[-1]["status"]
        for t in turns:  # each turn's verdict is the verifier's on that completion
            even = len(t["completion"]) % 2 == 0
            assert (t["status"], t["score"]) == (("correct", 1.0) if even else ("incorrect", 0.0))
            assert "Reference" in t["privileged_context"] and isinstance(t["distilled"], bool)
        for t in turns[:-1]:  # a failed attempt with attempts left: the feedback the next turn saw
            assert t["feedback"].startswith("\n\nAttempt 1 of 2 failed (incorrect).")
            assert f"odd length {len(t['completion'])}" in t["feedback"]
        assert turns[-1]["feedback"] == "" and r["reward"] == turns[-1]["score"]


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
