"""Build the docker sandbox image offline: the host's CPython + the shared libraries ``ldd`` lists + /bin/sh.

No registry is needed: a minimal root file system is assembled in a temp dir, packed into a tar and
``docker import``-ed. The interpreter keeps its host path (its RUNPATH and prefix are absolute), and
``/usr/local/bin/python3`` links to it; the image label ``sdpg.python`` records the path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

from sandboxes._common import base_python, python_prefix

DEFAULT_TAG = "sdpg-sandbox:latest"
SKIP_DIRS = {"test", "tests", "site-packages", "__pycache__", "idlelib", "tkinter", "turtledemo", "ensurepip",
             "lib2to3", "pydoc_data"}
EXTRA_BINARIES = ("/bin/sh",)


def _ldd(path: str) -> set[str]:
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    libs = set()
    for line in out.splitlines():
        match = re.search(r"(/\S+)\s+\(0x", line)
        if match:
            libs.add(match.group(1))
    return libs


def _copy(src: str, rootfs: str) -> None:
    """Copy ``src`` to the same path under ``rootfs``, following symlinks but keeping link names."""
    dst = rootfs + src
    if os.path.lexists(dst):
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.islink(src):
        target = os.readlink(src)
        os.symlink(target, dst)
        _copy(os.path.normpath(os.path.join(os.path.dirname(src), target)), rootfs)
    elif os.path.isfile(src):
        shutil.copy2(src, dst)


def assemble_rootfs(rootfs: str) -> str:
    """Fill ``rootfs`` with Python, its stdlib and shared libraries; return the interpreter path."""
    prefix, python = python_prefix(), base_python()
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    binaries = [python, *EXTRA_BINARIES]
    stdlib = os.path.join(prefix, "lib", ver)
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            src = os.path.join(dirpath, name)
            _copy(src, rootfs)
            if name.endswith(".so"):
                binaries.append(src)
    os.makedirs(rootfs + os.path.join(stdlib, "site-packages"), exist_ok=True)
    libs: set[str] = set()
    for binary in binaries:
        _copy(binary, rootfs)
        libs |= _ldd(binary)
    for lib in libs:
        _copy(lib, rootfs)
    for directory in ("tmp", "proc", "dev", "sys", "etc", "usr/local/bin", "root"):
        os.makedirs(os.path.join(rootfs, directory), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    for parent in _parents(prefix):
        os.chmod(rootfs + parent, 0o755)
    os.symlink(python, os.path.join(rootfs, "usr/local/bin/python3"))
    with open(os.path.join(rootfs, "etc/passwd"), "w") as fh:
        fh.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
    with open(os.path.join(rootfs, "etc/group"), "w") as fh:
        fh.write("root:x:0:\nnogroup:x:65534:\n")
    return python


def _parents(path: str) -> list[str]:
    parts, out = path.strip("/").split("/"), []
    for i in range(1, len(parts) + 1):
        out.append("/" + "/".join(parts[:i]))
    return out


def build_image(tag: str = DEFAULT_TAG, base_url: str | None = None) -> str:
    """Build and import the image; return its id. Raises ``RuntimeError`` when Docker is unreachable."""
    import docker

    try:
        client = docker.DockerClient(base_url=base_url, timeout=600) if base_url else docker.from_env(timeout=600)
        client.version()
    except Exception as exc:
        raise RuntimeError(f"no Docker engine reachable ({type(exc).__name__}: {exc})") from exc
    repository, _, version = tag.partition(":")
    with tempfile.TemporaryDirectory(prefix="sdpg-rootfs-") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        os.makedirs(rootfs)
        python = assemble_rootfs(rootfs)
        archive = os.path.join(tmp, "rootfs.tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".", filter=_root_owned)
        changes = [f"LABEL sdpg.python={python}", "ENV PATH=/usr/local/bin:/usr/bin:/bin",
                   "ENV LANG=C.UTF-8", "WORKDIR /tmp", 'CMD ["/usr/local/bin/python3"]']
        out = client.api.import_image_from_file(archive, repository=repository, tag=version or "latest",
                                                changes=changes)
    client.close()
    match = re.search(r"sha256:[0-9a-f]{64}", str(out))
    return match.group(0) if match else str(out)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
