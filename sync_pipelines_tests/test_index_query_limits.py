"""Pinecone's query limits (top_k ≤ 10,000, a result ≤ 4 MB): the emulator enforces them and
PineconeStore stays within them for any top_k, by clamping and by fetching metadata in pages."""

from __future__ import annotations

import httpx
import numpy as np
import pinecone
import pytest

from sync_pipelines.index.stores.base import SearchFilter, VectorRecord
from sync_pipelines.index.stores.pinecone import QUERY_METADATA_TOP_K, PineconeStore
from sync_pipelines_sandbox.pinecone_api import MAX_RESULT_BYTES, SANDBOX_PINECONE_KEY
from sync_pipelines_sandbox.server import Sandbox

DIM = 8
RECORDS = 1_500
TEXT_BYTES = 3_000  # ~ a 400-token chunk: 1,500 of them with metadata are ~4.6 MB


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(pinecone_dimension=DIM) as sb:
        store = PineconeStore(SANDBOX_PINECONE_KEY, sb.pinecone_host, namespace="limits")
        rng = np.random.default_rng(3)
        store.upsert(
            [
                VectorRecord(
                    f"doc{i}#0",
                    rng.normal(size=DIM).astype(np.float32),
                    {"access": ["all"], "source": "slack", "text": f"{i} " + "x" * TEXT_BYTES},
                )
                for i in range(RECORDS)
            ]
        )
        yield sb


@pytest.fixture
def store(sandbox) -> PineconeStore:
    sandbox.pinecone.request_log.clear()
    return PineconeStore(SANDBOX_PINECONE_KEY, sandbox.pinecone_host, namespace="limits")


def query_vector() -> list[float]:
    return np.ones(DIM, dtype=np.float32).tolist()


def test_emulator_refuses_top_k_over_10000_and_results_over_4mb(sandbox):
    # The SDK refuses top_k > 10,000 itself: ask over plain HTTP to see the server's answer.
    over = httpx.post(
        f"{sandbox.pinecone_host}/query",
        headers={"Api-Key": SANDBOX_PINECONE_KEY},
        json={"vector": query_vector(), "topK": 10_001, "namespace": "limits"},
    )
    assert over.status_code == 400 and "between 1 and 10000" in over.json()["message"]
    index = pinecone.Pinecone(api_key=SANDBOX_PINECONE_KEY).Index(host=sandbox.pinecone_host)
    with pytest.raises(pinecone.errors.ApiError, match=f"limit of {MAX_RESULT_BYTES} bytes"):
        index.query(vector=query_vector(), top_k=2_000, namespace="limits", include_metadata=True)
    # The same top_k without metadata is a small result.
    result = index.query(vector=query_vector(), top_k=2_000, namespace="limits")
    assert len(result.matches) == RECORDS


def test_small_top_k_is_one_query_with_metadata(store, sandbox):
    matches = store.query(query_vector(), 5, SearchFilter(["all"]))
    assert len(matches) == 5 and all(m.metadata["text"] for m in matches)
    assert [route for route, _ in sandbox.pinecone.request_log] == ["query"]


def test_large_top_k_fetches_metadata_in_pages(store, sandbox):
    matches = store.query(query_vector(), 2_000, SearchFilter(["all"]))
    assert len(matches) == RECORDS
    assert all(m.metadata["text"].startswith(m.id[3:-2] + " ") for m in matches)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    routes = [route for route, _ in sandbox.pinecone.request_log]
    assert routes[0] == "query" and routes.count("fetch") == RECORDS // 100
    assert QUERY_METADATA_TOP_K < 2_000


def test_top_k_over_pinecone_cap_is_clamped(store):
    assert len(store.query(query_vector(), 20_000, SearchFilter(["all"]))) == RECORDS
