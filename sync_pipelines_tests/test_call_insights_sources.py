"""call_insights finds its transcript sources in the registry (`transcripts=True`), whatever
they are called: a throw-away conversation source is extracted, and its tombstones remove
what was extracted; the code location wires call_insights before vector_index."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from dagster import AssetKey, materialize
from sync_pipelines_sandbox.insight_terms import customer_lines
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY

from sync_pipelines import clock
from sync_pipelines.documents import Document, Tombstone
from sync_pipelines.insights.asset import build_call_insights
from sync_pipelines.insights.model import ChatModelResource
from sync_pipelines.insights.table import InsightsStore, InsightTable
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset
from sync_pipelines_tests.conftest import day
from sync_pipelines_tests.test_tombstones import page
from sync_pipelines_tests.test_tombstones_end_to_end import GIZMOS, install_source, remove_source

pytestmark = pytest.mark.integration

CHATS = (
    GIZMOS.replace("gizmos", "chats")
    .replace("Gizmos", "Chats")
    .replace("GIZMOS", "CHATS")
    .replace(
        'docs_url="https://docs.chats.test/",',
        'docs_url="https://docs.chats.test/",\n    transcripts=True,',
    )
)


@pytest.fixture
def chats(harness, tmp_path, monkeypatch):
    module = install_source(harness, tmp_path, monkeypatch, "chats", CHATS)
    harness.extra_resources = {
        "chats": module.ChatsResource(),
        "chat_model": ChatModelResource(
            model="gpt-4o-mini",
            api_key=SANDBOX_OPENAI_KEY,
            base_url=harness.sandbox.openai_base_url,
        ),
        "insights_store": InsightsStore(root=str(tmp_path / "insights")),
    }
    yield module
    remove_source("chats", monkeypatch)


def conversation(n: int):
    facts = customer_lines(random.Random(n), ["Ana Diaz"], count=4)
    text = "\n".join(["Ana Diaz: Hello."] + [f"Guest: {f.quote}" for f in facts])
    doc = replace(
        page(n),
        doc_id=Document.make_id("chats", "acme", f"c{n}"),
        source="chats",
        title=f"Conversation {n}",
        text=text,
    )
    return doc, {(f.kind, f.value) for f in facts}


def test_a_new_transcript_source_is_found_extracted_and_its_deletions_applied(
    harness, chats, tmp_path
):
    from sync_pipelines.definitions import build_definitions

    defs = build_definitions()
    insights = defs.get_assets_def("call_insights")
    assert AssetKey("chats") in insights.dependency_keys
    assert AssetKey("slack") not in insights.dependency_keys
    assert AssetKey("call_insights") in defs.get_assets_def("vector_index").dependency_keys
    assert "call_insights_automation" in {s.name for s in defs.sensors}

    source = build_source_asset(registry.declaration("chats"))
    asset = build_call_insights([source])

    def run() -> dict:
        result = materialize(
            [asset, source.to_source_asset()],
            selection=[asset],
            instance=harness.instance,
            resources=harness.resources(),
        )
        return harness.metadata(result, "call_insights")

    docs = [conversation(n) for n in range(3)]
    chats.SCRIPT.update(documents=[d for d, _ in docs], tombstones=[])
    harness.sync(source, [day(-1)])
    first = run()
    assert (first["transcripts"], first["calls"], first["insight_documents"]) == (3, 3, 3)
    table = InsightTable(tmp_path / "insights").read()
    for doc, planted in docs:
        rows = table[table["doc_id"] == doc.doc_id]
        assert planted <= set(zip(rows["kind"], rows["value"]))
        assert set(rows["source"]) == {"chats"}

    gone = docs[0][0]
    chats.SCRIPT.update(
        documents=[], tombstones=[Tombstone(gone.doc_id, "deleted upstream", clock.now_epoch())]
    )
    harness.sync(source, [day(-1)])
    second = run()
    assert (second["calls_deleted"], second["calls"]) == (1, 0)
    assert gone.doc_id not in set(InsightTable(tmp_path / "insights").read()["doc_id"])
    (path,) = second["documents_files"]
    from sync_pipelines.documents import DocumentFiles

    (tomb,) = DocumentFiles.read_tombstones(path)
    assert tomb.doc_id == "call_insights:" + gone.doc_id
