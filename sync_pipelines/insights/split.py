"""Long transcripts in parts that fit the model's context, and the parts' answers merged.

A transcript is cut only between turns (lines), and a turn longer than a part only between
sentences (its speaker repeated on each piece), so every sentence, and with it every fact and
its quote, reaches the model whole. Only a single sentence longer than a whole part is cut
inside, by the token counter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.insights.schema import Extraction, Insight

_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
_SPEAKER = re.compile(r"^([^:\n]{1,80}): ")


def split_transcript(text: str, budget_tokens: int, counter: TokenCounter) -> list[str]:
    """`text` in parts of at most `budget_tokens` (by `counter`), in order, cut at turn or
    sentence boundaries; one part when it fits."""
    if budget_tokens < 16:
        raise ValueError(f"a part budget of {budget_tokens} tokens leaves no room for a transcript")
    if counter.count(text) <= budget_tokens:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for unit in _units(text, budget_tokens, counter):
        size = counter.count(unit) + 1  # the newline joining it
        if current and used + size > budget_tokens:
            parts.append("\n".join(current))
            current, used = [], 0
        current.append(unit)
        used += size
    if current:
        parts.append("\n".join(current))
    return [p for p in parts if p.strip()]


def _units(text: str, budget: int, counter: TokenCounter):
    """Lines that fit a part; longer lines as sentences (speaker kept); longer sentences cut."""
    for line in text.split("\n"):
        if counter.count(line) + 1 <= budget:
            yield line
            continue
        match = _SPEAKER.match(line)
        speaker = match.group(0) if match else ""
        if counter.count(speaker) * 2 > budget:  # a speaker label eating the part: dropped
            speaker = ""
        body = line[len(speaker) :]
        for sentence in _SENTENCE_END.split(body):
            piece = speaker + sentence
            while counter.count(piece) + 1 > budget:
                head = counter.truncate(piece, budget - 1)
                cut = head.rfind(" ")
                head = head[:cut] if cut > len(speaker) else head
                yield head
                piece = speaker + piece[len(head) :].lstrip()
            if piece.strip() != speaker.strip():
                yield piece


def merge(parts: Sequence[Extraction]) -> Extraction:
    """One answer from the parts' answers, in part order: each insight once by kind and
    value (the first quote kept, an owner filled in from a later mention), and the sentiment
    voted by the parts' sizes (neutral parts abstain; a tie of positive and negative, or
    `mixed` winning, is mixed)."""
    if len(parts) == 1:
        return parts[0]
    found: dict[tuple[str, str], Insight] = {}
    for part in parts:
        for insight in part.insights:
            seen = found.get(insight.key)
            if seen is None:
                found[insight.key] = insight
            elif seen.owner is None and insight.owner:
                found[insight.key] = Insight(seen.kind, seen.value, seen.quote, insight.owner)
    votes = {"positive": 0, "negative": 0, "mixed": 0}
    quotes: dict[str, str] = {}
    for part in parts:
        if part.sentiment in votes:
            votes[part.sentiment] += part.weight
            if part.sentiment_quote:
                quotes.setdefault(part.sentiment, part.sentiment_quote)
    sentiment = _verdict(votes)
    quote = quotes.get(sentiment) or next((q for q in quotes.values()), "")
    return Extraction(
        tuple(found.values()),
        sentiment,
        quote if sentiment != "neutral" else "",
        sum(p.weight for p in parts),
    )


def _verdict(votes: dict[str, int]) -> str:
    positive, negative, mixed = votes["positive"], votes["negative"], votes["mixed"]
    if not (positive or negative or mixed):
        return "neutral"
    if mixed >= max(positive, negative) or positive == negative:
        return "mixed"
    return "positive" if positive > negative else "negative"
