"""`sync-pipelines query` in-process against the emulators, configured by the environment
variables the code location reads, with each embedder and store."""

from __future__ import annotations

import json
from datetime import datetime, UTC

import pytest

from sync_pipelines.cli import main
from sync_pipelines.definitions import embedder_resource, vector_store_resource
from sync_pipelines_tests.conftest import day

pytestmark = pytest.mark.integration


def configure_env(harness, monkeypatch, store: str, embedder: str) -> None:
    """The environment a deployment would set; harness and CLI both build from it."""
    for name, value in harness.sandbox.env().items():  # keys and URLs of every emulator
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SYNC_EMBEDDER", embedder)
    monkeypatch.setenv("SYNC_VECTOR_STORE", store)
    monkeypatch.setenv("SYNC_LANCE_PATH", str(harness.tmp / "vectors"))
    monkeypatch.setenv("SYNC_LEDGER_URL", f"sqlite:///{harness.tmp / 'ledger.sqlite'}")
    monkeypatch.setenv("PINECONE_NAMESPACE", "cli")
    monkeypatch.setenv("SYNC_EMBEDDING_DIMENSIONS", "384")  # the Pinecone emulator's size
    # The code location's own resources, EnvVar secrets and all: materialize resolves them.
    harness.embedder, harness.vector_store = embedder_resource(), vector_store_resource()


def indexed_public_document(harness):
    docs = harness.documents(harness.sync_slack([day(-2), day(-1)]))
    harness.index()
    return max((d for d in docs if d.access == ("all",)), key=lambda d: len(d.text))


@pytest.mark.parametrize(
    "store, embedder", [("lance", "hashing"), ("lance", "openai"), ("pinecone", "hashing")]
)
def test_query_resolves_resources_like_the_code_location(
    harness, monkeypatch, capsys, store, embedder
):
    configure_env(harness, monkeypatch, store, embedder)
    doc = indexed_public_document(harness)
    capsys.readouterr()

    assert main(["query", doc.text, "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert doc.url in out
    first = out.splitlines()[0]
    assert first.startswith("1. [") and " slack · " in first and " UTC" in first


def test_query_json_lists_source_title_date_and_url(harness, monkeypatch, capsys):
    configure_env(harness, monkeypatch, "lance", "hashing")
    doc = indexed_public_document(harness)
    capsys.readouterr()

    assert main(["query", doc.text, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) <= 5
    assert set(rows[0]) == {
        "rank", "score", "source", "connection", "title", "date", "url", "snippet", "doc_id", "id"
    }
    hit = next(r for r in rows if r["doc_id"] == doc.doc_id)
    expected_date = datetime.fromtimestamp(doc.timestamp_epoch, tz=UTC)
    assert hit["date"] == expected_date.strftime("%Y-%m-%dT%H:%MZ")
    assert (hit["source"], hit["connection"], hit["url"]) == ("slack", "acme", doc.url)
    assert hit["title"] == doc.title and hit["snippet"]

    assert main(["query", "zzqx nothing like this", "--json", "--source", "jira"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_query_modes_print_one_hit_per_document(harness, monkeypatch, capsys, mode):
    configure_env(harness, monkeypatch, "lance", "hashing")
    doc = indexed_public_document(harness)
    capsys.readouterr()
    assert main(["query", doc.text, "--mode", mode, "--top-k", "10", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["doc_id"] == doc.doc_id
    assert len({r["doc_id"] for r in rows}) == len(rows)


def test_query_keyword_mode_on_pinecone_says_it_is_vector_only(harness, monkeypatch, capsys):
    configure_env(harness, monkeypatch, "pinecone", "hashing")
    indexed_public_document(harness)
    capsys.readouterr()
    assert main(["query", "billing", "--mode", "keyword"]) == 1
    assert "no keyword (full-text) index: search it with mode='vector'" in capsys.readouterr().err


def test_query_top_k_up_to_1000_on_pinecone(harness, monkeypatch, capsys):
    """1,000 results ask the store for 4,000 candidates: past what fits with metadata in one
    Pinecone query, so the store pages the metadata."""
    configure_env(harness, monkeypatch, "pinecone", "hashing")
    doc = indexed_public_document(harness)
    capsys.readouterr()
    assert main(["query", doc.text, "--top-k", "1000", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert 5 < len(rows) <= 1000 and all(r["url"] for r in rows)


@pytest.mark.parametrize("top_k", ["0", "20000", "-3", "ten"])
def test_query_top_k_outside_1_to_1000_is_refused(top_k, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["query", "billing", "--top-k", top_k])
    assert exit_.value.code == 2
    assert f"expected a whole number of results from 1 to 1000, got '{top_k}'" in (
        capsys.readouterr().err
    )


def test_query_names_a_missing_key_and_never_prints_a_wrong_one(harness, monkeypatch, capsys):
    configure_env(harness, monkeypatch, "lance", "openai")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert main(["query", "billing"]) == 2
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY not set" in err and "Traceback" not in err

    configure_env(harness, monkeypatch, "pinecone", "hashing")
    monkeypatch.setenv("PINECONE_API_KEY", "pcsk-wrong-key-123")
    assert main(["query", "billing"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "pcsk-wrong-key-123" not in err
