"""Isolated execution of untrusted programs: one protocol, several backends (see each module's docstring)."""

from sandboxes.base import ExecutionResult, Limits, Program, Sandbox, Status
from sandboxes.factory import make_sandbox, probe_backends, python_program

__all__ = ["ExecutionResult", "Limits", "Program", "Sandbox", "Status", "make_sandbox", "probe_backends",
           "python_program"]
