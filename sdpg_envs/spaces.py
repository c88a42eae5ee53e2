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


ROLES = ("system", "user", "assistant")


class ChatMessages(spaces.Space[list]):
    """A list of chat messages ``[{"role": ..., "content": ...}, ...]`` (the chat-format observation).

    ``contains`` accepts a ``list`` of at most ``max_messages`` dicts with exactly the keys ``role`` (one of
    :data:`ROLES`) and ``content`` (a ``str`` of at most ``max_chars`` code points); the empty list is a member
    (the observation after the last turn). ``sample`` returns one to three messages of random unicode.

    Example:
        >>> space = ChatMessages(max_chars=100)
        >>> [{"role": "user", "content": "Fix: SyntaxError"}] in space, [("user", "x")] in space
        (True, False)
    """

    def __init__(self, max_chars: int, *, max_messages: int = 256, seed: int | np.random.Generator | None = None):
        if max_chars < 1 or max_messages < 1:
            raise ValueError(f"need max_chars >= 1 and max_messages >= 1, got {max_chars}, {max_messages}")
        self.max_chars, self.max_messages = int(max_chars), int(max_messages)
        self._text = UnicodeText(min(self.max_chars, 200))
        super().__init__(None, None, seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def seed(self, seed: int | None = None) -> Any:
        seeds = super().seed(seed)
        self._text.seed(int(self.np_random.integers(2**31)))
        return seeds

    def contains(self, x: Any) -> bool:
        """True for a list of ``{"role", "content"}`` dicts within the bounds."""
        return isinstance(x, list) and len(x) <= self.max_messages and all(
            isinstance(m, dict) and m.keys() == {"role", "content"} and m["role"] in ROLES
            and isinstance(m["content"], str) and len(m["content"]) <= self.max_chars for m in x)

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, str]]:
        """One to three messages with random roles and random unicode content."""
        if mask is not None or probability is not None:
            raise ValueError("ChatMessages.sample does not support masks or probabilities")
        count = int(self.np_random.integers(1, min(3, self.max_messages) + 1))
        return [{"role": ROLES[int(self.np_random.integers(len(ROLES)))], "content": self._text.sample()}
                for _ in range(count)]

    def __repr__(self) -> str:
        return f"ChatMessages(max_chars={self.max_chars}, max_messages={self.max_messages})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatMessages) and (self.max_chars, self.max_messages) == (
            other.max_chars, other.max_messages)

    def __hash__(self) -> int:
        return hash((ChatMessages, self.max_chars, self.max_messages))
