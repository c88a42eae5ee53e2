"""``docker`` backend: a pool of warm containers, each running a fork server started through ``docker exec``.

What it isolates: each container has ``network_mode="none"``, a memory limit with swap equal to it
(no swap), a pids limit, a CPU quota (one CPU by default), a read-only root file system with a
size-capped tmpfs /tmp (the work dir lives there) and a fresh /dev/shm, ``no-new-privileges``, and host /sys
and host-wide /proc files masked (``MASKED_PATHS``). The fork server runs as the container's root with only
``SERVER_CAPS``, non-dumpable; each program runs as an unprivileged uid (leased per slot from 60000-65534, see
``uids``) with no capabilities, the seccomp filter of ``sandboxes/seccomp.py`` and a fresh session keyring,
in a child forked from a template that never held a request, with rlimits, a wall-clock deadline, a CPU
budget over all its processes (summed from /proc) and output caps. After each run every process of the
container other than its idle init, the server and the template is SIGKILLed, /tmp and /dev/shm are wiped and
the uid's SysV IPC objects removed, so no files, processes or IPC carry over to the next run.

What it does not isolate: the kernel is shared with the host; the string hash seed is per worker;
the memory/pids cgroup limits are fixed per container (``Program.limits`` may lower the rlimits per
run, but the container limits stay those of the sandbox's ``limits``).

Images: build one offline with ``sdpg sandbox build-image`` (tag ``sdpg-sandbox:latest``); any image
with a Python 3 works (the label ``sdpg.python`` or ``python3`` on PATH names the interpreter).
Containers are removed in ``close()`` (also at interpreter exit).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import struct
import time
import weakref
from collections.abc import Iterable

from sandboxes import uids
from sandboxes._common import CLEAN_ENV, PRELOAD, kernel_config
from sandboxes._forkserver import START_TIMEOUT_S, ZYGOTE_SOURCE, ForkServerPool, PooledSandbox, WorkerDied
from sandboxes.base import Limits
from sandboxes.image import DEFAULT_TAG

SERVER_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETUID", "SETGID")
"""All the server keeps (as root of a container without CAP_SYS_ADMIN): hand the work dir to the program's uid,
drop to it, kill and clean up after it. The program runs as that uid with none of them (and no_new_privs)."""
MASKED_PATHS = ("/sys/fs", "/sys/class", "/sys/devices", "/sys/bus", "/sys/block", "/sys/dev", "/sys/kernel",
                "/sys/module", "/sys/power", "/sys/firmware", "/sys/hypervisor", "/proc/keys", "/proc/key-users",
                "/proc/kcore", "/proc/kallsyms", "/proc/modules", "/proc/timer_list", "/proc/sched_debug",
                "/proc/latency_stats", "/proc/acpi", "/proc/asound", "/proc/scsi", "/proc/sys", "/proc/irq",
                "/proc/bus", "/proc/fs", "/proc/vmallocinfo", "/proc/sysrq-trigger")
IDLE = "# sdpg-sandbox-idle\nimport signal\nwhile True:\n    signal.pause()\n"


class DockerWorker:
    """A fork server running in a container via ``docker exec``; speaks the attach stream protocol."""

    def __init__(self, api, container_id: str, python: str, config: dict, slot: int, user: str) -> None:
        self.slot = slot
        exec_id = api.exec_create(container_id, [python, "-c", ZYGOTE_SOURCE, json.dumps(config)], stdin=True,
                                  user=user, environment=CLEAN_ENV)["Id"]
        sock = api.exec_start(exec_id, socket=True)
        self._sock: socket.socket = getattr(sock, "_sock", sock)
        self._sock.setblocking(True)
        self._buf = bytearray()
        self._stderr = bytearray()
        self.hello = self._recv(time.monotonic() + START_TIMEOUT_S)

    def _fill(self, deadline: float) -> None:
        """Read one multiplexed frame (8-byte header: stream, 0, 0, 0, size) into the right buffer."""
        header = self._read_raw(8, deadline)
        stream, size = header[0], struct.unpack(">I", header[4:])[0]
        payload = self._read_raw(size, deadline)
        if stream == 2:
            self._stderr = (self._stderr + payload)[-2000:]
        else:
            self._buf += payload

    def _read_raw(self, n: int, deadline: float) -> bytes:
        out = bytearray()
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._sock], [], [], left)[0]:
                raise WorkerDied("docker worker did not answer in time")
            chunk = self._sock.recv(min(n - len(out), 1 << 20))
            if not chunk:
                raise WorkerDied(f"docker worker exited; stderr: {self._stderr.decode(errors='replace')[-500:]}")
            out += chunk
        return bytes(out)

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _recv(self, deadline: float) -> dict:
        size = struct.unpack(">Q", self._take(8, deadline))[0]
        return json.loads(self._take(size, deadline))

    def call(self, request: dict, timeout_s: float) -> dict:
        data = json.dumps(request).encode()
        try:
            self._sock.sendall(struct.pack(">Q", len(data)) + data)
        except OSError as exc:
            raise WorkerDied(f"could not send the program to the docker worker: {exc}") from exc
        return self._recv(time.monotonic() + timeout_s)

    def kill(self) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class DockerSandbox(PooledSandbox):
    """Runs programs in warm Docker containers; see the module docstring for the exact guarantees."""

    name = "docker"
    isolated = True

    def __init__(self, limits: Limits | None = None, *, image: str = DEFAULT_TAG, workers: int | None = None,
                 base_url: str | None = None, cpus: float = 1.0, python: str | None = None,
                 preload: Iterable[str] = PRELOAD) -> None:
        """Args:
            limits: default limits (memory/pids/tmpfs also size each container).
            image: image to run (build one with ``sdpg sandbox build-image``).
            workers: warm containers (default: CPU count).
            base_url: Docker engine URL (default: ``DOCKER_HOST`` or the local socket).
            cpus: CPU quota per container.
            python: interpreter path in the image (default: label ``sdpg.python``, else ``python3``).
            preload: stdlib modules imported once per worker.
        """
        import docker

        self.limits = limits or Limits()
        self.workers = workers or os.cpu_count() or 1
        self.image, self.cpus, self.preload = image, cpus, list(preload)
        try:
            self._client = docker.DockerClient(base_url=base_url, timeout=120) if base_url else docker.from_env(
                timeout=120)
            labels = self._client.images.get(image).labels or {}
        except Exception as exc:
            raise RuntimeError(f"docker backend unavailable: {type(exc).__name__}: {exc}. Start an engine and "
                               f"build the image with `sdpg sandbox build-image`.") from exc
        self.python = python or labels.get("sdpg.python", "python3")
        self._containers: dict[int, object] = {}
        self._uids = uids.allocate(self.workers)
        self._pool = ForkServerPool(self._start, self.workers, self.name, True, self.limits, self._teardown)
        self._finalizer = weakref.finalize(self, DockerSandbox._remove_all, self._containers)
        atexit.register(self._finalizer)

    def _container(self, slot: int):
        container = self._containers.get(slot)
        if container is not None:
            try:
                container.reload()
                if container.status == "running":
                    return container
            except Exception:
                pass
            self._remove(container)
        lim = self.limits
        api = self._client.api
        host_config = api.create_host_config(
            network_mode="none", mem_limit=f"{lim.memory_mb + 64}m", memswap_limit=f"{lim.memory_mb + 64}m",
            pids_limit=lim.max_processes + 8, nano_cpus=int(self.cpus * 1e9), read_only=True,
            tmpfs={"/tmp": f"size={lim.tmpfs_mb}m,mode=1777", "/dev/shm": "size=64m,mode=1777"},
            cap_drop=["ALL"], cap_add=list(SERVER_CAPS), security_opt=["no-new-privileges"], init=False)
        host_config["MaskedPaths"] = list(MASKED_PATHS)  # host /sys and host-wide /proc files
        created = api.create_container(
            self.image, ["python3" if self.python == "python3" else self.python, "-c", IDLE], user="0:0",
            environment=CLEAN_ENV, working_dir="/tmp", labels={"sdpg.sandbox": "1"}, hostname="sandbox",
            host_config=host_config, network_disabled=True)
        api.start(created["Id"])
        container = self._client.containers.get(created["Id"])
        self._containers[slot] = container
        return container

    def _start(self, slot: int) -> DockerWorker:
        container = self._container(slot)
        uid = self._uids.uids[slot]
        config = {"fs": "dir", "kill": "all", "kill_on_start": True, "uid": uid, "gid": uid,
                  "python": self.python, "env": CLEAN_ENV, "preload": self.preload, "work_root": "/tmp/sdpg-work",
                  "wipe": ["/tmp", "/dev/shm"], "cgroups": {}, **kernel_config()}
        return DockerWorker(self._client.api, container.id, self.python, config, slot, "0:0")

    @staticmethod
    def _remove(container) -> None:
        try:
            container.remove(force=True)
        except Exception:
            pass

    @staticmethod
    def _remove_all(containers: dict) -> None:
        for container in list(containers.values()):
            DockerSandbox._remove(container)
        containers.clear()

    def _teardown(self) -> None:
        self._finalizer()
        self._uids.release()
        try:
            self._client.close()
        except Exception:
            pass



def probe(base_url: str | None = None, image: str = DEFAULT_TAG) -> tuple[bool, str]:
    """Whether a Docker engine answers and the sandbox image exists, with a plain reason."""
    from sandboxes.engine import reachable

    version = reachable(base_url)
    if version is None:
        return False, "no Docker engine reachable (start dockerd as root; tests start a private one)"
    try:
        import docker

        client = docker.DockerClient(base_url=base_url, timeout=5) if base_url else docker.from_env(timeout=5)
        try:
            client.images.get(image)
        finally:
            client.close()
    except Exception:
        return False, f"engine {version} reachable but image {image!r} missing: run `sdpg sandbox build-image`"
    return True, f"engine {version}, image {image}"
