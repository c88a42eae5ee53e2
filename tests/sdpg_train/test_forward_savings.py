"""Issue 18: forwards that cannot matter are skipped, group prefixes are shared (KV cache) and sequences packed,
all with the same losses and gradients as the padded forwards of every sample (fp32 rounding)."""

from __future__ import annotations

import pytest
import torch

from sdpg_train.config import SDPGConfig
from sdpg_train.core.layout import ViewLayout, build_packed_view, build_shared_view, common_prefixes, pack_rows
from sdpg_train.core.model_io import (
    CompletionModel,
    build_view,
    layout_cost,
    plan_group_micro_batches,
    plan_micro_batches,
)
from sdpg_train.tiny import byte_tokenizer, tiny_causal_lm
from sdpg_train.training import trainer as trainer_module
from sdpg_train.training.trainer import SDPGTrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sequences(seed: int = 0):
    """Two groups of 3: group 0 shares its whole prompt, group 1 differs after a common head (per-sample
    contexts), one member of group 1 has a shorter prompt; completions of different lengths."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda n: torch.randint(3, 259, (n,), generator=g).tolist()  # noqa: E731
    head0, head1 = rand(9), rand(6)
    prefixes = [head0] * 3 + [head1 + rand(5), head1 + rand(3), head1 + rand(7)]
    completions = [rand(k) for k in (4, 1, 1, 5, 2, 12)]
    return prefixes, completions, [0, 0, 0, 1, 1, 1]


def test_common_prefix_and_packing_plans():
    prefixes, _, groups = _sequences()
    rows, shared = common_prefixes(prefixes, groups)
    assert rows == [0, 0, 0, 1, 1, 1] and shared == [8, 6]  # whole prompt minus the token before the completion
    assert common_prefixes([[5, 6, 7], [5, 6, 7, 8]], [3, 3])[1] == [2]  # capped at the shortest prompt − 1
    packed = pack_rows([5, 3, 2, 4, 1], 5)
    assert sorted(i for r in packed for i in r) == list(range(5)) and len(packed) == 3
    assert all(sum([5, 3, 2, 4, 1][i] for i in r) <= 5 for r in packed)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_shared_and_packed_views_give_the_padded_hidden_states_and_gradients(arch):
    """Same hidden states at every completion token, and the same parameter gradients through the student's
    shared-prefix forward (the prefix's gradient accumulates over the group through the cache expansion)."""
    torch.manual_seed(0)
    model = CompletionModel(tiny_causal_lm(arch=arch, hidden_size=32, num_heads=4, seed=1))
    prefixes, completions, groups = _sequences()
    views = {"padded": build_view(prefixes, completions, 0),
             "shared": build_shared_view(prefixes, completions, groups, 0),
             "packed": build_packed_view(prefixes, completions, 0)}
    assert views["shared"].layout == "shared" and views["packed"].layout == "packed"
    assert views["shared"].prefix_ids.shape[0] == 2 and views["packed"].input_ids.shape[0] < len(prefixes)
    weight = torch.randn(sum(map(len, completions)), 32)
    hidden, grads = {}, {}
    for name, view in views.items():
        assert torch.equal(view.targets, views["padded"].targets)
        model.zero_grad()
        h = model(**view.inputs())  # (Ntok, H)
        (h * weight).sum().backward()
        hidden[name] = h.detach()
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
    for name in ("shared", "packed"):
        torch.testing.assert_close(hidden[name], hidden["padded"], atol=2e-6, rtol=1e-5)
        assert float((grads[name] - grads["padded"]).norm() / grads["padded"].norm()) <= 1e-6, name
    assert grads["padded"].abs().max() > 1e-3


def test_layout_falls_back_when_sharing_saves_nothing():
    prefixes = [[5, 6, 7, 8], [9, 10, 11, 12]]  # different groups, nothing shared
    completions = [[3, 4], [5]]
    on = ViewLayout(share_prefix=True, pack=False)
    assert on.build(prefixes, completions, [0, 1], 0).layout == "padded"
    assert on.build([[5, 6, 7, 8]] * 2, completions, [0, 0], 0).layout == "shared"
    no_grad_only = ViewLayout(share_prefix=True, share_grad=False)
    assert no_grad_only.build([[5, 6, 7, 8]] * 2, completions, [0, 0], 0, grad=True).layout == "padded"
    assert ViewLayout(pack=True).build([[5], [6], [7, 8, 9]], [[3], [4, 5], [6, 7]], [0, 1, 2], 0).layout == "packed"
    assert ViewLayout(pack=True).build([[5], [6]], [[3], [4]], [0, 1], 0).layout == "padded"  # nothing to remove


def _long_prompt_plan(budget: int, order=range(16)):
    """The long-prompt benchmark's shape: 4 groups × 4 samples, teacher prefix 915 (prompt + the group's reference
    solution), student prefix 224, completions 128; (shared-layout plan, its cost function, both views)."""
    groups = [i // 4 for i in range(16)]
    teacher = [[g + 3] * 900 + [7] * 15 for g in groups]
    student = [[g + 3] * 224 for g in groups]
    views = [(student, True), (teacher, False)]
    cost = layout_cost(ViewLayout(share_prefix=True), views, [128] * 16, groups, list(order))
    return plan_group_micro_batches(list(order), groups, cost, budget), cost, views, groups


def test_planner_budgets_the_shared_layout_and_keeps_groups_whole():
    """Long-prompt shape at budget 16,384: the padded planner could not fit 16 × (915 + 128) and left a lone
    sample; budgeting what the shared-prefix forwards compute fits all 16 in one micro-batch."""
    assert [len(b) for b in plan_micro_batches([224] * 16, [915] * 16, [128] * 16, 16_384)] == [15, 1]
    plan, cost, views, groups = _long_prompt_plan(16_384)
    assert plan == [list(range(16))] and cost(plan[0]) == 4 * 914 + 16 * (1 + 128) <= 16_384
    # the cost is what the built views compute (padding included): the costlier view's positions
    built = [ViewLayout(share_prefix=True).build([v[i] for i in plan[0]], [[5] * 128] * 16, groups, 0, grad=grad)
             for v, grad in views]
    assert all(v.layout == "shared" for v in built) and cost(plan[0]) == max(v.padded_tokens for v in built)
    # whole groups while they fit; a group over budget alone -> balanced parts, never a lone sample
    assert _long_prompt_plan(3000)[0] == [list(range(8)), list(range(8, 16))]
    assert _long_prompt_plan(1500)[0] == [list(range(k, k + 4)) for k in range(0, 16, 4)]
    assert _long_prompt_plan(1300)[0] == [list(range(k, k + 2)) for k in range(0, 16, 2)]  # one group: 1,430
    assert _long_prompt_plan(600)[0] == [[i] for i in range(16)]  # one sample is over budget: alone
    # every sample of the order exactly once, in order (skipped samples left out of the order)
    kept = [i for i in range(16) if i not in (2, 9, 10)]
    for budget in (16_384, 3000, 1300):
        plan = _long_prompt_plan(budget, kept)[0]
        assert [i for mb in plan for i in mb] == kept
    # no grouping to keep -> padded costs, sample by sample as before
    padded = layout_cost(ViewLayout(), views, [128] * 16, groups, range(16))
    assert padded(list(range(16))) == 16 * (915 + 128)


def _trainer(tmp_path, name, **changes) -> SDPGTrainer:
    cfg = SDPGConfig(**{**dict(model_name_or_path="tiny", device="cpu", num_prompts_per_step=3, num_generations=4,
                               max_steps=5, learning_rate=1e-3, beta=0.5, alpha=0.0, max_context_length=48,
                               output_dir=str(tmp_path / name), disable_tqdm=True, save_final=False,
                               log_completions=False), **changes})
    return SDPGTrainer(env=["sdpg/Arith-v0"], args=cfg, processing_class=byte_tokenizer())


def _one_step(trainer: SDPGTrainer, batch, step: int = 1):
    """(gradients at the optimizer step, parameters after it, metrics, rows the decoder forwarded)."""
    names = {id(p): k for k, p in trainer.model.named_parameters()}
    grads: dict[str, torch.Tensor] = {}
    trainer.optimizer.register_step_pre_hook(lambda opt, *_: grads.update(
        {names[id(p)]: p.grad.clone() for g in opt.param_groups for p in g["params"] if id(p) in names}))
    rows = []
    decoder = trainer.policy.backbone()
    handle = decoder.register_forward_pre_hook(lambda m, a, kw: rows.append(kw["input_ids"].shape[0]),
                                               with_kwargs=True)
    metrics = trainer.learn(batch, step)
    handle.remove()
    flat = lambda d: torch.cat([d[k].flatten() for k in sorted(d)])  # noqa: E731
    return flat(grads), flat(dict(trainer.model.named_parameters())).detach(), metrics, sum(rows)


@pytest.mark.timeout(180)
def test_zero_advantage_samples_skip_every_forward_with_the_same_update(tmp_path, make_fixed_batch):
    """gate_positive, α = 0: a group with equal rewards (A = 0) gets no forward at all; the gradient (and so the
    update) is the same as with its forwards, because its tokens stay in the denominator."""
    batch = make_fixed_batch(byte_tokenizer(), [[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]],
                             length=8)
    runs = {skip: _one_step(_trainer(tmp_path, f"s{skip}", gate_positive=True, skip_zero_advantage=skip,
                                     share_prefix=False), batch) for skip in (True, False)}
    (g1, p1, m1, rows1), (g0, p0, m0, rows0) = runs[True], runs[False]
    torch.testing.assert_close(g1, g0, atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(p1, p0, atol=1e-7, rtol=1e-6)
    assert m1["loss/total"] == pytest.approx(m0["loss/total"], rel=1e-5, abs=1e-9)
    assert m1["skipped/student_forward"] == pytest.approx(8 / 12) and m0["skipped/student_forward"] == 0.0
    assert m1["skipped/teacher_forward"] == pytest.approx(10 / 12)  # only the two A > 0 samples distil
    assert m1["skipped/ref_forward"] == 1.0  # α = 0: no reference model
    assert rows1 == 4 + 2 and rows0 == 12 + 2  # student rows + teacher rows actually forwarded
    # every sample skipped: no forward, yet the optimizer steps exactly as with zero gradients
    flat_batch = make_fixed_batch(byte_tokenizer(), [[1.0] * 4, [0.0] * 4, [0.0] * 4], length=8)
    runs = {skip: _one_step(_trainer(tmp_path, f"all{skip}", gate_positive=True, skip_zero_advantage=skip,
                                     share_prefix=False, weight_decay=0.1), flat_batch) for skip in (True, False)}
    assert runs[True][3] == 0 and runs[False][3] == 12
    torch.testing.assert_close(runs[True][1], runs[False][1], atol=0, rtol=0)


@pytest.mark.timeout(120)
def test_no_teacher_forward_at_zero_beta_and_no_reference_at_zero_alpha(tmp_path, make_fixed_batch):
    batch = make_fixed_batch(byte_tokenizer(), [[0.0, 1.0, 0.0, 1.0]] * 3, length=6)
    trainer = _trainer(tmp_path, "decay", beta_decay_steps=2, max_steps=2, share_prefix=False)  # β(2) = 0
    calls = []
    real = trainer.method.teacher_forward
    trainer.method.teacher_forward = lambda mb: calls.append(mb) or real(mb)
    m1 = trainer.learn(batch, 1)
    assert calls and m1["distill/beta"] > 0 and m1["skipped/teacher_forward"] == 0.0
    calls.clear()
    m2 = trainer.learn(batch, 2)
    assert not calls and m2["distill/beta"] == 0.0 and m2["skipped/teacher_forward"] == 1.0
    assert trainer.ref is None and m2["skipped/ref_forward"] == 1.0
    with_ref = _trainer(tmp_path, "ref", alpha=0.01)
    assert with_ref.ref is not None and with_ref.learn(batch, 1)["skipped/ref_forward"] == 0.0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("changes", [dict(share_prefix=True), dict(share_prefix=False, pack_sequences=True),
                                     dict(share_prefix=True, pack_sequences=True, num_mini_batches=3)],
                         ids=lambda c: "+".join(k for k, v in c.items() if v))
def test_shared_and_packed_steps_match_the_padded_step(tmp_path, make_fixed_batch, changes):
    """One SDPG step (teacher with per-sample contexts, reference term, several micro-batches) with shared prefixes
    and/or packing == the padded step: same gradients and parameters to fp32 rounding, and the layouts ran."""
    batch = make_fixed_batch(byte_tokenizer(), [[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]],
                             length=50)
    base = dict(alpha=0.01, max_tokens_per_micro_batch=1500, num_mini_batches=changes.get("num_mini_batches", 1))
    g0, p0, m0, _ = _one_step(_trainer(tmp_path, "padded", share_prefix=False, pack_sequences=False, **base), batch)
    g1, p1, m1, _ = _one_step(_trainer(tmp_path, "fast", **{**base, **changes}), batch)
    assert m1["train/micro_batches"] >= 2
    assert m1["layout/shared_frac" if changes.get("share_prefix") else "layout/packed_frac"] > 0
    assert m0["layout/shared_frac"] == m0["layout/packed_frac"] == 0.0
    assert float((g1 - g0).norm() / g0.norm()) <= 1e-5
    assert float((p1 - p0).norm() / p0.norm()) <= 1e-6
    assert m1["loss/policy"] == pytest.approx(m0["loss/policy"], rel=1e-4, abs=1e-7)


@pytest.mark.timeout(240)
def test_shared_prefix_plans_split_differently_with_the_unsplit_update(tmp_path, make_fixed_batch, monkeypatch):
    """With shared prefixes the planner keeps groups whole (budget 700: 3 micro-batches of 4 where the padded
    planner makes 3, 3, 2, 3 and a lone sample) or splits an over-budget group into halves (600); both steps equal
    the unsplit step to fp32 rounding, so no sample is dropped, duplicated or paired with another's advantage."""
    batch = make_fixed_batch(byte_tokenizer(), [[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]],
                             length=50)
    plans, real = [], trainer_module.plan_step

    def recording_plan_step(b, teacher_prompts, *args, **kw):
        minis = real(b, teacher_prompts, *args, **kw)
        old = plan_micro_batches([len(p) for p in b.prompt_ids], [len(t) for t in teacher_prompts],
                                 b.completion_lengths.tolist(), kw["max_tokens"])
        plans.append(([mb.index for mini in minis for mb in mini], old))
        return minis

    monkeypatch.setattr(trainer_module, "plan_step", recording_plan_step)
    g0, p0, m0, _ = _one_step(_trainer(tmp_path, "whole", alpha=0.01, max_tokens_per_micro_batch=10**6), batch)
    assert plans[-1][0] == [list(range(12))] and m0["layout/shared_frac"] == 1.0
    expected = {700: [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], 600: [[k, k + 1] for k in range(0, 12, 2)]}
    for budget, plan in expected.items():
        g1, p1, m1, _ = _one_step(_trainer(tmp_path, f"b{budget}", alpha=0.01, max_tokens_per_micro_batch=budget),
                                  batch)
        new, old = plans[-1]
        assert new == plan and m1["train/micro_batches"] == len(plan)
        assert (new != old) == (budget == 700) and (budget != 700 or [11] in old)
        assert float((g1 - g0).norm() / g0.norm()) <= 1e-5, budget
        assert float((p1 - p0).norm() / p0.norm()) <= 1e-6, budget
        assert m1["loss/policy"] == pytest.approx(m0["loss/policy"], rel=1e-4, abs=1e-7)
