"""SDPGConfig: defaults, YAML + command-line layering, coercion, validation, immutability, docs coverage."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sdpg_train.config import _FIELD_DOCS, SDPGConfig

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_every_field_is_documented():
    cfg = SDPGConfig()
    assert cfg.loss == "sdpg" and cfg.num_generations == 8
    names = [f.name for f in dataclasses.fields(SDPGConfig)]
    assert set(_FIELD_DOCS) == set(names), set(names) - set(_FIELD_DOCS)
    assert all(len(doc) > 10 for doc in _FIELD_DOCS.values())


def test_training_docs_cover_every_field():
    text = (REPO / "docs" / "training.md").read_text()
    missing = [f.name for f in dataclasses.fields(SDPGConfig) if f"`{f.name}`" not in text]
    assert not missing, f"docs/training.md lacks: {missing}"


def test_yaml_then_cli_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-5\nnum_generations: 4\nstop_strings: ['###']\nloss: grpo\n")
    cfg = SDPGConfig.from_yaml(path)
    assert cfg.learning_rate == 1e-5 and cfg.num_generations == 4 and cfg.stop_strings == ["###"]
    assert cfg.effective_beta_base == 0.0 and not cfg.needs_teacher
    cfg = SDPGConfig.from_args(["--config", str(path), "--num_generations", "2", "--gate_positive",
                                "--stop_strings", "a", "b", "--env_kwargs", '{"sdpg/Arith-v0": {"digits": 3}}',
                                "--save_total_limit", "none", "--full_ref_kl", "false", "--max_steps", "1e3"])
    assert cfg.learning_rate == 1e-5  # from the file
    assert cfg.num_generations == 2 and cfg.gate_positive is True and cfg.full_ref_kl is False
    assert cfg.stop_strings == ["a", "b"] and cfg.env_kwargs == {"sdpg/Arith-v0": {"digits": 3}}
    assert cfg.save_total_limit is None and cfg.max_steps == 1000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"loss": "dpo"}, "loss must be one of"),
        ({"num_generations": 0}, "num_generations must be ≥ 1"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"top_p": 1.5}, "top_p"),
        ({"kl_mode": "js"}, "kl_mode"),
        ({"teacher_model_kind": "frozen"}, "teacher_model_kind"),
        ({"context_sources": ["oracle"]}, "context_sources"),
        ({"env_weights": [1.0, 2.0]}, "env_weights"),
        ({"teacher_template": "no placeholders"}, "{prompt}"),
        ({"num_prompts_per_step": 3, "num_mini_batches": 2}, "divisible"),
        ({"report_to": ["mlflow"]}, "report_to"),
    ],
)
def test_invalid_values_raise_clear_errors(changes, message):
    with pytest.raises(ValueError, match="invalid SDPGConfig") as info:
        SDPGConfig(**changes)
    assert message in str(info.value)


def test_unknown_keys_and_bad_types_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown SDPGConfig field"):
        SDPGConfig.from_dict({"lr": 1e-3})
    with pytest.raises(ValueError, match="num_generations"):
        SDPGConfig.from_dict({"num_generations": "eight"})
    with pytest.raises(FileNotFoundError):
        SDPGConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(SystemExit):  # argparse rejects a non-bool
        SDPGConfig.from_args(["--gate_positive", "maybe"])


def test_frozen_after_parsing():
    cfg = SDPGConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.learning_rate = 1.0  # type: ignore[misc]
    other = cfg.replace(learning_rate=2e-6)
    assert other.learning_rate == 2e-6 and cfg.learning_rate == 1e-6


def test_example_config_loads():
    cfg = SDPGConfig.from_yaml(REPO / "examples" / "configs" / "tiny_cpu.yaml")
    assert cfg.model_name_or_path == "tiny" and cfg.env_ids == ["sdpg/Arith-v0"]
    assert SDPGConfig.from_dict(cfg.to_dict()) == cfg


def test_auto_head_chunk_keeps_one_buffer_near_128_mib():
    cfg = SDPGConfig()
    assert cfg.head_chunk_size == 0
    assert cfg.head_chunk_for(151_936) == 220 and cfg.head_chunk_for(32_768) == 1024
    assert cfg.head_chunk_for(259) == 4096 and cfg.head_chunk_for(10**8) == 64
    assert cfg.head_chunk_for(151_936, "cuda") == 1766
    assert SDPGConfig(head_chunk_size=333).head_chunk_for(151_936) == 333
