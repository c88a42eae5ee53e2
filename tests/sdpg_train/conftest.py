"""Fixtures of the learner tests (helpers live in ``learner_fixtures``)."""

from __future__ import annotations

import pytest
from learner_fixtures import fixed_batch


@pytest.fixture
def make_fixed_batch():
    """``fixed_batch(tok, rewards, length=..., seed=...)``: a fixed rollout batch (see ``learner_fixtures``)."""
    return fixed_batch
