"""Search the index as a given user: only chunks that user may read ever come back."""

from __future__ import annotations

from sync_pipelines.documents import ACCESS_ALL
from sync_pipelines.index.embedders import Embedder
from sync_pipelines.index.stores.base import Match, SearchFilter, VectorStore

_OVERFETCH = 2  # extra candidates per result, so the post-filter can still fill top_k
# A reader looks at tens of results; 1,000 (2,000 candidates) stays far below Pinecone's cap
# of 10,000 per query and costs it one query plus at most 20 metadata fetches.
MAX_TOP_K = 1_000


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
) -> list[Match]:
    """The top_k chunks for `query` readable by everyone or by `as_user` (an email/group).

    The store filters by access, and the results are checked again here: a store filter that
    was mistyped or ignored must not leak a private chunk.
    """
    if not query.strip():
        raise ValueError("search query is empty")
    check_top_k(top_k)
    identities = [ACCESS_ALL] + ([as_user.strip().lower()] if as_user else [])
    search_filter = SearchFilter(access=identities, source=source)
    vector = embedder.embed([query])[0]
    matches = store.query(vector, top_k * _OVERFETCH, search_filter)
    return [m for m in matches if search_filter.allows(m.metadata)][:top_k]
