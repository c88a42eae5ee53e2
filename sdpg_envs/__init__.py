"""Gymnasium-style math and code reasoning environments whose verifiers emit privileged context."""

from sdpg_envs.types import Problem, VerifierResult

__all__ = ["Problem", "VerifierResult"]
