"""Offline tiny models and a byte-level tokenizer (no hub access): used by tests, CI and the CPU demo."""

from __future__ import annotations

import torch
from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A minimal chat template for the byte tokenizer: ``<|role|>\\ncontent\\n`` per turn."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what byte-level BPE vocabularies are written in)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class ByteTokenizer(ByT5Tokenizer):
    """ByT5's byte tokenizer whose saved folder also reloads through ``AutoTokenizer``.

    Next to a Qwen2 ``config.json``, transformers 5 ignores the saved ``tokenizer_class`` and builds a
    ``Qwen2Tokenizer`` (a byte-level BPE) from ``vocab.json`` + ``merges.txt``; without them it had 4 tokens and
    TRL's trainers failed deep inside ``generate``. :meth:`save_pretrained` therefore also writes a merge-free
    byte-level BPE vocabulary with the same ids (pad 0, eos 1, unk 2, byte b at b + 3), so both classes encode
    and decode text identically.
    """

    def save_pretrained(self, save_directory, *args, **kwargs):  # noqa: D102
        import json
        from pathlib import Path

        out = super().save_pretrained(save_directory, *args, **kwargs)
        folder = Path(save_directory)
        config = folder / "tokenizer_config.json"
        if config.is_file():  # keep the class transformers knows; load_tokenizer maps it back to ByteTokenizer
            data = json.loads(config.read_text())
            data["tokenizer_class"] = "ByT5Tokenizer"
            config.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        chars = _bytes_to_unicode()
        specials = {str(self.pad_token): self.pad_token_id, str(self.eos_token): self.eos_token_id,
                    str(self.unk_token): self.unk_token_id}
        vocab = {**specials, **{chars[b]: b + self.offset for b in range(256)}}
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        (folder / "merges.txt").write_text("#version: 0.2\n")
        return out


def byte_tokenizer(padding_side: str = "left") -> ByteTokenizer:
    """A 259-token byte-level tokenizer (pad=0, eos=1, unk=2, bytes at 3..258) with a chat template set."""
    tok = ByteTokenizer(extra_ids=0)
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = padding_side
    return tok


def tiny_causal_lm(
    vocab_size: int = 259,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    arch: str = "qwen2",
    max_positions: int = 2048,
    tie_word_embeddings: bool = True,
    seed: int = 0,
) -> PreTrainedModel:
    """A randomly initialised Qwen2- or Llama-style causal LM built from a config (fp32, eval mode off)."""
    torch.manual_seed(seed)
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**kwargs))
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**kwargs))
    raise ValueError(f"unknown tiny architecture {arch!r}; use 'qwen2' or 'llama'")


def load_tokenizer(name_or_path: str):
    """``AutoTokenizer.from_pretrained`` that honours a saved ``tokenizer_class``.

    transformers 5 resolves the tokenizer from the model config's ``model_type`` when ``config.json`` sits
    beside the tokenizer, so a byte tokenizer saved next to a Qwen2 model would load as an empty Qwen2
    tokenizer. Reading ``tokenizer_class`` first avoids that.
    """
    import json
    from pathlib import Path

    import transformers

    config_file = Path(name_or_path) / "tokenizer_config.json"
    if config_file.is_file():
        cls_name = json.loads(config_file.read_text()).get("tokenizer_class")
        cls = getattr(transformers, cls_name, None) if cls_name else None
        cls = ByteTokenizer if cls is ByT5Tokenizer else cls
        if cls is not None:
            return cls.from_pretrained(name_or_path)
    return transformers.AutoTokenizer.from_pretrained(name_or_path)
