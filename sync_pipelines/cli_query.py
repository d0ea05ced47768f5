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
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Iterator, Sequence

from sync_pipelines.index.embedders import Embedder, EmbedderError
from sync_pipelines.index.search import search
from sync_pipelines.index.stores.base import Match, StoreError, VectorStore

SNIPPET_CHARS = 160
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


def hits(matches: Sequence[Match]) -> list[dict]:
    """One JSON-ready row per match: rank, score, where it comes from, and a snippet."""
    rows = []
    for rank, match in enumerate(matches, 1):
        meta = match.metadata
        rows.append(
            {
                "rank": rank,
                "score": round(match.score, 4),
                "source": meta.get("source"),
                "connection": meta.get("connection"),
                "title": meta.get("title"),
                "date": _date(meta.get("timestamp_epoch")),
                "url": meta.get("url"),
                "snippet": " ".join(str(meta.get("text", "")).split())[:SNIPPET_CHARS],
                "doc_id": meta.get("doc_id"),
                "id": match.id,
            }
        )
    return rows


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
    text: str, top_k: int, source: str | None, as_user: str | None, as_json: bool
) -> int:
    """Print the hits (text or JSON); 2 for a configuration error, 1 if the search failed."""
    try:
        with index_resources() as (embedder, store):
            matches = search(text, embedder, store, top_k=top_k, source=source, as_user=as_user)
    except ValueError as exc:  # QueryConfigError, an empty query, a bad setting
        print(f"sync-pipelines query: {_redact(str(exc))}", file=sys.stderr)
        return 2
    except (StoreError, EmbedderError) as exc:
        print(f"sync-pipelines query: {exc}", file=sys.stderr)
        return 1
    rows = hits(matches)
    print(json.dumps(rows, ensure_ascii=False, indent=2) if as_json else format_hits(rows))
    return 0


def _date(epoch) -> str | None:
    if not isinstance(epoch, (int, float)):
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _redact(text: str) -> str:
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
    return text

