"""Flags several commands share: ``--import MODULE`` loads a user's module (its envs, its methods) first."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path


def add_import_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this module (or .py file) first, so the envs it registers with Gymnasium and "
                             "the methods it registers with sdpg_train.methods.register_method exist (repeatable)")


def import_modules(names: list[str]) -> None:
    """Import each ``--import`` target: a dotted module name (looked up from the current folder too) or a ``.py``
    path. Raises ``ImportError`` with a one-line message naming the target."""
    if names and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # the console script does not put the current folder on sys.path
    for name in names:
        try:
            if name.endswith(".py"):
                path = Path(name).resolve()
                if not path.is_file():
                    raise ImportError(f"no such file {path}")
                spec = importlib.util.spec_from_file_location(path.stem, path)
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[path.stem] = module
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            else:
                importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"--import {name}: {exc} (pass a module importable from the current folder or "
                              "PYTHONPATH, or a path to a .py file)") from exc
