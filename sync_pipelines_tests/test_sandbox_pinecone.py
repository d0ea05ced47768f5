"""The Pinecone data-plane emulator, driven by the real pinecone SDK, and its filter language."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from pinecone import Pinecone, PineconeApiException
from pinecone.errors.exceptions import UnauthorizedError

from sync_pipelines_sandbox import pinecone_filter
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY, metadata_bytes
from sync_pipelines_sandbox.server import Sandbox

DIM = 8


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(company=Company.generate(messages=200), pinecone_dimension=DIM) as sb:
        yield sb


@pytest.fixture
def index(sandbox):
    sandbox.pinecone.reset(dimension=DIM)
    sandbox.knobs.reset()
    return Pinecone(api_key=SANDBOX_PINECONE_KEY).Index(host=sandbox.pinecone_host)


def unit(i: int, dim: int = DIM) -> list[float]:
    vec = [0.01] * dim
    vec[i % dim] = 1.0
    return vec


DOCS = [
    {
        "id": "slack#1",
        "values": unit(0),
        "metadata": {
            "source": "slack",
            "channel": "general",
            "ts": 10,
            "tags": ["SUBS-1", "CORE-2"],
            "bot": False,
        },
    },
    {
        "id": "slack#2",
        "values": unit(1),
        "metadata": {
            "source": "slack",
            "channel": "engineering",
            "ts": 20,
            "tags": ["CORE-2"],
            "bot": True,
        },
    },
    {
        "id": "slack#3",
        "values": unit(2),
        "metadata": {"source": "slack", "channel": "engineering", "ts": 30, "tags": []},
    },
    {
        "id": "jira#1",
        "values": unit(3),
        "metadata": {"source": "jira", "ts": 40, "tags": ["MOBI-7"]},
    },
]


def ids_for(index, flt, namespace="docs") -> set[str]:
    result = index.query(vector=unit(0), top_k=10, namespace=namespace, filter=flt)
    return {m.id for m in result.matches}


def test_upsert_query_fetch(index, sandbox):
    assert index.upsert(vectors=DOCS, namespace="docs").upserted_count == 4
    result = index.query(vector=unit(1), top_k=2, namespace="docs", include_metadata=True)
    assert [m.id for m in result.matches][0] == "slack#2"
    assert result.matches[0].score == pytest.approx(1.0, abs=1e-5)
    assert result.matches[0].metadata["channel"] == "engineering" and result.matches[0].values == []
    assert result.matches[0].score >= result.matches[1].score
    with_values = index.query(vector=unit(1), top_k=1, namespace="docs", include_values=True)
    assert np.allclose(with_values.matches[0].values, unit(1))
    by_id = index.query(id="jira#1", top_k=1, namespace="docs")
    assert by_id.matches[0].id == "jira#1"
    fetched = index.fetch(ids=["slack#1", "missing"], namespace="docs")
    assert set(fetched.vectors) == {"slack#1"}
    assert fetched.vectors["slack#1"].metadata["tags"] == ["SUBS-1", "CORE-2"]
    assert np.allclose(fetched.vectors["slack#1"].values, unit(0))
    stored = sandbox.pinecone.vectors("docs")
    assert set(stored) == {d["id"] for d in DOCS} and stored["jira#1"][1]["source"] == "jira"
    assert ("upsert", 4) in sandbox.pinecone.request_log
    assert sandbox.knobs.calls["upsert"] == 1 and sandbox.knobs.calls["query"] == 3


def test_filters(index):
    index.upsert(vectors=DOCS, namespace="docs")
    assert ids_for(index, {"source": "jira"}) == {"jira#1"}
    assert ids_for(index, {"source": {"$ne": "jira"}}) == {"slack#1", "slack#2", "slack#3"}
    assert ids_for(index, {"ts": {"$gte": 20, "$lt": 40}}) == {"slack#2", "slack#3"}
    assert ids_for(index, {"ts": {"$gt": 30}}) == {"jira#1"}
    assert ids_for(index, {"ts": {"$lte": 10}}) == {"slack#1"}
    assert ids_for(index, {"channel": {"$in": ["general", "random"]}}) == {"slack#1"}
    assert ids_for(index, {"channel": {"$nin": ["general"]}}) == {"slack#2", "slack#3", "jira#1"}
    assert ids_for(index, {"channel": {"$exists": False}}) == {"jira#1"}
    # list-valued fields: $eq/$in match any element, $ne/$nin match when no element does
    assert ids_for(index, {"tags": "CORE-2"}) == {"slack#1", "slack#2"}
    assert ids_for(index, {"tags": {"$in": ["MOBI-7", "SUBS-1"]}}) == {"slack#1", "jira#1"}
    assert ids_for(index, {"tags": {"$nin": ["CORE-2"]}}) == {"slack#3", "jira#1"}
    assert ids_for(index, {"tags": {"$ne": "SUBS-1"}}) == {"slack#2", "slack#3", "jira#1"}
    assert ids_for(index, {"$or": [{"source": "jira"}, {"bot": True}]}) == {"jira#1", "slack#2"}
    assert ids_for(index, {"$and": [{"source": "slack"}, {"bot": {"$eq": False}}]}) == {"slack#1"}
    with pytest.raises(PineconeApiException):
        index.query(vector=unit(0), top_k=1, namespace="docs", filter={"ts": {"$regex": "1"}})


def test_filter_semantics_unit():
    meta = {"n": 1, "flag": True, "tags": ["a", "b"]}
    assert pinecone_filter.matches({"n": 1}, meta) and not pinecone_filter.matches(
        {"flag": 1}, meta
    )
    assert pinecone_filter.matches({"missing": {"$nin": ["x"]}}, meta)
    assert not pinecone_filter.matches({"missing": {"$in": ["x"]}}, meta)
    assert not pinecone_filter.matches({"tags": {"$gt": 0}}, meta)
    with pytest.raises(pinecone_filter.FilterError):
        pinecone_filter.validate({"$not": {"n": 1}})
    with pytest.raises(pinecone_filter.FilterError):
        pinecone_filter.validate({"n": {"$in": "a"}})


def test_delete_update_list_stats(index, sandbox):
    index.upsert(vectors=DOCS, namespace="docs")
    index.upsert(vectors=[{"id": "default#1", "values": unit(4)}])
    stats = index.describe_index_stats()
    assert stats.dimension == DIM and stats.total_vector_count == 5
    assert (
        stats.namespaces["docs"].vector_count == 4
        and stats.namespaces["__default__"].vector_count == 1
    )
    index.update(id="slack#3", set_metadata={"channel": "random", "new": "yes"}, namespace="docs")
    assert sandbox.pinecone.vectors("docs")["slack#3"][1] == {
        "source": "slack",
        "channel": "random",
        "ts": 30,
        "tags": [],
        "new": "yes",
    }
    index.update(id="slack#3", values=unit(5), namespace="docs")
    assert np.allclose(sandbox.pinecone.vectors("docs")["slack#3"][0], unit(5))
    first = index.list_paginated(namespace="docs", prefix="slack#", limit=2)
    assert [v.id for v in first.vectors] == ["slack#1", "slack#2"] and first.pagination.next
    second = index.list_paginated(
        namespace="docs", prefix="slack#", limit=2, pagination_token=first.pagination.next
    )
    assert [v.id for v in second.vectors] == ["slack#3"] and second.pagination is None
    index.delete(ids=["slack#1"], namespace="docs")
    index.delete(filter={"source": "jira"}, namespace="docs")
    assert set(sandbox.pinecone.vectors("docs")) == {"slack#2", "slack#3"}
    index.delete(delete_all=True, namespace="docs")
    stats = index.describe_index_stats()
    assert "docs" not in stats.namespaces and stats.total_vector_count == 1


def test_update_as_documented(index, sandbox):
    """By id: merges setMetadata, keeps values; an unknown id is a 200 that creates nothing.
    By filter: metadata only, `dryRun` counts without writing."""
    shared = {"id": "doc#0", "values": unit(6), "metadata": {"access": ["a@x", "b@x"], "t": "x"}}
    index.upsert(vectors=[shared, *DOCS], namespace="docs")
    by_b = {"access": {"$in": ["b@x"]}}
    assert ids_for(index, by_b) == {"doc#0"}
    index.update(id="doc#0", set_metadata={"access": ["a@x"]}, namespace="docs")
    assert ids_for(index, by_b) == set() and ids_for(index, {"access": "a@x"}) == {"doc#0"}
    values, metadata = sandbox.pinecone.vectors("docs")["doc#0"]
    assert values == pytest.approx(unit(6)) and metadata == {"access": ["a@x"], "t": "x"}

    assert index.update(id="ghost#0", set_metadata={"t": "y"}, namespace="docs") is not None
    assert index.update(id="doc#0", set_metadata={"t": "y"}, namespace="elsewhere")
    assert "ghost#0" not in sandbox.pinecone.vectors("docs")
    assert sandbox.pinecone.vectors("elsewhere") == {}
    assert sandbox.knobs.calls["update"] == 3
    assert sandbox.pinecone.request_log.count(("update", 1)) == 3

    slack = {"source": "slack"}
    dry = index.update(filter=slack, set_metadata={"seen": True}, namespace="docs", dry_run=True)
    assert dry.matched_records == 3 and ids_for(index, {"seen": True}) == set()
    done = index.update(filter=slack, set_metadata={"seen": True}, namespace="docs")
    assert done.matched_records == 3 and ids_for(index, {"seen": True}) == {
        "slack#1", "slack#2", "slack#3"
    }


@pytest.mark.parametrize(
    "body, message",
    [
        ({"setMetadata": {"t": "y"}}, "Exactly one of id or filter"),
        ({"id": "doc#0", "filter": {"t": "x"}}, "Exactly one of id or filter"),
        ({"filter": {"t": "x"}, "values": unit(0)}, "only be updated by id"),
        ({"filter": {}, "setMetadata": {"t": "y"}}, "at least one condition"),
        ({"id": "doc#0", "setMetadata": {"t": None}}, "must be a string"),
        ({"id": "doc#0", "values": [1.0]}, "dimension"),
        ({"id": "doc#0", "setMetadata": {"t": "x" * 41_000}}, "exceeds the limit of 40960"),
        ({"id": "doc#0", "setMetadata": {"u": "x" * 40_945}}, "would exceed 40960"),  # merged
    ],
)
def test_update_refuses_what_pinecone_refuses(index, sandbox, body, message):
    index.upsert(vectors=[{"id": "doc#0", "values": unit(0), "metadata": {"t": "x"}}])
    headers = {"Api-Key": SANDBOX_PINECONE_KEY}
    answer = httpx.post(f"{sandbox.pinecone_host}/vectors/update", json=body, headers=headers)
    assert answer.status_code == 400 and answer.json()["code"] == 3
    assert message in answer.json()["message"]
    assert sandbox.pinecone.vectors("")["doc#0"] == (pytest.approx(unit(0)), {"t": "x"})


def test_request_size_limit_245_fit_246_do_not(index, sandbox):
    sandbox.pinecone.reset(dimension=1536)
    metadata = {"text": "x" * (2000 - len('{"text":""}'))}
    assert metadata_bytes(metadata) == 2000
    vectors = [{"id": f"v{i}", "values": unit(i, 1536), "metadata": metadata} for i in range(246)]
    assert index.upsert(vectors=vectors[:245], namespace="big").upserted_count == 245
    with pytest.raises(PineconeApiException) as too_big:
        index.upsert(vectors=vectors, namespace="big")
    assert too_big.value.status_code == 400
    assert too_big.value.body["code"] == 3 and "2000000" in too_big.value.body["message"]


def test_other_limits(index, sandbox):
    with pytest.raises(PineconeApiException, match="1001 vectors"):
        index.upsert(vectors=[{"id": str(i), "values": unit(i)} for i in range(1001)])
    with pytest.raises(PineconeApiException, match="dimension"):
        index.upsert(vectors=[{"id": "short", "values": [1.0, 2.0]}])
    with pytest.raises(PineconeApiException, match="40960"):
        index.upsert(vectors=[{"id": "fat", "values": unit(0), "metadata": {"t": "x" * 41_000}}])
    with pytest.raises(PineconeApiException, match="null"):
        index.upsert(vectors=[{"id": "n", "values": unit(0), "metadata": {"t": None}}])
    with pytest.raises(PineconeApiException, match="1001 ids"):
        index.fetch(ids=[str(i) for i in range(1001)])
    with pytest.raises(PineconeApiException, match="1001 ids"):
        index.delete(ids=[str(i) for i in range(1001)])
    # the SDK refuses long ids itself; the server enforces the same limit
    headers = {"Api-Key": SANDBOX_PINECONE_KEY}
    body = {"vectors": [{"id": "a" * 513, "values": unit(0)}]}
    answer = httpx.post(f"{sandbox.pinecone_host}/vectors/upsert", json=body, headers=headers)
    assert (
        answer.status_code == 400 and answer.json()["code"] == 3 and answer.json()["details"] == []
    )
    assert sandbox.pinecone.vectors("") == {}


def test_bad_key(sandbox):
    stranger = Pinecone(api_key="pcsk-wrong").Index(host=sandbox.pinecone_host)
    with pytest.raises(UnauthorizedError) as exc:
        stranger.describe_index_stats()
    assert exc.value.status_code == 401
    assert isinstance(exc.value, PineconeApiException)


def test_fault_shapes(index, sandbox):
    headers = {"Api-Key": SANDBOX_PINECONE_KEY}
    sandbox.knobs.inject("describe_index_stats", "429", retry_after=2)
    sandbox.knobs.inject("describe_index_stats", "503")
    limited = httpx.post(f"{sandbox.pinecone_host}/describe_index_stats", json={}, headers=headers)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.json()["code"] == 8
    unavailable = httpx.get(f"{sandbox.pinecone_host}/describe_index_stats", headers=headers)
    assert unavailable.status_code == 503 and json.loads(unavailable.text)["code"] == 14
    assert sandbox.knobs.count_429["describe_index_stats"] == 1
