"""``sdpg doctor``: what this machine can do (Python, torch, CUDA, sandbox backends, Docker engine)."""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def collect() -> dict:
    report: dict = {"python": sys.version.split()[0], "platform": platform.platform()}
    try:
        import torch

        report["torch"] = torch.__version__
        report["cuda_available"] = bool(torch.cuda.is_available())
        report["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:  # torch missing or broken: say so rather than crash
        report["torch"] = f"unavailable ({exc})"
        report["cuda_available"] = False
    try:
        import transformers

        report["transformers"] = transformers.__version__
    except Exception as exc:
        report["transformers"] = f"unavailable ({exc})"
    from sandboxes import probe_backends

    report["sandboxes"] = {name: {"works": ok, "why": why} for name, (ok, why) in probe_backends().items()}
    report["docker_engine"] = _docker_status()
    report["gcc"] = shutil.which("gcc") or "not found"
    return report


def _docker_status() -> str:
    if shutil.which("docker") is None and shutil.which("dockerd") is None:
        return "not installed (apt-get install docker.io)"
    try:
        import docker

        client = docker.from_env(timeout=3)
        version = client.version().get("Version", "?")
        return f"reachable (engine {version})"
    except Exception as exc:
        return f"not reachable ({type(exc).__name__}: {str(exc)[:120]}); start one with `dockerd` as root"


def run(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"python        {report['python']} ({report['platform']})")
    print(f"torch         {report['torch']}")
    print(f"transformers  {report['transformers']}")
    devices = ", ".join(report.get("cuda_devices", [])) or "none"
    print(f"cuda          {'available' if report['cuda_available'] else 'not available'} (devices: {devices})")
    print(f"gcc           {report['gcc']}")
    print("sandboxes:")
    for name, info in report["sandboxes"].items():
        print(f"  {name:<8} {'works' if info['works'] else 'unavailable'}: {info['why']}")
    print(f"docker engine {report['docker_engine']}")
    return 0
