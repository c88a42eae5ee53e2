"""Isolated execution of untrusted programs: one protocol, several backends (see each module's docstring)."""

from sandboxes.base import ExecutionResult, Limits, Program, Sandbox, Status

__all__ = ["ExecutionResult", "Limits", "Program", "Sandbox", "Status"]
