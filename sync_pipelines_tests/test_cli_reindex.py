"""`sync-pipelines reindex`: empties the configured store and rebuilds it in a vector_index run
on $DAGSTER_HOME's instance, with progress; refuses while a vector_index run is in flight."""

from __future__ import annotations

import re

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus
from dagster._core.storage.dagster_run import DagsterRun
from sync_pipelines_sandbox.company import Company

from sync_pipelines import cli_reindex
from sync_pipelines.cli import main
from sync_pipelines.cli_reindex import REINDEX_TAG, run_reindex
from sync_pipelines.index.chunking import chunk_document
from sync_pipelines.index.progress import IndexProgress
from sync_pipelines_tests.conftest import day

pytestmark = pytest.mark.integration
PROGRESS_LINE = re.compile(
    r"^  \d+ s: \d+ documents, \d+ chunks indexed \(\d+ chunks/s\)$", re.MULTILINE
)


@pytest.fixture
def company() -> Company:
    return Company.generate(seed=11, messages=300, days=4)


@pytest.fixture
def configured(harness, tmp_path, monkeypatch):
    """The harness on $DAGSTER_HOME's instance, its index configured from the environment
    exactly as the CLI reads it."""
    from sync_pipelines.definitions import embedder_resource, vector_store_resource

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SYNC_VECTOR_STORE", "lance")
    monkeypatch.setenv("SYNC_LANCE_PATH", str(tmp_path / "vectors"))
    monkeypatch.setenv("SYNC_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    monkeypatch.setenv("SYNC_EMBEDDER", "hashing")
    monkeypatch.delenv("SYNC_EMBEDDING_DIMENSIONS", raising=False)
    harness.instance = DagsterInstance.get()
    harness.instance.add_dynamic_partitions("slack_connections", ["acme"])
    harness.embedder, harness.vector_store = embedder_resource(), vector_store_resource()
    yield harness
    harness.instance.dispose()


def expected_ids(harness, docs) -> set[str]:
    embedder, splitter = harness.embedder.build(), harness.embedder.splitter()
    latest = {d.doc_id: d for d in docs}
    return {
        c.vector_id
        for d in latest.values()
        for c in chunk_document(d, splitter, embedder.signature)
    }


def test_reindex_rebuilds_a_damaged_store_in_a_recorded_run(configured, capsys, monkeypatch):
    harness = configured
    docs = harness.documents(harness.sync_slack([day(-2), day(-1)]))
    first = harness.metadata(harness.index(), "vector_index")
    store = harness.vector_store.build()
    ledger = harness.vector_store.ledger(store)
    expected = expected_ids(harness, docs)
    assert store.ids() == expected
    lost = sorted(expected)[:7]
    store.delete(lost)  # vectors lost behind the ledger's back: no regular run restores them
    capsys.readouterr()

    # Refused: not confirmed, then a vector_index run in flight. Nothing is deleted.
    assert run_reindex(yes=False, confirm=lambda question: "n") == 1
    assert "not confirmed: nothing deleted" in capsys.readouterr().err
    running = DagsterRun(
        job_name="vector_index_update",
        status=DagsterRunStatus.STARTED,
        asset_selection=frozenset({AssetKey("vector_index")}),
    )
    harness.instance.add_run(running)
    assert main(["reindex", "--yes"]) == 1
    assert f"vector_index run {running.run_id} is started" in capsys.readouterr().err
    harness.instance.report_run_canceled(running)
    assert store.count() == len(expected) - len(lost) and ledger.count() == len(expected)

    monkeypatch.setattr(cli_reindex, "PROGRESS_EVERY_S", 0.05)
    assert main(["reindex", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"emptied store {store.name}: {len(expected)} ids deleted" in out
    assert PROGRESS_LINE.search(out), out
    summary = re.search(
        r"reindexed: (\d+) document files?, (\d+) documents, (\d+) chunks embedded, (\d+) "
        r"vectors in the store in [\d.]+ s \(\d+ documents/s, \d+ chunks/s\); run (\S+)",
        out,
    )
    assert summary, out
    files, documents, chunks, vectors = map(int, summary.groups()[:4])
    assert files == first["document_files"] and documents == first["documents"]
    assert chunks == vectors == len(expected)
    assert store.ids() == ledger.all_ids() == expected

    # A real materialization of vector_index, in the run history, tagged as a reindex.
    (record,) = harness.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("vector_index")), limit=1
    ).records
    assert record.run_id == summary.group(5)
    assert REINDEX_TAG in harness.instance.get_run_by_id(record.run_id).tags
    progress = IndexProgress.beside(ledger).get(store.name)
    assert progress.embedder == "hashing-v1:384" and progress.cursor is not None

    after = harness.metadata(harness.index(), "vector_index")  # and the schedule carries on
    assert (after["document_files"], after["chunks_embedded"]) == (0, 0)


def test_reindex_says_what_to_set_when_the_setup_is_incomplete(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["reindex", "--yes"]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("SYNC_VECTOR_STORE", "pinecone")
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    assert main(["reindex", "--yes"]) == 2
    assert "PINECONE_API_KEY" in capsys.readouterr().err
