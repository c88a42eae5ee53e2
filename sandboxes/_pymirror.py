"""A world-readable mirror of the base CPython (hard links, or copies across file systems).

Needed by the ``process`` backend when the caller is root and the interpreter lives somewhere the
dropped uid cannot traverse (e.g. pyenv under a 0700 /root). The mirror holds the interpreter binary,
``libpython`` and the standard library (without ``test`` and ``site-packages``). It is built once,
in a root-owned directory under the system temp dir, and reused; a marker file is written last.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zlib

from sandboxes._common import base_python, python_prefix

MARKER = ".sdpg-mirror-complete"
SKIP_DIRS = {"test", "site-packages", "__pycache__", "idlelib", "tkinter", "turtledemo", "ensurepip"}


def reachable_by(uid: int, path: str) -> bool:
    """True when ``uid`` can execute ``path`` (checked in a child that switches to ``uid``)."""
    code = f"import os,sys; os.setgid({uid}); os.setuid({uid}); sys.exit(0 if os.access({path!r}, os.X_OK) else 1)"
    try:
        return subprocess.run([sys.executable, "-S", "-c", code], timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _link_or_copy(src: str, dst: str) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    os.chmod(dst, 0o755 if os.access(src, os.X_OK) else 0o644)


def _mirror_tree(src_root: str, dst_root: str) -> None:
    for dirpath, dirnames, filenames in os.walk(src_root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        rel = os.path.relpath(dirpath, src_root)
        target = os.path.normpath(os.path.join(dst_root, rel))
        os.makedirs(target, mode=0o755, exist_ok=True)
        for name in filenames:
            src = os.path.join(dirpath, name)
            if os.path.isfile(src) or os.path.islink(src):
                _link_or_copy(src, os.path.join(target, name))


def python_mirror() -> str:
    """Path of the mirrored interpreter (built on first use); raises ``OSError`` if it cannot be built."""
    prefix, python = python_prefix(), base_python()
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    tag = f"{ver}-{zlib.crc32(prefix.encode()):08x}-{os.geteuid()}"
    root = os.path.join(tempfile.gettempdir(), f"sdpg-pymirror-{tag}")
    mirrored = os.path.join(root, "bin", ver)
    st = os.lstat(root) if os.path.lexists(root) else None
    if st is not None and (os.path.islink(root) or st.st_uid != os.geteuid()):
        raise OSError(f"refusing to use {root}: not a directory owned by uid {os.geteuid()}")
    if os.path.exists(os.path.join(root, MARKER)):
        return mirrored
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "bin"), mode=0o755)
    os.chmod(root, 0o755)
    _link_or_copy(python, mirrored)
    lib = os.path.join(prefix, "lib")
    os.makedirs(os.path.join(root, "lib"), mode=0o755)
    for name in os.listdir(lib):
        if name.startswith("libpython"):
            _link_or_copy(os.path.join(lib, name), os.path.join(root, "lib", name))
    _mirror_tree(os.path.join(lib, ver), os.path.join(root, "lib", ver))
    os.makedirs(os.path.join(root, "lib", ver, "site-packages"), mode=0o755, exist_ok=True)
    with open(os.path.join(root, MARKER), "w") as fh:
        fh.write(prefix)
    return mirrored
