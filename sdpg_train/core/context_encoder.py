"""Teacher kind ``encoder``: the same base model plus a trainable conditioning pathway for the privileged context.

Design: an MLP maps the mean-pooled input embeddings of the context tokens (H) to K soft prefix vectors (K × H)
that are placed in front of the student's prompt in the teacher view; the context text itself is *not* in the
teacher prompt. Why a soft prefix rather than gated cross-attention: it needs no change inside the decoder stack,
so it works for every ``AutoModelForCausalLM`` (through ``inputs_embeds``), keeps the teacher forward a single
ordinary forward (same kernels, same KV layout, same micro-batching), and costs K extra positions instead of new
attention blocks; a cross-attention adapter would have to be patched into each architecture's layers.

The base weights are the live policy's (no copy). The pathway is trained by its own objective only — the negative
log-likelihood of verified-correct completions (reward ≥ ``success_reward_threshold``) under the teacher view,
with ``torch.autograd.grad`` w.r.t. the encoder's parameters alone, so the policy never gets a gradient from it —
and the student's loss never reaches it (the teacher forward of the update runs under ``no_grad``). The student
never sees the pathway: generation and the student view use the plain model. Saved with checkpoints as
``context_encoder.safetensors``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sdpg_train.core.head import sdpg_head
from sdpg_train.core.model_io import MicroBatch, build_view
from sdpg_train.core.rollout import pad_token_id

__all__ = ["ContextEncoder", "EncoderTeacher", "pooled_embeddings"]


class ContextEncoder(nn.Module):
    """(B, H) pooled context embedding -> (B, K, H) soft prefix vectors (LayerNorm → Linear → GELU → Linear)."""

    def __init__(self, hidden_size: int, num_prefix: int = 4, width: int = 256) -> None:
        super().__init__()
        self.hidden_size, self.num_prefix = hidden_size, num_prefix
        self.net = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, width), nn.GELU(),
                                 nn.Linear(width, num_prefix * hidden_size))
        nn.init.normal_(self.net[-1].weight, std=0.02)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.net(pooled.float()).view(pooled.shape[0], self.num_prefix, self.hidden_size)  # (B, K, H)


def pooled_embeddings(embed: nn.Embedding, contexts: list[list[int]]) -> Tensor:
    """(B, H) mean input embedding of each context's tokens (zeros for an empty context), no grad."""
    w = embed.weight
    out = torch.zeros(len(contexts), w.shape[1], dtype=torch.float32, device=w.device)
    with torch.no_grad():
        for i, ids in enumerate(contexts):
            if ids:
                out[i] = embed(torch.tensor(ids, device=w.device)).float().mean(0)
    return out


class EncoderTeacher:
    """The encoder pathway bound to a trainer: rebuilds teacher views, runs the teacher forward, trains itself."""

    def __init__(self, trainer: Any, encoder: ContextEncoder, lr: float) -> None:
        self.trainer, self.encoder = trainer, encoder
        self.optimizer = torch.optim.AdamW(encoder.parameters(), lr=lr)

    @classmethod
    def for_trainer(cls, trainer: Any) -> EncoderTeacher:
        a, lm = trainer.args, trainer.policy.lm
        size = lm.get_input_embeddings().weight.shape[1]
        enc = ContextEncoder(size, a.encoder_num_prefix, a.encoder_hidden_size).to(trainer.dist.device)
        return cls(trainer, enc, a.encoder_learning_rate)

    def attach_contexts(self, batch: Any, tview: Any, minis: list[list[MicroBatch]]) -> None:
        """Replace each teacher view by [K placeholders] + student prompt (context moved into the encoder)."""
        t, k = self.trainer, self.encoder.num_prefix
        pad = pad_token_id(t.tokenizer)
        for mb in (mb for mini in minis for mb in mini):
            if mb.teacher is None:
                continue
            rows = [i for i in mb.index if tview.prompt_ids[i] is not None]
            ctx = [t.tokenizer(tview.contexts[i], add_special_tokens=False)["input_ids"] if tview.contexts[i]
                   else [] for i in rows]
            prefixes = [([pad] * k if c else []) + list(batch.prompt_ids[i]) for i, c in zip(rows, ctx)]
            comps = [batch.completion_ids[i] for i in rows]
            mb.teacher = build_view(prefixes, comps, pad).to(t.dist.device)
            mb.extra.update(context_ids=ctx, teacher_rows=rows)

    def hidden(self, mb: MicroBatch) -> Tensor:
        """(Ntok_active, H) teacher-view hidden states with the soft prefix (grad to the encoder when enabled)."""
        lm, view = self.trainer.policy.lm, mb.teacher
        embed = lm.get_input_embeddings()
        ctx = mb.extra["context_ids"]
        embeds = embed(view.input_ids)  # (n, L, H)
        prefix = self.encoder(pooled_embeddings(embed, ctx)).to(embeds.dtype)  # (n, K, H)
        width = int(view.gather_index[0, 0]) + 1  # P: left-padded prefix width
        starts = width - view.attention_mask[:, :width].sum(1)  # (n,) first real prefix column
        k = self.encoder.num_prefix
        has = torch.tensor([bool(c) for c in ctx], device=embeds.device)  # (n,)
        cols = starts[:, None] + torch.arange(k, device=embeds.device)[None, :]  # (n, K)
        slot = torch.zeros(embeds.shape[:2], dtype=torch.bool, device=embeds.device)  # (n, L)
        slot[has] = slot[has].scatter(1, cols[has].clamp(max=embeds.shape[1] - 1), True)
        embeds = embeds.masked_scatter(slot[..., None], prefix[has].reshape(-1, embeds.shape[-1]))
        out = lm.base_model(inputs_embeds=embeds, attention_mask=view.attention_mask, position_ids=view.position_ids,
                            use_cache=False)
        h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]  # (n, L, H)
        idx = view.gather_index.unsqueeze(-1).expand(-1, -1, h.shape[-1])  # (n, T, H)
        return h.gather(1, idx)[view.token_mask]  # (Ntok_active, H)

    def train_step(self, batch: Any, minis: list[list[MicroBatch]]) -> dict[str, float]:
        """One AdamW step of the encoder on NLL of verified-correct completions under the teacher view."""
        t = self.trainer
        thr = t.args.success_reward_threshold
        params = list(self.encoder.parameters())
        grads = [torch.zeros_like(p) for p in params]
        total_nll, total_tok = 0.0, 0
        for mb in (mb for mini in minis for mb in mini):
            if mb.teacher is None:
                continue
            rows = mb.extra["teacher_rows"]
            good = torch.tensor([float(batch.rewards[i]) >= thr and bool(c)
                                 for i, c in zip(rows, mb.extra["context_ids"])], device=mb.mask.device)
            if not bool(good.any()):
                continue
            w = torch.repeat_interleave(good.float(), mb.teacher.token_mask.sum(1))  # (Ntok_active,)
            h = self.hidden(mb)
            logp = sdpg_head(h, t.policy.lm_head_weight.detach(), mb.teacher.targets, lm_bias=t.policy.lm_head_bias,
                             **t._head_kw).logp  # (Ntok_active,)
            nll = -(logp * w).sum()
            for g, d in zip(grads, torch.autograd.grad(nll, params)):  # only the encoder: the policy gets no .grad
                g.add_(d)
            total_nll += float(nll.detach())
            total_tok += int(w.sum())
        if t.dist.enabled:  # every rank joins the collectives, even with nothing to train on
            import torch.distributed as tdist

            from sdpg_train.training.distributed import all_reduce_sum

            for g in grads:
                tdist.all_reduce(g)
            total_nll, total_tok = all_reduce_sum(total_nll, t.dist), int(all_reduce_sum(total_tok, t.dist))
        if total_tok == 0:
            return {"encoder/trained_tokens": 0.0}
        for p, g in zip(params, grads):
            p.grad = g / total_tok
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"encoder/nll": total_nll / total_tok, "encoder/trained_tokens": float(total_tok)}
