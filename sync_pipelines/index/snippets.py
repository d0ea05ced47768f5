"""The text shown under a search hit: the best chunk with its neighbours, cut around the
query's words, so a reader sees why the document matched and what surrounds it."""

from __future__ import annotations

import re

SNIPPET_CHARS = 320
_LEAD_SHARE = 4  # a quarter of the window goes before the first query word found
_WORD = re.compile(r"\w{2,}", re.UNICODE)
_OVERLAP_PROBE = 8  # shortest overlap recognised; the opening of the next chunk searched for


def snippet(
    best: str,
    before: str | None = None,
    after: str | None = None,
    title: str | None = None,
    query: str = "",
    max_chars: int = SNIPPET_CHARS,
) -> str:
    """`best` joined to the chunks `before` and `after` it (their overlap once, the title
    header each chunk repeats dropped), then `max_chars` of it around the first query word
    in `best`; "…" marks a cut."""
    previous, middle, following = (_flat(_without_header(t, title)) for t in (before, best, after))
    text = _joined(previous, middle)
    best_span = (len(text) - len(middle), len(text))
    text = _joined(text, following)
    if len(text) <= max_chars:
        return text
    focus = _first_query_word(text, query, best_span)
    begin = max(0, min(focus - max_chars // _LEAD_SHARE, len(text) - max_chars))
    end = min(len(text), begin + max_chars)
    if begin > 0:
        begin = _word_start(text, begin)
    if end < len(text):
        end = _word_end(text, end)
    return ("…" if begin > 0 else "") + text[begin:end].strip() + ("…" if end < len(text) else "")


def _without_header(text: str | None, title: str | None) -> str:
    """The chunk without the "title\\n\\n" header chunking puts on every chunk (possibly a
    shortened title)."""
    if not text:
        return ""
    head, sep, rest = text.partition("\n\n")
    if sep and title and head.strip() and _flat(title).startswith(_flat(head)):
        return rest
    return text


def _flat(text: str) -> str:
    return " ".join(text.split())


def _overlap(first: str, second: str) -> int:
    """How many characters that end `first` open `second` (chunks overlap by design)."""
    if not first or not second:
        return 0
    probe = second[:_OVERLAP_PROBE]
    position = first.find(probe)
    while position != -1:
        if second.startswith(first[position:]):
            return len(first) - position
        position = first.find(probe, position + 1)
    return 0


def _joined(first: str, second: str) -> str:
    """`first` then `second`, the text they share once (overlaps may end inside a word)."""
    if not first or not second:
        return first or second
    shared = _overlap(first, second)
    return first + second[shared:] if shared else first + " " + second


def _first_query_word(text: str, query: str, span: tuple[int, int]) -> int:
    """Where the earliest query word occurs inside `span` of `text`; the span's start if none."""
    lowered = text.lower()
    found = [
        lowered.find(word, span[0], span[1]) for word in {w.lower() for w in _WORD.findall(query)}
    ]
    found = [position for position in found if position != -1]
    return min(found) if found else span[0]


def _word_start(text: str, position: int) -> int:
    space = text.find(" ", position)
    return position if space == -1 else space + 1


def _word_end(text: str, position: int) -> int:
    space = text.rfind(" ", 0, position)
    return position if space <= 0 else space
