"""Offline tiny models and a byte-level tokenizer (no hub access): used by tests, CI and the CPU demo."""

from __future__ import annotations

import torch
from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A minimal chat template for the byte tokenizer: ``<|role|>\\ncontent\\n`` per turn."""


def byte_tokenizer(padding_side: str = "left") -> ByT5Tokenizer:
    """A 259-token byte-level tokenizer (pad=0, eos=1, unk=2, bytes at 3..258) with a chat template set."""
    tok = ByT5Tokenizer(extra_ids=0)
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
        if cls is not None:
            return cls.from_pretrained(name_or_path)
    return transformers.AutoTokenizer.from_pretrained(name_or_path)
