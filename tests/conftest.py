"""Offline fixtures shared by every test: tiny models, a byte tokenizer, the shared data folder, seeded RNG."""

from __future__ import annotations

import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``$SDPG_SHARED_DIR`` or ``../shared`` next to the project root."""
    return Path(os.environ.get("SDPG_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = shared_dir() / "data"
    if not path.is_dir():
        pytest.fail(f"shared data folder not found at {path}; set SDPG_SHARED_DIR")
    return path


@pytest.fixture(scope="session")
def shared_benchmarks_dir() -> Path:
    path = shared_dir() / "benchmarks"
    if not path.is_dir():
        pytest.fail(f"shared benchmarks folder not found at {path}; set SDPG_SHARED_DIR")
    return path


# Tiny models run fastest single-threaded; it also keeps tests from fighting over the 2 CI cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def tokenizer():
    from sdpg_train.tiny import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture
def tiny_model():
    """A ~90k-parameter Qwen2-style causal LM over the 259-token byte vocabulary."""
    from sdpg_train.tiny import tiny_causal_lm

    return tiny_causal_lm()


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_model, tokenizer) -> Path:
    """The tiny model and tokenizer saved with ``save_pretrained`` (loadable by path)."""
    out = tmp_path / "tiny-model"
    tiny_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
