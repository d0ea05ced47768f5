"""Streaming the pending document files: each doc_id's latest version per segment (the
stretch between two listings), in the order of those versions, exactly as the in-memory
reading decides, from files of every vintage."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from sync_pipelines.documents import DOCUMENT_COLUMNS, Document, DocumentFiles, Listing, Tombstone
from sync_pipelines.index.chunking import TextSplitter
from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.pending import latest_entries, latest_rows
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.index.updater import IndexUpdater, latest_versions

T0 = 1_767_312_000.0


def page(i: int, text: str = "") -> Document:
    return Document(
        doc_id=Document.make_id("notion", "acme", f"p{i}"),
        source="notion",
        connection="acme",
        title=f"Page {i}",
        text=text or f"page {i} says hello to topic{i}.",
        url=f"https://notion.test/p{i}",
        author="ana",
        created_at="2026-01-01",
        updated_at="2026-01-02",
        timestamp_epoch=T0 + i,
        metadata={"space": "eng"},
    )


def gone(i: int) -> Tombstone:
    return Tombstone(Document.make_id("notion", "acme", f"p{i}"), "trashed", T0 + 500)


def listing(ids) -> Listing:
    return Listing(
        "notion:acme:",
        T0,
        T0 + 100,
        frozenset(Document.make_id("notion", "acme", f"p{i}") for i in ids),
        T0 + 1000,
    )


def in_memory(entries):
    """The reference: latest_versions per segment, listings where they stand."""
    out, segment = [], []
    for entry in entries:
        if isinstance(entry, Listing):
            out += latest_versions(segment) + [entry]
            segment = []
        else:
            segment.append(entry)
    return out + latest_versions(segment)


def write_runs(tmp_path):
    files = DocumentFiles(tmp_path / "documents")
    runs = [
        ([page(i) for i in range(6)], [], []),
        ([page(1, "page 1 edited."), page(7)], [gone(2)], []),
        ([page(2, "page 2 restored.")], [gone(3)], [listing([0, 1, 2, 4, 5, 7])]),
        ([page(1, "page 1 edited again."), page(8)], [gone(8)], []),
        ([page(4, "page 4 after the listing.")], [], [listing([0, 1, 2, 4, 7, 8])]),
        ([page(9)], [], []),
    ]
    return [
        str(files.write("notion", "acme", f"run{n}", docs, tombs, lists))
        for n, (docs, tombs, lists) in enumerate(runs)
    ]


def test_streamed_latest_entries_equal_the_in_memory_reading(tmp_path):
    paths = write_runs(tmp_path)
    everything = [e for p in paths for e in DocumentFiles.read_entries(p)]
    streamed = list(latest_entries(paths))
    assert streamed == in_memory(everything)
    assert sum(isinstance(e, Listing) for e in streamed) == 2
    # A tombstone superseded in its segment by a later document is gone, and the reverse.
    assert gone(2) not in streamed and page(2, "page 2 restored.") in streamed
    assert page(8) not in streamed and gone(8) in streamed


def test_latest_rows_flag_only_the_last_version_per_segment(tmp_path):
    paths = write_runs(tmp_path)
    flags = [list(map(bool, f)) for f in latest_rows(paths)]
    assert [len(f) for f in flags] == [len(DocumentFiles.read_entries(p)) for p in paths]
    assert flags[0] == [True, False, False, False, True, True]  # p1, p2, p3 superseded
    assert flags[-1] == [True]
    assert latest_rows([]) == []


def test_files_read_in_small_record_batches_give_the_same_entries(tmp_path):
    paths = write_runs(tmp_path)
    for path in paths:
        assert list(DocumentFiles.iter_entries(path, batch_rows=2)) == (
            DocumentFiles.read_entries(path)
        )


def test_files_written_before_tombstones_and_listings_still_read(tmp_path):
    path = tmp_path / "old.parquet"
    docs = [page(0), page(1)]
    pd.DataFrame([d.to_row() for d in docs], columns=DOCUMENT_COLUMNS).to_parquet(path)
    assert DocumentFiles.read_entries(path) == docs
    assert list(latest_entries([str(path), str(path)])) == docs


def test_apply_files_indexes_like_apply_over_the_same_entries(tmp_path):
    paths = write_runs(tmp_path)
    everything = [e for p in paths for e in DocumentFiles.read_entries(p)]
    held = []
    for name, apply in (("files", "apply_files"), ("memory", "apply")):
        store = LanceStore(tmp_path / f"{name}-vectors")
        ledger = ChunkLedger(f"sqlite:///{tmp_path / f'{name}.sqlite'}", store.name)
        run = IndexUpdater(HashingEmbedder(32), store, ledger, TextSplitter(64, 8, TokenCounter()))
        run.max_absent_share = 1.0
        stats = getattr(run, apply)(paths if name == "files" else everything)
        counts = {k: v for k, v in stats.as_metadata().items() if isinstance(v, int)}
        held.append((store.ids(), store.fetch_metadata(sorted(store.ids())), counts))
    assert held[0] == held[1]
    assert held[0][2]["documents_absent"] == 1  # p5, absent from the second listing
    ids = {i.split("#")[0] for i in held[0][0]}
    assert ids == {f"notion:acme:p{i}" for i in (0, 1, 2, 4, 7, 9)}
    text = {m["doc_id"]: m["text"] for m in held[0][1].values()}
    assert "page 1 edited again." in text["notion:acme:p1"]
    assert replace(page(4), text="page 4 after the listing.").text in text["notion:acme:p4"]
