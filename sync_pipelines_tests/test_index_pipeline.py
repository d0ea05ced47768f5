"""The pipelined updater: several embedding requests in flight, never more units between
embedding and record than its bound, listings judged after every write before them, the
first failure of any stage raised, and the same index as a serial run."""

from __future__ import annotations

import threading

import pytest
from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY

from sync_pipelines.documents import Document, Listing
from sync_pipelines.index.chunking import TextSplitter
from sync_pipelines.index.embedders import EmbedderError, HashingEmbedder, OpenAIEmbedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.pipeline import PipelineSettings
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines.index.tokens import TokenCounter
from sync_pipelines.index.updater import WRITE_UNIT, IndexUpdater

SPLITTER = TextSplitter(64, 8, TokenCounter())
PIPELINED = PipelineSettings(embed_workers=3, upsert_workers=2)
SERIAL = PipelineSettings(embed_workers=1, upsert_workers=1, max_units=1)
T0 = 1_767_312_000.0


def page(i: int, words: int = 10) -> Document:
    return Document(
        doc_id=Document.make_id("notion", "acme", f"p{i}"),
        source="notion",
        connection="acme",
        title=f"Page {i}",
        text=" ".join(f"topic{i} word{j}." for j in range(words)),
        url=f"https://notion.test/p{i}",
        author="ana",
        created_at="2026-01-01",
        updated_at="2026-01-02",
        timestamp_epoch=T0 + i,
    )


class Recording(HashingEmbedder):
    """Counts embedding calls in flight; after the first call (which goes alone, see
    EmbedLimiter), the next `meet` calls wait until all of them are in flight together (a
    barrier), which proves that many overlap."""

    def __init__(self, meet: int = 0, fail_on: int | None = None):
        super().__init__(dimension=32)
        self.lock = threading.Lock()
        self.calls = 0
        self.now = 0
        self.most = 0
        self.barrier = threading.Barrier(meet) if meet else None
        self.fail_on = fail_on

    def embed(self, texts):
        with self.lock:
            self.calls += 1
            call = self.calls
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            if self.barrier is not None and 2 <= call <= self.barrier.parties + 1:
                self.barrier.wait(timeout=30)
            if call == self.fail_on:
                raise EmbedderError("embeddings server still failing after retries")
            return super().embed(texts)
        finally:
            with self.lock:
                self.now -= 1


def updater(tmp_path, embedder, settings, name="run") -> IndexUpdater:
    store = LanceStore(tmp_path / f"{name}-vectors")
    ledger = ChunkLedger(f"sqlite:///{tmp_path / f'{name}-ledger.sqlite'}", store.name)
    return IndexUpdater(embedder, store, ledger, SPLITTER, batch_documents=40, pipeline=settings)


def test_several_embedding_requests_are_in_flight_at_once(tmp_path):
    embedder = Recording(meet=3)
    run = updater(tmp_path, embedder, PIPELINED)
    stats = run.apply([page(i) for i in range(200)])
    assert embedder.most == 3  # the barrier was met: three requests overlapped
    assert stats.embed_in_flight_max == 3
    assert 1.0 <= stats.embed_in_flight_mean <= 3.0
    assert run.store.count() == run.ledger.count() == stats.chunks_seen > 6 * WRITE_UNIT


def test_units_between_embedding_and_record_never_exceed_the_bound(tmp_path):
    embedder = Recording()
    run = updater(tmp_path, embedder, PIPELINED)
    outstanding, most = [0], [0]
    real_embed, real_record = embedder.embed, run.ledger.record
    lock = threading.Lock()

    def embed(texts):
        with lock:
            outstanding[0] += 1
            most[0] = max(most[0], outstanding[0])
        return real_embed(texts)

    def record(chunks):
        real_record(chunks)
        with lock:
            outstanding[0] -= 1

    embedder.embed, run.ledger.record = embed, record
    run.apply([page(i) for i in range(200)])
    assert 1 <= most[0] <= PIPELINED.units_in_flight
    assert outstanding[0] == 0


def test_pipelined_and_serial_runs_build_the_same_index(tmp_path):
    docs = [page(i, words=5 + i % 30) for i in range(150)]
    edited = [page(i, words=3) for i in range(0, 150, 7)]  # shorter: chunks vanish
    results = []
    for name, settings in (("serial", SERIAL), ("pipelined", PIPELINED)):
        run = updater(tmp_path, HashingEmbedder(dimension=32), settings, name)
        first = run.apply(docs)
        second = updater(tmp_path, HashingEmbedder(dimension=32), settings, name).apply(edited)
        store = run.store
        results.append(
            (
                store.ids(),
                store.fetch_metadata(sorted(store.ids())),
                first.chunks_embedded,
                second.chunks_embedded,
                second.chunks_deleted,
            )
        )
        assert run.ledger.all_ids() == store.ids()
    assert results[0] == results[1]
    assert results[0][4] > 0


def test_a_listing_judges_every_write_before_it(tmp_path):
    """Documents still in the pipeline when a listing arrives must be in the ledger before it
    judges: the listing below lists p0..p29 only, so p30..p39 (written just before it, in
    the same run) are absent and deleted, which they can only be once recorded."""
    run = updater(tmp_path, HashingEmbedder(dimension=32), PIPELINED)
    docs = [page(i) for i in range(40)]
    listing = Listing(
        "notion:acme:", T0, T0 + 100, frozenset(d.doc_id for d in docs[:30]), T0 + 200
    )
    run.max_absent_share = 1.0
    stats = run.apply([*docs, listing])
    assert stats.listings == 1 and stats.documents_absent == 10
    held = {i.split("#")[0] for i in run.store.ids()}
    assert held == {d.doc_id for d in docs[:30]} == {i.split("#")[0] for i in run.ledger.all_ids()}


def test_the_first_failure_of_a_stage_is_raised_and_only_accepted_requests_are_recorded(
    tmp_path,
):
    run = updater(tmp_path, Recording(fail_on=4), PIPELINED)
    with pytest.raises(EmbedderError, match="still failing"):
        run.apply([page(i) for i in range(200)])
    assert run.ledger.all_ids() == run.store.ids()  # recorded: exactly what the store holds
    assert 0 < run.ledger.count() < 200 * 2
    # The next run finishes the work.
    rerun = updater(tmp_path, HashingEmbedder(dimension=32), PIPELINED)
    stats = rerun.apply([page(i) for i in range(200)])
    assert rerun.store.count() == rerun.ledger.count() == stats.chunks_seen


def test_pipeline_settings_follow_the_embedder_and_the_environment(tmp_path, monkeypatch):
    store = LanceStore(tmp_path / "vectors")
    monkeypatch.delenv("SYNC_EMBED_CONCURRENCY", raising=False)
    local = PipelineSettings.for_run(HashingEmbedder(), store)
    assert (local.embed_workers, local.upsert_workers) == (1, 1)

    class Remote(HashingEmbedder):
        base_url = "http://embeddings.test/v1"

    assert PipelineSettings.for_run(Remote(), store).embed_workers == 8
    monkeypatch.setenv("SYNC_EMBED_CONCURRENCY", "3")
    monkeypatch.setenv("SYNC_EMBED_TPM", "1000000")
    settings = PipelineSettings.for_run(Remote(), store)
    assert (settings.embed_workers, settings.tokens_per_minute) == (3, 1_000_000)
    monkeypatch.setenv("SYNC_EMBED_CONCURRENCY", "many")
    with pytest.raises(ValueError, match="SYNC_EMBED_CONCURRENCY must be a whole number"):
        PipelineSettings.for_run(Remote(), store)
    with pytest.raises(ValueError, match="embed_workers must be at least 1"):
        PipelineSettings(embed_workers=0)


def test_a_429_from_the_embeddings_server_holds_every_worker(tmp_path, sandbox):
    """Through the real SDK: the server's 429 reaches the limiter (Retry-After 1 s), the
    workers wait it out together, and the run still indexes everything."""
    embedder = OpenAIEmbedder(
        api_key=SANDBOX_OPENAI_KEY, base_url=sandbox.openai_base_url, dimensions=32
    )
    run = updater(tmp_path, embedder, PIPELINED)
    sandbox.knobs.inject("embeddings", "429", retry_after=1)
    stats = run.apply([page(i) for i in range(200)])
    assert stats.embed_holds >= 1
    assert sandbox.knobs.count_429["embeddings"] == 1
    assert run.store.count() == run.ledger.count() == stats.chunks_seen
    assert embedder.response_observers == []  # the limiter let go of the embedder
