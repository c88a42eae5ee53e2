"""Start a private Docker engine (root only): ``dockerd`` with vfs storage on its own socket and data root.

Used by the docker tests and the throughput benchmark when no engine is reachable. The engine has no
iptables rules and no bridge, so it only serves containers with ``network_mode="none"``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass


@dataclass
class PrivateEngine:
    """A running ``dockerd``; call ``stop()`` (it kills the daemon and removes its directories)."""

    base_url: str
    root: str
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _unmount_under(root: str) -> None:
    try:
        with open("/proc/self/mounts") as fh:
            points = [line.split()[1] for line in fh if line.split()[1].startswith(root)]
    except OSError:
        return
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def reachable(base_url: str | None = None, timeout: float = 3.0) -> str | None:
    """The engine version when one answers at ``base_url`` (or the environment's default), else None."""
    try:
        import docker

        client = docker.DockerClient(base_url=base_url, timeout=timeout) if base_url else docker.from_env(
            timeout=timeout)
        try:
            return str(client.version().get("Version", "?"))
        finally:
            client.close()
    except Exception:
        return None


def start_private_engine(wait_s: float = 60.0) -> PrivateEngine:
    """Start ``dockerd --storage-driver=vfs --iptables=false --bridge=none`` on a private socket.

    Raises ``RuntimeError`` with the reason (not root, dockerd missing, engine did not come up).
    """
    if os.geteuid() != 0:
        raise RuntimeError("starting a Docker engine needs root")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("dockerd not installed (apt-get install docker.io)")
    root = tempfile.mkdtemp(prefix="sdpg-dockerd-")
    sock = os.path.join(root, "docker.sock")
    log = open(os.path.join(root, "dockerd.log"), "wb")
    argv = [dockerd, "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
            f"--host=unix://{sock}", f"--data-root={root}/data", f"--exec-root={root}/exec",
            f"--pidfile={root}/dockerd.pid"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    engine = PrivateEngine(f"unix://{sock}", root, proc)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(sock) and reachable(engine.base_url, timeout=2):
            return engine
        time.sleep(0.3)
    tail = ""
    try:
        with open(os.path.join(root, "dockerd.log"), "rb") as fh:
            tail = fh.read()[-600:].decode(errors="replace")
    except OSError:
        pass
    engine.stop()
    raise RuntimeError(f"dockerd did not come up within {wait_s:.0f}s: {tail.strip()}")
