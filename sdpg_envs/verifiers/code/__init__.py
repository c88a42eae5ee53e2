"""The code verifier: extract a program, compile it, run its tests in a sandbox, and explain the verdict.

Public API: :class:`CodeVerifier`, :class:`TestSpec`, :func:`extract_code`, :class:`CodeStatus` /
:data:`STATUSES` / :data:`STATUS_MAPPING` (the taxonomy and its mapping to SandboxFusion, LiveCodeBench and
verl), :func:`feedback_text`. See ``docs/code_envs.md``.
"""

from sdpg_envs.verifiers.code.extract import EXTRACT_MODES, extract_code
from sdpg_envs.verifiers.code.feedback import DEFAULT_MAX_CHARS, feedback_text
from sdpg_envs.verifiers.code.programs import LANGUAGES, TestSpec, normalise_io_tests
from sdpg_envs.verifiers.code.status import LCB_CODES, STATUS_MAPPING, STATUSES, VERL_CODES, CodeStatus
from sdpg_envs.verifiers.code.verifier import CodeVerifier

__all__ = ["CodeStatus", "CodeVerifier", "DEFAULT_MAX_CHARS", "EXTRACT_MODES", "LANGUAGES", "LCB_CODES",
           "STATUSES", "STATUS_MAPPING", "TestSpec", "VERL_CODES", "extract_code", "feedback_text",
           "normalise_io_tests"]
