"""vector_index against both stores (LanceDB, the Pinecone emulator through the real SDK) and
both embedders (local hashing, the OpenAI emulator through the real SDK)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from sync_pipelines.index.chunking import chunk_document
from sync_pipelines.index.pipeline import PipelineSettings
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.index.search import search
from sync_pipelines.index.updater import WRITE_UNIT
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY
from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY
from sync_pipelines_tests.conftest import day

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]

COMBINATIONS = [
    ("lance", "hashing"),
    ("lance", "openai"),
    ("pinecone", "hashing"),
    ("pinecone", "openai"),
]


def configure(harness, store: str, embedder: str, namespace: str = "test") -> None:
    sandbox = harness.sandbox
    if embedder == "openai":
        # 384 dims so the same Pinecone emulator index fits both embedders.
        harness.embedder = EmbedderResource(
            kind="openai",
            openai_api_key=SANDBOX_OPENAI_KEY,
            openai_base_url=sandbox.openai_base_url,
            dimension=384,
        )
    else:
        harness.embedder = EmbedderResource(kind="hashing", dimension=384)
    ledger_url = f"sqlite:///{harness.tmp / 'ledger.sqlite'}"
    if store == "pinecone":
        harness.vector_store = VectorStoreResource(
            kind="pinecone",
            pinecone_api_key=SANDBOX_PINECONE_KEY,
            pinecone_host=sandbox.pinecone_host,
            pinecone_namespace=namespace,
            ledger_url=ledger_url,
        )
    else:
        harness.vector_store = VectorStoreResource(
            kind="lance", lance_path=str(harness.tmp / "vectors"), ledger_url=ledger_url
        )


def expected_chunks(harness, docs) -> dict[str, str]:
    """vector id -> chunk text, computed straight from the documents."""
    embedder = harness.embedder.build()
    splitter = harness.embedder.splitter()
    latest = {d.doc_id: d for d in docs}
    return {
        c.vector_id: c.text
        for d in latest.values()
        for c in chunk_document(d, splitter, embedder.signature)
    }


def store_state(harness) -> dict[str, str]:
    store = harness.vector_store.build()
    ids = store.ids()
    meta = store.fetch_metadata(sorted(ids))
    return {i: meta[i]["text"] for i in ids}


@pytest.mark.parametrize("store, embedder", COMBINATIONS)
def test_first_run_embeds_all_then_unchanged_rerun_embeds_nothing(harness, store, embedder):
    configure(harness, store, embedder)
    docs = harness.documents(harness.sync_slack([day(-2), day(-1)]))
    first = harness.metadata(harness.index(), "vector_index")
    expected = expected_chunks(harness, docs)
    assert first["chunks_embedded"] == first["chunks_seen"] == len(expected) > 0
    assert first["documents"] == len(docs)
    assert first["upsert_requests"] >= 1 and first["tokens_embedded"] > 0
    assert store_state(harness) == expected

    harness.sync_slack([day(-2), day(-1)])  # same data, new document file
    second = harness.metadata(harness.index(), "vector_index")
    assert second["chunks_seen"] == len(expected)
    assert second["chunks_embedded"] == 0 and second["upsert_requests"] == 0
    assert second["chunks_skipped_unchanged"] == len(expected)
    assert second["chunks_deleted"] == 0

    third = harness.metadata(harness.index(), "vector_index")  # nothing landed since
    assert third["documents"] == 0 and third["chunks_embedded"] == 0


@pytest.mark.parametrize("store, embedder", COMBINATIONS)
def test_edit_reembeds_only_its_chunks_and_deletes_vanished(harness, company, store, embedder):
    configure(harness, store, embedder)
    docs = harness.documents(harness.sync_slack([day(-1)]))
    target = next(d for d in docs if not d.metadata["is_reply"] and d.metadata["user_id"])
    channel, ts = target.metadata["channel_id"], target.metadata["ts"]
    long_text = " ".join(f"Paragraph {i} about the SUBS migration and its rollout." for i in range(300))
    harness.sandbox.slack.edit_message(channel, ts, long_text)
    harness.sync_slack([day(-1)])
    harness.index()
    long_ids = {i for i in store_state(harness) if i.startswith(target.doc_id + "#")}
    assert len(long_ids) >= 3

    # Changing only the end of a long message re-embeds only the chunk(s) that hold it.
    harness.sandbox.slack.edit_message(channel, ts, long_text + " Final note: rollout done.")
    harness.sync_slack([day(-1)])
    meta = harness.metadata(harness.index(), "vector_index")
    assert 1 <= meta["chunks_embedded"] <= 2 < len(long_ids)
    assert meta["chunks_deleted"] == 0
    # the appended note may have opened one more chunk: count what the store holds now
    long_ids = {i for i in store_state(harness) if i.startswith(target.doc_id + "#")}

    harness.sandbox.slack.edit_message(channel, ts, "Short again: SUBS shipped.")
    docs = harness.documents(harness.sync_slack([day(-1)]))
    meta = harness.metadata(harness.index(), "vector_index")
    assert meta["chunks_embedded"] == 1
    assert meta["chunks_deleted"] == len(long_ids) - 1
    state = store_state(harness)
    assert {i for i in state if i.startswith(target.doc_id + "#")} == {target.doc_id + "#0"}
    assert "Short again: SUBS shipped." in state[target.doc_id + "#0"]
    assert state == expected_chunks(harness, docs)


KILLABLE_RUN = """
import json, os, sys
from dagster import DagsterInstance, materialize
from sync_pipelines.definitions import slack_asset, vector_index
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
config = json.loads(os.environ["TEST_INDEX_CONFIG"])
instance = DagsterInstance.from_config(config["home"])
materialize(
    [vector_index, slack_asset.to_source_asset()],
    selection=[vector_index],
    instance=instance,
    resources={
        "embedder": EmbedderResource(**config["embedder"]),
        "vector_store": VectorStoreResource(**config["vector_store"]),
    },
)
"""


# Emulator latency slows the embedding requests (openai) or the upserts (pinecone) so the kill
# lands mid-run; LanceDB with the local embedder has no request to slow down.
@pytest.mark.parametrize(
    "store, embedder", [("lance", "openai"), ("pinecone", "openai"), ("pinecone", "hashing")]
)
def test_killed_run_then_rerun_equals_ground_truth(harness, store, embedder, tmp_path):
    configure(harness, store, embedder, namespace=f"kill-{store}-{embedder}")
    home = tmp_path / "home"
    home.mkdir()
    harness.instance = DagsterInstance.from_config(str(home))
    harness.instance.add_dynamic_partitions("slack_connections", ["acme"])
    docs = harness.documents(harness.sync_slack([day(-3), day(-1)]))
    expected = expected_chunks(harness, docs)

    config = {
        "home": str(home),
        "embedder": harness.embedder.model_dump(),
        "vector_store": harness.vector_store.model_dump(),  # 500-document batches
    }
    harness.sandbox.knobs.latency_ms = 150
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_RUN],
        cwd=ROOT,
        env={**os.environ, "TEST_INDEX_CONFIG": json.dumps(config)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ledger = harness.vector_store.ledger(harness.vector_store.build())
    deadline = time.monotonic() + 120
    while ledger.count() < 80 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = ledger.count()
    assert 0 < partial < len(expected), "the kill must land mid-run"

    harness.sandbox.knobs.latency_ms = 0
    meta = harness.metadata(harness.index(), "vector_index")
    assert meta["chunks_embedded"] == len(expected) - partial
    assert store_state(harness) == expected
    assert ledger.all_ids() == set(expected)
    if embedder == "openai":
        # What the kill cost, as the embeddings server billed it: the ledger is written per
        # upsert request, so at most the units in flight are embedded twice, not a batch.
        settings = PipelineSettings.for_run(harness.embedder.build(), harness.vector_store.build())
        wasted = harness.sandbox.openai.inputs_embedded - len(expected)
        assert 0 <= wasted <= settings.units_in_flight * WRITE_UNIT


def test_search_never_shows_private_chunks_to_outsiders(harness, company, capsys, monkeypatch):
    configure(harness, "lance", "hashing")
    docs = harness.documents(harness.sync_slack([day(-3), day(0)]))
    harness.index()
    private = next(d for d in docs if d.access != ("all",) and len(d.text) > 40)
    channel = company.channel(private.metadata["channel_id"])
    outsider = next(p for p in company.people if p.email and p.user_id not in channel.members)
    member = next(company.user(u) for u in channel.members if company.user(u).email)

    embedder, store = harness.embedder.build(), harness.vector_store.build()
    as_member = search(private.text, embedder, store, top_k=5, as_user=member.email)
    assert private.doc_id in {hit.doc_id for hit in as_member}
    for who in (outsider.email, None):
        hits = search(private.text, embedder, store, top_k=20, as_user=who)
        assert hits, "public chunks still match"
        for hit in hits:
            assert "all" in hit.metadata["access"] or who in hit.metadata["access"]
            assert hit.doc_id != private.doc_id

    # The CLI goes through the same function, configured from the environment.
    monkeypatch.setenv("SYNC_VECTOR_STORE", "lance")
    monkeypatch.setenv("SYNC_LANCE_PATH", harness.vector_store.lance_path)
    monkeypatch.setenv("SYNC_EMBEDDER", "hashing")
    from sync_pipelines.cli import main

    assert main(["query", private.text, "--as", outsider.email, "--top-k", "20"]) == 0
    assert private.text[:60] not in capsys.readouterr().out
    assert main(["query", private.text, "--as", member.email]) == 0
    assert private.url in capsys.readouterr().out
