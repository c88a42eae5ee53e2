"""Fixtures: one warm sandbox per backend for the whole session (docker gets a private engine if needed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# ``tests/`` is on sys.path (rootdir conftest), where ``tests/sandboxes`` would shadow the real package as a
# namespace package; put the project root first so ``import sandboxes`` finds the real one.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pytest  # noqa: E402
from sandbox_helpers import SECRET  # noqa: E402

from sandboxes import Limits, make_sandbox, probe_backends  # noqa: E402

BACKENDS = ("bwrap", "process", pytest.param("docker", marks=pytest.mark.docker))
LIMITS = Limits(wall_s=2.5, cpu_s=1.0, memory_mb=512, max_processes=32, max_output_bytes=1_000_000,
                max_file_mb=16, tmpfs_mb=64)


@pytest.fixture(scope="session")
def docker_engine():
    """A reachable engine URL with the sandbox image built (starts a private dockerd when root)."""
    from sandboxes.engine import reachable, start_private_engine
    from sandboxes.image import DEFAULT_TAG, build_image

    engine = None
    url = os.environ.get("DOCKER_HOST")
    if reachable(url) is None:
        try:
            engine = start_private_engine()
        except RuntimeError as exc:
            print(f"\n[docker] skipping docker tests: {exc}", file=sys.stderr)
            pytest.skip(f"no Docker engine and could not start one: {exc}")
        url = engine.base_url
    try:
        build_image(DEFAULT_TAG, base_url=url)
    except Exception as exc:
        if engine is not None:
            engine.stop()
        print(f"\n[docker] skipping docker tests: image build failed: {exc}", file=sys.stderr)
        pytest.skip(f"could not build the sandbox image: {exc}")
    yield url
    if engine is not None:
        engine.stop()


@pytest.fixture(scope="session")
def _sandboxes(request):
    os.environ["SDPG_TEST_SECRET"] = SECRET  # set before any worker starts: it must never reach a program
    made: dict = {}
    yield made
    for sandbox in made.values():
        sandbox.close()


@pytest.fixture(params=BACKENDS)
def sandbox(request, _sandboxes):
    """A warm sandbox of each backend (2 workers), shared by the whole session."""
    kind = request.param
    if kind not in _sandboxes:
        options: dict = {"workers": 2}
        if kind == "docker":
            options["base_url"] = request.getfixturevalue("docker_engine")
        elif not probe_backends()[kind][0]:
            pytest.skip(f"{kind} unavailable here: {probe_backends()[kind][1]}")
        _sandboxes[kind] = make_sandbox(kind, LIMITS, **options)
    return _sandboxes[kind]
