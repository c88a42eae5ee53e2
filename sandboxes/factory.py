"""``make_sandbox`` / ``probe_backends`` / ``python_program``: the entry points most callers need."""

from __future__ import annotations

import logging
import os
import threading

from sandboxes.base import Limits, Program, Sandbox

log = logging.getLogger(__name__)
KINDS = ("auto", "bwrap", "process", "docker")
_probe_cache: dict[str, tuple[bool, str]] = {}
_lock = threading.Lock()
_warned_auto = False


def _probe(name: str) -> tuple[bool, str]:
    with _lock:
        if name not in _probe_cache:
            if name == "bwrap":
                from sandboxes.bwrap import probe
            elif name == "process":
                from sandboxes.process import probe
            else:
                from sandboxes.docker import probe
            try:
                _probe_cache[name] = probe()
            except Exception as exc:  # a probe must never crash the caller
                _probe_cache[name] = (False, f"probe failed: {type(exc).__name__}: {exc}")
        return _probe_cache[name]


def probe_backends() -> dict[str, tuple[bool, str]]:
    """For each backend name: whether it works on this machine and a plain reason."""
    return {name: _probe(name) for name in ("bwrap", "process", "docker")}


def make_sandbox(kind: str = "auto", limits: Limits | None = None, **backend_options) -> Sandbox:
    """Build a sandbox. ``auto`` = bwrap when it works here, else process (with a one-time warning).

    Args:
        kind: "auto" | "bwrap" | "process" | "docker" (env var ``SDPG_SANDBOX`` overrides "auto").
        limits: default limits for every run.
        **backend_options: passed to the backend class (e.g. ``workers=4``, ``image="sdpg-sandbox"``).
    """
    global _warned_auto
    if kind not in KINDS:
        raise ValueError(f"unknown sandbox kind {kind!r}; choose from {', '.join(KINDS)}")
    if limits is not None and not isinstance(limits, Limits):
        raise ValueError(f"limits must be a sandboxes.Limits, got {type(limits).__name__}")
    if kind == "auto":
        kind = os.environ.get("SDPG_SANDBOX", "auto")
        if kind not in KINDS:
            raise ValueError(f"SDPG_SANDBOX={kind!r} is not one of {', '.join(KINDS)}")
    if kind == "auto":
        works, why = _probe("bwrap")
        kind = "bwrap" if works else "process"
        if not works and not _warned_auto:
            _warned_auto = True
            log.warning("sandboxes: bwrap unavailable (%s); falling back to the NOT isolated 'process' backend", why)
    if kind == "bwrap":
        from sandboxes.bwrap import BwrapSandbox

        return BwrapSandbox(limits, **backend_options)
    if kind == "process":
        from sandboxes.process import ProcessSandbox

        return ProcessSandbox(limits, **backend_options)
    from sandboxes.docker import DockerSandbox

    return DockerSandbox(limits, **backend_options)


def python_program(source: str | bytes, stdin: str | bytes | None = None, files: dict | None = None,
                   limits: Limits | None = None, args: tuple[str, ...] = ()) -> Program:
    """A ``Program`` that runs ``source`` as ``main.py`` with the sandbox's Python."""
    if not isinstance(source, (str, bytes)):
        raise ValueError(f"source must be str or bytes, got {type(source).__name__}")
    all_files = dict(files or {})
    if "main.py" in all_files:
        raise ValueError("files must not contain 'main.py' (it holds the source)")
    all_files["main.py"] = source
    return Program(command=("python", "main.py", *args), files=all_files, stdin=stdin, limits=limits)
