"""Find the final answer in a model response: ``\\boxed{}``/``\\fbox``, GSM8K ``####``, "the answer is", LaTeX
math segments, and (optionally) the last number.

Pure string work (no sympy), linear in the input length.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from sdpg_envs.verifiers.math.options import MathOptions

_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_GSM = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_PHRASE = re.compile(
    r"(?:final\s+answer\s*(?:is|:)|the\s+answer\s+is|answer\s*(?:is|:|=)|answer\b)\s*(?::\s*)?",
    re.IGNORECASE,
)
_FINAL = re.compile(r"final\s+answer", re.IGNORECASE)
# Math segments. No content may contain its own opener, so a failed match stops at the next opener and finditer
# stays linear (a lazy ".+?" rescanned to the end for every unclosed "\\(": minutes on 100 kB).
_MATH_SEG = re.compile(
    r"(?<!\\)\$\$((?:[^$]|\$(?!\$))+?)(?<!\\)\$\$"
    r"|\\\[((?:[^\\]|\\\\|\\(?![\[\]]))+?)\\\]"
    r"|\\\(((?:[^\\]|\\\\|\\(?![()]))+?)\\\)"
    r"|(?<!\\)\$((?:[^$\n\\]|\\.)+?)(?<!\\)\$",
    re.DOTALL,
)
_MAX_RUN = 64
_SEGMENT_LOOKAHEAD = 2_000
ARTIFACT = re.compile(
    r"\\\\(?=(?:frac|dfrac|tfrac|sqrt|left|right|boxed|pi|cdot|le|ge|leq|geq|text|infty|in|circ|times)(?![a-zA-Z]))"
)
_NUMBER = re.compile(r"-?\d+ \d+/\d+(?![\d/])|"  # a plain-text mixed number "3 1/8"
                     r"-?\d+,\d{1,2}(?![\d,])|-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_JOIN_PUNCT = re.compile(r"^(?:[\s,;.$]|\\[()\[\]]|\\quad|\\qquad|\\,|\\;|\\ |&|\\\\)*$")
_HEDGE_WORDS = re.compile(r"\b(?:or|maybe|perhaps|possibly|alternatively|otherwise)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n\s*\n|\bI hope\b")
_CLAUSE_BREAK = re.compile(
    r",?\s+(?:since|because|as|which|so|but|given|when|where|after|from|for|if)\b|[;(]"
    r"|,\s+(?!(?:and|or)\b)(?=[A-Za-z]{3,})", re.IGNORECASE)
_LEAD_ADVERB = re.compile(r"^(?:probably|likely|clearly|exactly|simply|just|then|therefore|thus|now)\s+", re.I)
_HEDGE_NUMBERS = re.compile(r"\b(?:or|maybe|might|perhaps|possibly|could)\b", re.IGNORECASE)
_THINK_END = "</think>"
_CODE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_LIST_JOIN = re.compile(r"[\s,;]*(?:and\s*)?")
_MAX_OTHERS = 4
_PLACEHOLDER = re.compile(r"\\phantom\{[^{}]*\}|\s*")  # "\boxed{\phantom{2}}": an empty box in the question
_CLOCK_TEXT = re.compile(r"\b\d{1,2}(?::\d{2})?\s*[AaPp]\.?\s*[Mm]\b\.?")
_STATED = re.compile(r"\banswer\s+(?:is|=)|\banswer\s*:", re.IGNORECASE)


class Segment(NamedTuple):
    """A math segment ``$..$``, ``$$..$$``, ``\\(..\\)`` or ``\\[..\\]``: its span and stripped content."""

    start: int
    end: int
    content: str


def math_segments(text: str, last: int | None = None) -> list[Segment]:
    """Math segments ``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]`` left to right (only the ``last`` ones if
    given), in linear time."""
    matches = deque(_MATH_SEG.finditer(text), maxlen=last)
    return [Segment(m.start(), m.end(), next(g for g in m.groups() if g is not None).strip()) for m in matches]


@dataclass(frozen=True)
class Extraction:
    """The extracted final answer (``None`` when none was found), how it was found, and whether it was hedged."""

    answer: str | None
    method: str
    hedged: bool = False
    others: tuple[str, ...] = ()
    """Other final answers stated apart from ``answer`` (earlier boxes, "the answer is" after the last box);
    the verifier rejects the response when they do not agree with it."""


def _braced(text: str, start: int) -> tuple[str, int]:
    """Content of the brace group opening at ``text[start] == '{'`` and the index after it (nested, ``\\{`` aware)."""
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return text[start + 1 :], len(text)


def find_boxes(text: str) -> list[tuple[int, int, str]]:
    """All ``\\boxed{..}``, ``\\boxed 5`` and ``\\fbox{..}`` as (start, end, content), outermost only."""
    boxes: list[tuple[int, int, str]] = []
    pos = 0
    while True:
        m = _BOX.search(text, pos)
        if m is None:
            return boxes
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            content, end = _braced(text, i)
        else:
            tail = re.match(r"[^\s$]*", text[i:])
            content, end = tail.group(0), i + tail.end()
            content = content.rstrip(".,;")
        boxes.append((m.start(), end, content.strip()))
        pos = max(end, m.end())


def _joiner_kind(between: str) -> str:
    """'join' if two boxes separated by ``between`` form one answer list, 'hedge' if joined by 'or', else 'split'."""
    if len(between) > 60 or "\n\n" in between:
        return "split"
    plain = re.sub(r"\\text(?:bf|rm|normal)?\{([^{}]*)\}|\\mbox\{([^{}]*)\}", r" \1\2 ", between)
    if _JOIN_PUNCT.match(between) or re.fullmatch(r"[^A-Za-z0-9\n]{0,20}", between):
        return "join"
    words = re.findall(r"[A-Za-z]+", plain)
    if _HEDGE_WORDS.search(plain):
        return "hedge"
    if "and" in (w.lower() for w in words) and len(words) <= 6:
        return "join"
    return "split"


def _box_groups(text: str, boxes: list[tuple[int, int, str]]) -> list[str]:
    """Boxes joined by commas/"and" form one answer; any other text (incl. "or") separates answers."""
    groups: list[list[str]] = [[boxes[0][2]]]
    for prev, box in zip(boxes, boxes[1:]):
        if _joiner_kind(text[prev[1] : box[0]]) == "join":
            groups[-1].append(box[2])
        else:
            groups.append([box[2]])
    return [", ".join(dict.fromkeys(group)) for group in groups]


def _from_boxes(text: str, boxes: list[tuple[int, int, str]], reject_hedged: bool) -> Extraction:
    """The last box group is the answer; earlier groups that differ ("\\boxed{3} or \\boxed{5}", a box in an earlier
    paragraph) are other final answers, which the verifier requires to be correct too."""
    boxes = [b for b in boxes if not _PLACEHOLDER.fullmatch(b[2])] or boxes
    groups = _box_groups(text, boxes)
    answer = groups[-1]
    if not reject_hedged:
        return Extraction(answer, "boxed")
    others = list(dict.fromkeys(a for a in groups[:-1] if a != answer and a))
    stated = _STATED.search(text, boxes[-1][1])
    after = _phrase_answer(text[stated.start() :]) if stated else None
    if after and after != answer and re.search(r"\d", after):
        others.append(after)
    if len(others) > _MAX_OTHERS:
        return Extraction(answer, "boxed", True)
    return Extraction(answer, "boxed", False, tuple(others))


def _phrase_answer(text: str) -> str | None:
    """Answer after the last "final answer is"/"the answer is"/"Answer:" up to the end of its sentence."""
    matches = list(_PHRASE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :].lstrip()
    first = math_segments(rest[:_SEGMENT_LOOKAHEAD])
    if first and first[0].start == 0:
        return first[0].content
    end = _SENTENCE_END.search(rest)
    sentence = rest[: end.start()] if end else rest
    hedge = _hedged_numbers(sentence)
    if hedge:
        return hedge
    sentence = _CLAUSE_BREAK.split(sentence, 1)[0]  # "20, since 15 + 5 = 20": the reason is not the answer
    if " is " in sentence:  # "Final Answer: The largest $n$ is 34."
        sentence = sentence.rsplit(" is ", 1)[1]
    sentence = _LEAD_ADVERB.sub("", sentence.strip())
    found = math_segments(sentence, _MAX_RUN + 1)
    segments = [seg.content for seg in found]
    gaps = "".join(sentence[a:b] for a, b in zip([0] + [g.end for g in found], [g.start for g in found] + [None]))
    if 1 < len(segments) <= _MAX_RUN and re.fullmatch(r"(?:[\s,;\"'\\]|and|or)*", gaps):
        return ", ".join(segments)  # "$12$ and $13$"
    if segments:
        return segments[-1]
    if not _looks_bare(sentence):
        numbers = _NUMBER.findall(sentence)
        return numbers[-1] if numbers else None
    return sentence.strip().rstrip(".") or None


def _hedged_numbers(sentence: str) -> str | None:
    """ "18, but it might be 20" / "It could be 18 or 20": every number, as a list (which no scalar gold equals)."""
    if len(sentence) > 300 or not _HEDGE_NUMBERS.search(sentence) or "$" in sentence:
        return None
    distinct = list(dict.fromkeys(n.replace(",", "") for n in _NUMBER.findall(sentence)))
    return ", ".join(distinct) if len(distinct) > 1 else None


def _looks_bare(text: str) -> bool:
    """A short string with no sentence structure is itself the answer (e.g. ``3/4``, ``x = 5``, ``28 percent``)."""
    stripped = text.strip()
    if len(stripped) > 200 or "\n\n" in stripped:
        return False
    segs = math_segments(stripped)
    if segs and (segs[0].start > 0 or segs[0].end < len(stripped.rstrip(". "))):
        return False
    words = re.findall(r"(?<![\\a-zA-Z])[A-Za-z]{2,}", re.sub(r"\\[a-zA-Z]+\{[^{}]*\}", "", stripped))
    return len(words) <= 2 and " is " not in stripped


def _strip_delimiters(text: str) -> str:
    s = text.strip()
    for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            return s[len(left) : len(s) - len(right)].strip()
    return s


def extract_answer(text: str, options: MathOptions | None = None) -> Extraction:
    """Extract the final answer from a response (or return a bare answer as is).

    Order: last ``\\boxed{}`` group, GSM8K ``#### x``, "the answer is x", a bare short answer, the last LaTeX math
    segment, and finally the last number (if ``options.allow_last_number_fallback``).

    >>> extract_answer("So the total is \\\\boxed{\\\\frac{1}{2}}.").answer
    '\\\\frac{1}{2}'
    >>> extract_answer("She pays 5 + 7 = 12 dollars.\\n#### 12").answer
    '12'
    """
    options = options or MathOptions()
    if not isinstance(text, str):
        return Extraction(None, "none")
    text = ARTIFACT.sub(r"\\", text[-options.max_input_chars :])
    if _THINK_END in text:
        text = text.rsplit(_THINK_END, 1)[1]
    text = re.sub(r"\*\*([^*\n]{1,80})\*\*", r"\1", text)  # markdown bold: "**Answer:** 18"
    text = _CODE.sub("\n\n", text)  # code is not an answer: no box, phrase or number is taken from it
    boxes = find_boxes(text)
    if boxes:
        after = text[boxes[-1][1] :]
        if _FINAL.search(after):  # "... \boxed{255} ... Final Answer: The final answer is $10,455$."
            phrase = _phrase_answer(after)
            if phrase:
                return Extraction(phrase, "phrase")
        return _from_boxes(text, boxes, options.reject_hedged)
    gsm = _GSM.findall(text)
    if gsm:  # earlier "#### x" lines that differ are other final answers
        others = tuple(dict.fromkeys(g.strip() for g in gsm[:-1] if g.strip() != gsm[-1].strip()))
        return Extraction(gsm[-1].strip(), "gsm8k", len(others) > _MAX_OTHERS, others[:_MAX_OTHERS])
    if _looks_bare(text):
        bare = _strip_delimiters(text)
        if bare and "$" not in bare.replace("\\$", ""):
            return Extraction(bare, "bare")
    phrase = _phrase_answer(text)
    if phrase:
        return Extraction(phrase, "phrase")
    segments = math_segments(text, _MAX_RUN)
    tail = text[segments[-1].end :] if segments else text
    number = _last_match(_NUMBER, tail) if options.allow_last_number_fallback else None
    if number:  # a number in the prose after the last math segment is the later statement
        sentence = _SENTENCE_END.split(tail[max(0, number.start() - 300) : number.end()])[-1]
        hedge = _hedged_numbers(sentence) if options.reject_hedged else None  # "It could be 18 or 20."
        if hedge:
            return Extraction(hedge, "last_number", True)
        clock = _last_match(_CLOCK_TEXT, tail)
        if clock and clock.end() >= number.end():  # "It arrives at 9:00 AM." -> a time of day
            return Extraction(clock.group(0), "last_number")
        return Extraction(number.group(0), "last_number")
    if segments:
        return Extraction(_segment_run(text, segments), "latex")
    return Extraction(None, "none")


def _last_match(pattern: re.Pattern, text: str, window: int = 2_000) -> re.Match | None:
    """The last match of ``pattern``, looking at the end of ``text`` first (a match clear of the window's start
    is the same as in the full text)."""
    start = max(0, len(text) - window)
    last = deque(pattern.finditer(text, start), maxlen=1)
    if start and (not last or last[0].start() < start + 100):
        last = deque(pattern.finditer(text), maxlen=1)
    return last[0] if last else None


def _segment_run(text: str, segments: list[Segment]) -> str:
    """The last math segment, or the run of segments ending it joined by commas/"and" ("$7$, $9$ and $13$")."""
    run = [segments[-1]]
    for prev in reversed(segments[:-1]):
        if len(run) == _MAX_RUN or not _LIST_JOIN.fullmatch(text[prev.end : run[-1].start]):
            break
        run.append(prev)
    return ", ".join(seg.content for seg in reversed(run))
