"""Parse gcc/ld output into diagnostics and render a trimmed, deterministic summary for feedback.

gcc prints ``file:line:col: kind: message`` lines (``kind``: ``error``, ``fatal error``, ``warning``, ``note``),
context lines (``file: In function 'f':``), source excerpts with carets, and the linker adds lines such as
``solution.c:(.text+0x1c): undefined reference to `g'`` and ``collect2: error: ld returned 1 exit status``.
:func:`parse_gcc` keeps the diagnostics (the linker's as ``kind="link error"``) and drops the rest;
:func:`render_diagnostics` keeps the errors first (at most ``max_errors``, each with the note right after it),
falls back to warnings when there is no error, and shows the offending source line with a caret taken from
the candidate's own code (so the excerpt is right even when the compiled file held more than the program).

Example:
    >>> out = "solution.c: In function 'f':\\nsolution.c:2:5: error: expected ';' before 'return'\\n"
    >>> [d.message for d in parse_gcc(out)]
    ["expected ';' before 'return'"]
    >>> print(render_diagnostics(parse_gcc(out), "int f(int x) {\\n    return x\\n}\\n"))
    solution.c:2:5: error: expected ';' before 'return'
        return x
        ^
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

_DIAGNOSTIC = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)? "
                         r"(?P<kind>fatal error|error|warning|note): (?P<message>.*)$")
_UNDEFINED = re.compile(r"^(?P<file>[^:\n]*?)(?::\([^)]*\))?: "
                        r"(?P<message>undefined reference to [`'](?P<name>[^`']+)'.*)$")
_LD_OTHER = re.compile(r"^(?:/\S*/)?ld: (?!.*in function)(?P<message>.+)$")
_WARNING_FLAG = re.compile(r"\s*\[-W[\w=-]+\]$")
ERROR_KINDS = ("error", "fatal error", "link error")


@dataclass(frozen=True)
class Diagnostic:
    """One compiler or linker message. ``line``/``column`` are 1-based (0 when unknown)."""

    file: str
    line: int
    column: int
    kind: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_gcc(output: str) -> list[Diagnostic]:
    """Every diagnostic in gcc/ld output, in order (context lines, excerpts and summaries dropped)."""
    found: list[Diagnostic] = []
    for raw in (output or "").splitlines():
        line = raw.rstrip()
        m = _DIAGNOSTIC.match(line)
        if m and not m.group("file").endswith(("collect2", "ld")):
            message = _WARNING_FLAG.sub("", m.group("message")).strip()
            found.append(Diagnostic(m.group("file"), int(m.group("line")), int(m.group("col") or 0),
                                    m.group("kind"), message))
            continue
        m = _UNDEFINED.match(line)
        if m:
            name = m.group("name")
            message = f"undefined reference to '{name}'" + (" (the program must define it)" if name != "main" else "")
            file = m.group("file").rsplit("/", 1)[-1].replace(".o", ".c") if m.group("file") else ""
            found.append(Diagnostic(file, 0, 0, "link error", message))
            continue
        m = _LD_OTHER.match(line)
        if m and "returned 1 exit status" not in line:
            found.append(Diagnostic("", 0, 0, "link error", m.group("message").strip()))
    return found


def _excerpt(diag: Diagnostic, source_lines: Sequence[str]) -> list[str]:
    if not 1 <= diag.line <= len(source_lines):
        return []
    text = source_lines[diag.line - 1].rstrip().expandtabs(4)
    if not text.strip():
        return []
    text = text if len(text) <= 160 else text[:157] + "..."
    caret = [" " * (min(diag.column, len(text) + 1) - 1) + "^"] if diag.column > 0 else []
    return [text, *caret]


def render_diagnostics(diagnostics: Sequence[Diagnostic], source: str = "", *, source_file: str = "solution.c",
                       max_errors: int = 3, driver_file: str = "test_driver.c",
                       driver_label: str = "test driver") -> str:
    """The errors (or, without any, the warnings) as ``file:line:col: kind: message`` lines, each followed by
    the note right after it and by the source line with a caret for diagnostics in ``source_file``.

    Diagnostics in ``driver_file`` (code compiled with the program, e.g. a test driver) are labelled
    ``driver_label`` without a position; the linker's ``linker:``; duplicates are shown once; at most
    ``max_errors`` errors, then ``(N more)``.
    """
    lines_of_source = source.splitlines()
    errors = [i for i, d in enumerate(diagnostics) if d.kind in ERROR_KINDS]
    chosen = errors or [i for i, d in enumerate(diagnostics) if d.kind == "warning"]
    distinct = len({(diagnostics[i].file, diagnostics[i].line, diagnostics[i].message) for i in chosen})
    out: list[str] = []
    seen: set[tuple[str, int, str]] = set()
    for i in chosen:
        diag = diagnostics[i]
        key = (diag.file, diag.line, diag.message)
        if key in seen:
            continue
        if len(seen) == max_errors:
            out.append(f"({distinct - len(seen)} more)")
            break
        seen.add(key)
        out.append(_head(diag, driver_file, driver_label))
        if diag.file == source_file:
            out += _excerpt(diag, lines_of_source)
        follow = diagnostics[i + 1] if i + 1 < len(diagnostics) else None
        if follow is not None and follow.kind == "note":
            out.append(_head(follow, driver_file, driver_label))
    return "\n".join(out)


def _head(diag: Diagnostic, driver_file: str, driver_label: str) -> str:
    if diag.kind == "link error" or not diag.file:
        where = "linker:"
    elif diag.file == driver_file:
        where = f"{driver_label}:"
    else:
        where = ":".join([diag.file, *(str(n) for n in (diag.line, diag.column) if n)]) + ":"
    return f"{where} {diag.kind}: {diag.message}"
