"""Vector stores behind one protocol: LanceDB on local disk (default) or Pinecone."""

from sync_pipelines.index.stores.base import (
    KeywordSearchUnavailable,
    Match,
    SearchFilter,
    StoreDimensionError,
    StoreError,
    VectorRecord,
    VectorStore,
)


def build_store(kind: str, **options) -> VectorStore:
    """A store from configuration: kind "lance" (path, table) or "pinecone" (api_key, host, ...)."""
    if kind == "lance":
        from sync_pipelines.index.stores.lance import LanceStore

        return LanceStore(**options)
    if kind == "pinecone":
        from sync_pipelines.index.stores.pinecone import PineconeStore

        return PineconeStore(**options)
    raise ValueError(f"unknown vector store kind {kind!r}: expected 'lance' or 'pinecone'")


__all__ = [
    "KeywordSearchUnavailable",
    "Match",
    "SearchFilter",
    "StoreDimensionError",
    "StoreError",
    "VectorRecord",
    "VectorStore",
    "build_store",
]
