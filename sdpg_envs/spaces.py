"""A text space that accepts any unicode string (``gymnasium.spaces.Text`` rejects LaTeX and code)."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

# Characters :meth:`UnicodeText.sample` draws from besides arbitrary code points: printable ASCII plus the
# symbols that show up in maths and code, so samples look like (hostile) completions.
_COMMON = string.printable + "\\{}^_$€£πθαβγ∞≤≥≠±×÷√∑∫∂∈∅°²³½–—“”‘’…\u200b\u00a0\ufeff"
_MAX_CODEPOINT = 0x10FFFF


class UnicodeText(spaces.Text):
    """Any ``str`` whose length (in code points) is between ``min_length`` and ``max_length``, both inclusive.

    ``contains`` checks only the type and the length, so prompts with LaTeX, code or emoji are members.
    ``sample`` returns garbage of a uniformly random length: a mix of printable ASCII, maths/code symbols and
    arbitrary code points (including lone surrogates and NUL), which is what ``check_env`` feeds to ``step``.

    Example:
        >>> space = UnicodeText(max_length=50)
        >>> r"\\frac{1}{2} ≤ π" in space
        True
        >>> "x" * 51 in space
        False
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | np.random.Generator | None = None):
        super().__init__(max_length, min_length=min_length, charset=_COMMON, seed=seed)

    def contains(self, x: Any) -> bool:
        """Return True for any ``str`` within the length bounds."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """Random unicode text of a uniformly random length; masks are not supported for this space."""
        if mask is not None or probability is not None:
            raise ValueError("UnicodeText.sample does not support masks or probabilities")
        length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        common = np.array(list(_COMMON))
        from_common = self.np_random.random(length) < 0.8
        chars = np.where(
            from_common,
            common[self.np_random.integers(0, len(common), size=length)],
            np.array([chr(c) for c in self.np_random.integers(0, _MAX_CODEPOINT + 1, size=length)], dtype=object)
            if length
            else np.array([], dtype=object),
        )
        return "".join(chars.tolist())

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    def __hash__(self) -> int:
        return hash((UnicodeText, self.min_length, self.max_length))
