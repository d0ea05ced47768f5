"""Search the index as a given user: documents, not chunks, and only ones that user may read.

Hybrid search (the default where the store has a full-text index) ranks chunks twice, by
vector similarity and by BM25 over their text, groups each ranking by document, ranks the
documents whose title holds the query's words, and fuses these by reciprocal rank: an exact
issue key or a person's name, which a vector blurs, still comes first, and a paraphrase the
words miss is still found by meaning. Keyword mode fuses BM25 and titles the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sync_pipelines.documents import ACCESS_ALL
from sync_pipelines.index.embedders import Embedder
from sync_pipelines.index.fusion import (
    RankedDocument,
    best_per_document,
    document_of,
    reciprocal_rank_fusion,
    title_ranking,
)
from sync_pipelines.index.snippets import snippet
from sync_pipelines.index.stores.base import (
    KeywordSearchUnavailable,
    Match,
    SearchFilter,
    VectorStore,
)

SearchMode = Literal["vector", "keyword", "hybrid"]
SEARCH_MODES: tuple[str, ...] = ("vector", "keyword", "hybrid")
# A reader looks at tens of results; 1,000 stays far below Pinecone's cap of 10,000 per query.
MAX_TOP_K = 1_000
# Chunks asked for per wanted document at first: most documents fill one to a few places.
_FIRST_FETCH_PER_HIT = 4
_MIN_FETCH = 20
# Chunks asked for per ranking, at most: Pinecone's top_k cap. When one document's chunks
# fill even that, fewer than top_k documents come back.
MAX_CANDIDATES = 10_000
_GROWTH = 4
# The title ranking counts as two: a document titled by the exact key or name outranks one
# that is first by both words and meaning but only mentions it.
TITLE_WEIGHT = 2.0

log = logging.getLogger(__name__)
_warned_vector_only: set[str] = set()


@dataclass(frozen=True)
class SearchHit:
    """One document found: where it is from, how well it matched, and text to show."""

    doc_id: str
    source: str | None
    title: str | None
    date: datetime | None  # the document's time (UTC), when the source has one
    url: str | None
    score: float  # vector: cosine similarity; keyword, hybrid: fused reciprocal rank
    snippet: str  # the best chunk with neighbouring text, cut around the query's words
    chunk_id: str  # the best chunk's vector id
    metadata: dict  # the best chunk's stored metadata (access, connection, author, text...)


def check_top_k(top_k: int) -> int:
    """`top_k` if it is a number of results search can return, else a ValueError saying so."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
    return top_k


def search(
    query: str,
    embedder: Embedder,
    store: VectorStore,
    top_k: int = 5,
    source: str | None = None,
    as_user: str | None = None,
    mode: SearchMode = "hybrid",
) -> list[SearchHit]:
    """The top_k documents for `query` readable by everyone or by `as_user` (an email/group),
    one hit per document, best first.

    `mode` "hybrid" falls back to "vector" (with a warning) on a store without keyword search;
    "keyword" there raises KeywordSearchUnavailable. The store filters by access, and every
    chunk is checked again here: a store filter that was mistyped or ignored must not leak.
    """
    if not query.strip():
        raise ValueError("search query is empty")
    check_top_k(top_k)
    if mode not in SEARCH_MODES:
        raise ValueError(f"search mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
    has_keyword = getattr(store, "supports_keyword", False)
    if mode == "keyword" and not has_keyword:
        raise KeywordSearchUnavailable(getattr(store, "name", type(store).__name__))
    if mode == "hybrid" and not has_keyword:
        _warn_vector_only(store)
        mode = "vector"
    identities = [ACCESS_ALL] + ([as_user.strip().lower()] if as_user else [])
    search_filter = SearchFilter(access=identities, source=source)
    vector = embedder.embed([query])[0] if mode != "keyword" else None

    def ranked(fetch: int) -> tuple[list[list[Match]], bool]:
        """Each ranking's readable chunks, and whether any ranking may hold more."""
        rankings = []
        if mode != "vector":
            rankings.append(store.keyword_query(query, fetch, search_filter))
        if vector is not None:
            rankings.append(store.query(vector, fetch, search_filter))
        more = any(len(r) >= fetch for r in rankings)
        return [[m for m in r if search_filter.allows(m.metadata)] for r in rankings], more

    documents = _documents(ranked, top_k, query if mode != "vector" else None)
    return _hits(documents, query, store, search_filter)


def _documents(ranked, top_k: int, title_query: str | None) -> list[RankedDocument]:
    """The top_k documents, asking for more chunks while too few distinct documents came
    back and a ranking may hold more (bounded by MAX_CANDIDATES).

    With `title_query` (the lexical modes), documents titled by the query's words form one
    more ranking, weighted TITLE_WEIGHT in the fusion.
    """
    fetch = min(max(top_k * _FIRST_FETCH_PER_HIT, _MIN_FETCH), MAX_CANDIDATES)
    while True:
        rankings, more = ranked(fetch)
        per_document = [best_per_document(r) for r in rankings]
        if title_query is None:
            documents = per_document[0]
        else:
            candidates = reciprocal_rank_fusion(per_document)
            titled = title_ranking(candidates, title_query)
            weights = [1.0] * len(per_document) + [TITLE_WEIGHT]
            documents = reciprocal_rank_fusion([*per_document, titled], weights)
        if len(documents) >= top_k or not more or fetch >= MAX_CANDIDATES:
            return documents[:top_k]
        fetch = min(fetch * _GROWTH, MAX_CANDIDATES)


def _hits(
    documents: Sequence[RankedDocument], query: str, store: VectorStore, allowed: SearchFilter
) -> list[SearchHit]:
    """Hits with snippets: the neighbours of every best chunk are read in one batch, and a
    neighbour is shown only if the caller may read it and it is of the same document."""
    around = {doc.doc_id: _neighbours(doc.best) for doc in documents}
    wanted = [vector_id for pair in around.values() for vector_id in pair if vector_id]
    fetched = store.fetch_metadata(wanted) if wanted else {}
    hits = []
    for doc in documents:
        meta = doc.best.metadata
        before, after = (
            _text_of(fetched.get(vector_id), doc.doc_id, allowed)
            for vector_id in around[doc.doc_id]
        )
        text = str(meta.get("text") or "")
        hits.append(
            SearchHit(
                doc_id=doc.doc_id,
                source=meta.get("source"),
                title=meta.get("title"),
                date=_date(meta.get("timestamp_epoch")),
                url=meta.get("url"),
                score=doc.score,
                snippet=snippet(text, before, after, meta.get("title"), query),
                chunk_id=doc.best.id,
                metadata=meta,
            )
        )
    return hits


def _neighbours(match: Match) -> tuple[str | None, str]:
    """Vector ids of the chunks before (none for the first) and after this one."""
    prefix, _, number = match.id.rpartition("#")
    n = match.metadata.get("chunk_n")
    if isinstance(n, bool) or not isinstance(n, int):
        n = int(number) if number.isdigit() else 0
    prefix = prefix or match.id
    return (f"{prefix}#{n - 1}" if n > 0 else None), f"{prefix}#{n + 1}"


def _text_of(metadata: dict | None, doc_id: str, allowed: SearchFilter) -> str | None:
    if metadata is None or not allowed.allows(metadata):
        return None
    if document_of(Match("", 0.0, metadata)) != doc_id:
        return None
    return metadata.get("text")


def _date(epoch) -> datetime | None:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
        return None
    return datetime.fromtimestamp(epoch, tz=UTC)


def _warn_vector_only(store: VectorStore) -> None:
    """Once per store and process: hybrid was asked for, vector search is what it gets."""
    name = getattr(store, "name", type(store).__name__)
    if name not in _warned_vector_only:
        _warned_vector_only.add(name)
        log.warning("store %s has no keyword search: hybrid search runs as vector search", name)
