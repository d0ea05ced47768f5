"""What a kill costs the index: the ledger is written per upsert request, so a killed run
re-embeds at most the write units in flight (one, run serially) more than a run that was
never killed."""

from __future__ import annotations

import pytest

from sync_pipelines.documents import Document
from sync_pipelines.index.chunking import TextSplitter
from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.pipeline import PipelineSettings
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.index.updater import WRITE_UNIT, IndexUpdater


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no `except Exception` catches it."""


class KillAfterRequests(LanceStore):
    """A LanceStore killed right after it accepted its n-th upsert request, before the caller
    heard of it: the worst moment, as those rows are in the store but not in the ledger."""

    def __init__(self, path, kill_after: int | None = None):
        super().__init__(path)
        self.kill_after = kill_after
        self.accepted = 0

    def upsert(self, records, on_request=None):
        def accepted(batch):
            self.accepted += 1
            if self.accepted == self.kill_after:
                raise Killed()
            if on_request is not None:
                on_request(batch)

        return super().upsert(records, on_request=accepted)


class KillAfterEmbedding(HashingEmbedder):
    """An embedder killed right after its n-th call computed (and was billed for) its inputs."""

    def __init__(self, kill_after: int | None = None):
        super().__init__(dimension=64)
        self.kill_after = kill_after
        self.calls = 0

    def embed(self, texts):
        vectors = super().embed(texts)
        self.calls += 1
        if self.calls == self.kill_after:
            raise Killed()
        return vectors


def documents(n: int = 200) -> list[Document]:
    """Pages of one to a few chunks (623 chunks for 200 pages at 64 tokens a chunk)."""
    docs = []
    for i in range(n):
        words = " ".join(f"topic{i} word{j}." for j in range(2 + (i % 4) * 4))
        docs.append(
            Document(
                doc_id=Document.make_id("notion", "acme", f"p{i}"),
                source="notion",
                connection="acme",
                title=f"Page {i}",
                text=words,
                url=f"https://notion.test/p{i}",
                author="ana",
                created_at="2026-01-01",
                updated_at="2026-01-02",
                timestamp_epoch=1767312000.0 + i,
            )
        )
    return docs


SERIAL = PipelineSettings(embed_workers=1, upsert_workers=1, max_units=1)
PIPELINED = PipelineSettings(embed_workers=3, upsert_workers=2)


def updater(tmp_path, store, embedder, settings=SERIAL) -> IndexUpdater:
    ledger = ChunkLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}", store.name)
    return IndexUpdater(
        embedder, store, ledger, TextSplitter(64, 8, TokenCounter()), pipeline=settings
    )


@pytest.mark.parametrize("settings", [SERIAL, PIPELINED], ids=["serial", "pipelined"])
@pytest.mark.parametrize(
    "kill", ["store accepted request 3", "embedder computed unit 4", "store accepted request 1"]
)
def test_a_kill_costs_at_most_the_units_in_flight(tmp_path, kill, settings):
    docs = documents()
    embedder = KillAfterEmbedding()
    store = KillAfterRequests(tmp_path / "vectors")
    if kill.startswith("store"):
        store.kill_after = int(kill.split()[-1])
    else:
        embedder.kill_after = int(kill.split()[-1])
    killed = updater(tmp_path, store, embedder, settings)
    with pytest.raises(Killed):
        killed.apply(docs)
    inputs_before_kill = embedder.stats.inputs

    store.kill_after = embedder.kill_after = None
    rerun = updater(tmp_path, store, embedder, settings)
    stats = rerun.apply(docs)
    chunks = stats.chunks_seen
    assert chunks > 3 * WRITE_UNIT, "the documents span several write units"
    assert store.ids() == rerun.ledger.all_ids() and store.count() == chunks
    wasted = inputs_before_kill + stats.chunks_embedded - chunks
    assert 0 < wasted <= rerun.max_wasted_chunks
    assert rerun.max_wasted_chunks == settings.units_in_flight * WRITE_UNIT
    assert stats.upsert_requests == -(-stats.chunks_embedded // WRITE_UNIT)


def test_every_accepted_request_is_recorded_before_the_next_embedding(tmp_path):
    """The order that bounds the cost: embed a unit, upsert it, record it, then the next."""
    events = []
    store = KillAfterRequests(tmp_path / "vectors")
    embedder = KillAfterEmbedding()
    run = updater(tmp_path, store, embedder)
    real_embed, real_record = embedder.embed, run.ledger.record
    embedder.embed = lambda texts: events.append(("embed", len(texts))) or real_embed(texts)
    run.ledger.record = lambda chunks: events.append(("record", len(chunks))) or real_record(chunks)
    run.apply(documents(150))
    kinds = [kind for kind, _ in events]
    assert kinds == ["embed", "record"] * (len(kinds) // 2)
    assert max(n for _, n in events) == WRITE_UNIT
