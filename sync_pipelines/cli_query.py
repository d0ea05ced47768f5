"""`sync-pipelines query`: search the index the code location writes, and show where hits are from.

The embedder and store are resolved with Dagster's `build_resources`, as a run resolves them:
their secrets are `EnvVar` fields, which a resource built by hand cannot read (the OpenAI key
raised "Attempted to directly retrieve environment variable", Pinecone answered 401).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from sync_pipelines.index.embedders import Embedder, EmbedderError
from sync_pipelines.index.search import SearchHit, search
from sync_pipelines.index.stores.base import StoreError, VectorStore

_SECRET_ENV = ("OPENAI_API_KEY", "PINECONE_API_KEY")
_UNSET_ENV = re.compile(r'environment variable "([A-Za-z_][A-Za-z0-9_]*)" which is not set')


class QueryConfigError(ValueError):
    """The embedder or vector store configuration cannot be used; the message says what to set."""


@contextmanager
def index_resources() -> Iterator[tuple[Embedder, VectorStore]]:
    """The code location's embedder and vector store (from the same env vars), ready to use."""
    from dagster import DagsterInvalidConfigError, build_resources

    from sync_pipelines.definitions import embedder_resource, vector_store_resource

    with ExitStack() as stack:
        try:
            resources = stack.enter_context(
                build_resources(
                    {"embedder": embedder_resource(), "vector_store": vector_store_resource()}
                )
            )
        except DagsterInvalidConfigError as exc:
            unset = sorted(set(_UNSET_ENV.findall(str(exc))))
            if unset:
                raise QueryConfigError(
                    f"environment variable(s) {', '.join(unset)} not set: the configured "
                    "embedder/vector store needs them (see the README's configuration table)"
                ) from None
            raise QueryConfigError(f"invalid index configuration: {_redact(str(exc))}") from None
        yield resources.embedder.build(), resources.vector_store.build()


def hits(found: Sequence[SearchHit]) -> list[dict]:
    """One JSON-ready row per document found: rank, score, where it comes from, a snippet."""
    return [
        {
            "rank": rank,
            "score": round(hit.score, 4),
            "source": hit.source,
            "connection": hit.metadata.get("connection"),
            "title": hit.title,
            "date": hit.date.strftime("%Y-%m-%dT%H:%MZ") if hit.date else None,
            "url": hit.url,
            "snippet": hit.snippet,
            "doc_id": hit.doc_id,
            "id": hit.chunk_id,
        }
        for rank, hit in enumerate(found, 1)
    ]


def format_hits(rows: Sequence[dict]) -> str:
    if not rows:
        return "no results"
    lines = []
    for row in rows:
        date = row["date"].replace("T", " ").replace("Z", " UTC") if row["date"] else "no date"
        lines.append(
            f"{row['rank']}. [{row['score']:.3f}] {row['source'] or '?'} · "
            f"{row['title'] or '(untitled)'} · {date}"
        )
        lines.append(f"   {row['url'] or '(no url)'}")
        lines.append(f"   {row['snippet']}")
    return "\n".join(lines)


def run_query(
    text: str,
    top_k: int,
    source: str | None,
    as_user: str | None,
    as_json: bool,
    mode: str = "hybrid",
) -> int:
    """Print the document hits (text or JSON); 2 for a configuration error, 1 if the search
    failed (a store without keyword search asked for keyword mode included)."""
    try:
        with index_resources() as (embedder, store):
            found = search(
                text, embedder, store, top_k=top_k, source=source, as_user=as_user, mode=mode
            )
    except ValueError as exc:  # QueryConfigError, an empty query, a bad setting
        print(f"sync-pipelines query: {_redact(str(exc))}", file=sys.stderr)
        return 2
    except (StoreError, EmbedderError) as exc:
        print(f"sync-pipelines query: {exc}", file=sys.stderr)
        return 1
    rows = hits(found)
    print(json.dumps(rows, ensure_ascii=False, indent=2) if as_json else format_hits(rows))
    return 0


def _redact(text: str) -> str:
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
    return text
