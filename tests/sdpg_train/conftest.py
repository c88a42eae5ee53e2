"""Fixtures of the learner tests (helpers live in ``learner_fixtures``)."""

from __future__ import annotations

import pytest
import torch
from learner_fixtures import fixed_batch


@pytest.fixture
def make_fixed_batch():
    """``fixed_batch(tok, rewards, length=..., seed=...)``: a fixed rollout batch (see ``learner_fixtures``)."""
    return fixed_batch


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads; on busy cores two threads made generate ~20x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
