"""Chunk rankings to document rankings: one place per document, and rankings fused by rank.

Grouping comes before fusion so that each ranking lists documents: a document many of whose
chunks match (a long transcript) counts once per ranking, as a short one does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sync_pipelines.index.stores.base import Match

# The constant of Cormack et al. (2009): ranks past the first few matter a little, not nothing.
RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class RankedDocument:
    doc_id: str
    best: Match  # the chunk that put the document where it is
    score: float


def document_of(match: Match) -> str:
    """The document a chunk belongs to: its `doc_id`, else the id before the chunk number."""
    return str(match.metadata.get("doc_id") or match.id.rsplit("#", 1)[0])


def best_per_document(matches: Sequence[Match]) -> list[RankedDocument]:
    """Each document once, at the place of its best chunk (matches come best first)."""
    seen: dict[str, RankedDocument] = {}
    for match in matches:
        doc_id = document_of(match)
        if doc_id not in seen:
            seen[doc_id] = RankedDocument(doc_id, match, match.score)
    return list(seen.values())


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[RankedDocument]],
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
) -> list[RankedDocument]:
    """Documents by the sum of weight/(k + rank) over the rankings that hold them.

    Ranks, not scores, are added: cosine similarity and BM25 live on unrelated scales. A
    document's best chunk is the one from the ranking that placed it highest (the earlier
    ranking on a tie), so the snippet shows why it ranked.
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    placed: dict[str, tuple[int, RankedDocument]] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, doc in enumerate(ranking, 1):
            scores[doc.doc_id] = scores.get(doc.doc_id, 0.0) + weight / (k + rank)
            if doc.doc_id not in placed or rank < placed[doc.doc_id][0]:
                placed[doc.doc_id] = (rank, doc)
    order = sorted(scores, key=lambda d: (-scores[d], placed[d][0], d))
    return [RankedDocument(d, placed[d][1].best, scores[d]) for d in order]


def title_ranking(candidates: Sequence[RankedDocument], query: str) -> list[RankedDocument]:
    """The candidates whose title holds every word of the query: the title as a phrase
    first, then the shorter title (the closer match), then the candidates' own order.

    Titles name what a document is about ("SUBS-121: Move subscriptions", a meeting with a
    person), so a document titled by the query's exact key or name must not be outranked by
    the many chat messages that merely mention it.
    """
    words = _words(query)
    if not words:
        return []
    phrase = " ".join(words)
    matches = []
    for order, doc in enumerate(candidates):
        title = _words(str(doc.best.metadata.get("title") or ""))
        if set(words) <= set(title):
            in_order = f" {phrase} " in f" {' '.join(title)} "
            matches.append(((not in_order, len(title), order), doc))
    return [doc for _, doc in sorted(matches, key=lambda pair: pair[0])]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())
