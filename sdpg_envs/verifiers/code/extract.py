"""Get the program out of a completion: a fenced code block, or the raw text.

Modes:

- ``"auto"`` (default): the last fenced block tagged with the language (or untagged); if there is no fence,
  the raw completion.
- ``"fenced"``: like auto, but a completion without a fence has no program (``None``).
- ``"raw"``: the completion as it is (only surrounding blank lines removed).

An unterminated trailing fence (generation stopped mid-block) yields everything after it.

Example:
    >>> extract_code("Here:\\n```python\\ndef f(x):\\n    return x\\n```\\nDone.")
    'def f(x):\\n    return x\\n'
    >>> extract_code("def f(x): return 1", mode="fenced") is None
    True
"""

from __future__ import annotations

import re

EXTRACT_MODES = ("auto", "fenced", "raw")
LANGUAGE_TAGS: dict[str, tuple[str, ...]] = {
    "python": ("python", "py", "python3", "py3"),
    "c": ("c", "h"),
    "cpp": ("cpp", "c++", "cc", "cxx", "hpp"),
}
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.M | re.S)


def _strip_blank_lines(text: str) -> str:
    lines = text.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def extract_code(completion: str, *, mode: str = "auto", language: str = "python") -> str | None:
    """The program in ``completion`` (``None`` when the mode finds none).

    Args:
        completion: Model output.
        mode: ``"auto"``, ``"fenced"`` or ``"raw"`` (see the module docstring).
        language: ``"python"``, ``"c"`` or ``"cpp"``; selects which fence tags count as this language.

    Raises:
        ValueError: Unknown mode or language.
    """
    if mode not in EXTRACT_MODES:
        raise ValueError(f"unknown extraction mode {mode!r}; choose from {', '.join(EXTRACT_MODES)}")
    if language not in LANGUAGE_TAGS:
        raise ValueError(f"unknown language {language!r}; choose from {', '.join(LANGUAGE_TAGS)}")
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    if mode == "raw":
        return _strip_blank_lines(completion)
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(completion)]
    if not blocks:
        return _strip_blank_lines(completion) if mode == "auto" else None
    tags = LANGUAGE_TAGS[language]
    chosen = [body for tag, body in blocks if tag in tags] or [body for tag, body in blocks if not tag]
    body = chosen[-1] if chosen else blocks[-1][1]
    return _strip_blank_lines(body)
