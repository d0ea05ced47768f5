"""Embed -> upsert -> record as overlapping stages, several write units in flight.

One unit at a time leaves the embedding server idle while the store writes and the reverse;
with a remote embedder most of a run is spent waiting. Here the caller (reading, chunking and
triaging documents) hands write units to `submit`; embedding workers (paced by an
EmbedLimiter) and upsert workers take them on, and each store request is recorded in the
ledger as soon as the store accepted it, as before. Two bounds keep memory flat: at most
`queue_units` chunked units wait for an embedding worker (`submit` blocks beyond that, so
chunking runs ahead of the network but not forever), and at most `max_units` units are
between the start of their embedding and their record. The second bound is what a kill
wastes at most, and never loses: what was upserted but not recorded is embedded and upserted
again next time under the same ids. `drain` waits until every unit is recorded (a listing
must judge a ledger that holds everything before it) and raises the first failure of any
stage.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass

from sync_pipelines.index.chunking import Chunk
from sync_pipelines.index.embed_limiter import EmbedLimiter
from sync_pipelines.index.embedders import Embedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.stores.base import VectorRecord, VectorStore

REMOTE_EMBED_WORKERS = 8  # requests in flight to an embeddings server, limiter permitting
DEFAULT_UPSERT_WORKERS = 4


@dataclass(frozen=True)
class PipelineSettings:
    """How much runs at once. `embed_workers` 1 and `upsert_workers` 1 with `max_units` 1
    is the serial order: embed a unit, upsert it, record it, then the next."""

    embed_workers: int = 1
    upsert_workers: int = 1
    max_units: int | None = None  # embedded, not yet recorded; default: one per worker
    queue_units: int | None = None  # chunked, waiting to be embedded; default: 2 x max_units
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None

    def __post_init__(self) -> None:
        for name in ("embed_workers", "upsert_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_units", "queue_units"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")

    @property
    def units_in_flight(self) -> int:
        return self.max_units or self.embed_workers + self.upsert_workers

    @property
    def queued_units(self) -> int:
        return self.queue_units or 2 * self.units_in_flight

    @classmethod
    def for_run(cls, embedder: Embedder, store: VectorStore) -> PipelineSettings:
        """Defaults for this embedder and store, overridden by SYNC_EMBED_CONCURRENCY,
        SYNC_EMBED_RPM and SYNC_EMBED_TPM. A remote embedder gets several requests in flight
        (it waits on the network); a local one computes under the GIL, so one worker. A store
        that takes parallel writes (Pinecone: `max_workers`) gets that many upsert workers;
        an embedded table one writer."""
        remote = hasattr(embedder, "base_url")
        embed = _env_int("SYNC_EMBED_CONCURRENCY", REMOTE_EMBED_WORKERS if remote else 1)
        upsert = int(getattr(store, "max_workers", 1) or 1)
        return cls(
            embed_workers=embed,
            upsert_workers=upsert,
            requests_per_minute=_env_float("SYNC_EMBED_RPM"),
            tokens_per_minute=_env_float("SYNC_EMBED_TPM"),
        )


def parallel_writes(store: VectorStore) -> bool:
    """Whether the store takes concurrent writes (a service) or wants one writer (a table
    on local disk, whose concurrent commits would conflict)."""
    return int(getattr(store, "max_workers", 1) or 1) > 1


class WritePipeline:
    """The write half of the updater; `on_embedded(n)` and `on_upserted(requests, seconds)`
    feed its statistics from the worker threads."""

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        ledger: ChunkLedger,
        settings: PipelineSettings,
        store_lock: threading.Lock | nullcontext,
        on_recorded: Callable[[int], None],
        on_embedded: Callable[[float], None],
        on_upserted: Callable[[int, float], None],
        limiter: EmbedLimiter | None = None,
    ):
        self.embedder = embedder
        self.store = store
        self.ledger = ledger
        self.settings = settings
        self.limiter = limiter or EmbedLimiter(
            settings.embed_workers, settings.requests_per_minute, settings.tokens_per_minute
        )
        self._store_lock = store_lock
        self._on_recorded = on_recorded
        self._on_embedded = on_embedded
        self._on_upserted = on_upserted
        self._embedding = ThreadPoolExecutor(settings.embed_workers, "index-embed")
        self._upserting = ThreadPoolExecutor(settings.upsert_workers, "index-upsert")
        self._queue = threading.Semaphore(settings.queued_units)
        self._slots = threading.Semaphore(settings.units_in_flight)
        self._open = 0  # units submitted and not yet recorded (or abandoned)
        self._idle = threading.Condition()
        self._error: BaseException | None = None
        counter = getattr(embedder, "counter", None)
        self._count = counter.count if counter is not None else _byte_tokens
        # An embeddings server's answers tell the limiter its limits and 429 holds.
        self._observers = getattr(embedder, "response_observers", None)
        if self._observers is not None:
            self._observers.append(self.limiter.observe)

    def submit(self, unit: Sequence[Chunk]) -> None:
        """Queue one write unit (at most one store request); blocks while the queue is full."""
        self._wait_for(self._queue)
        with self._idle:
            self._open += 1
        self._embedding.submit(self._guarded, _Unit(list(unit)), self._embed)

    def drain(self) -> None:
        """Wait until every submitted unit is recorded; raise the first failure."""
        with self._idle:
            while self._open and self._error is None:
                self._idle.wait(0.1)
        self._raise_failure()

    def close(self) -> None:
        """Stop the workers: after a failure, units not yet started are abandoned."""
        self._embedding.shutdown(wait=True, cancel_futures=True)
        self._upserting.shutdown(wait=True, cancel_futures=True)
        if self._observers is not None and self.limiter.observe in self._observers:
            self._observers.remove(self.limiter.observe)

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _wait_for(self, semaphore: threading.Semaphore) -> None:
        """Take the semaphore, giving up when any stage failed."""
        while not semaphore.acquire(timeout=0.1):
            self._raise_failure()
        if self._error is not None:
            semaphore.release()
            self._raise_failure()

    def _guarded(self, unit: _Unit, stage: Callable, *args) -> None:
        """Run a stage; a failure stops the pipeline (BaseException too: a kill is a kill)."""
        try:
            self._raise_failure()
            stage(unit, *args)
        except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
            self._fail(exc)
            self._finish(unit)

    def _fail(self, exc: BaseException) -> None:
        with self._idle:
            if self._error is None:
                self._error = exc

    def _embed(self, unit: _Unit) -> None:
        # Embedded and not yet recorded is what a kill wastes: bounded by the slots.
        self._wait_for(self._slots)
        unit.holds_slot = True
        self._queue.release()
        unit.queued = False
        texts = [c.text for c in unit.chunks]
        tokens = sum(self._count(t) for t in texts)
        started = time.monotonic()
        with self.limiter.request(tokens):
            self._raise_failure()  # a request that failed meanwhile stops this one going
            try:
                vectors = self.embedder.embed(texts)
            except BaseException as exc:
                # Recorded before the limiter lets the next request go: that one sees it.
                self._fail(exc)
                raise
        self._on_embedded(time.monotonic() - started)
        self._upserting.submit(self._guarded, unit, self._upsert, vectors)

    def _upsert(self, unit: _Unit, vectors) -> None:
        by_id = {c.vector_id: c for c in unit.chunks}

        def record(accepted: Sequence[VectorRecord]) -> None:
            self.ledger.record([by_id[r.id] for r in accepted])
            self._on_recorded(len(accepted))

        records = [VectorRecord(c.vector_id, v, c.metadata) for c, v in zip(unit.chunks, vectors)]
        started = time.monotonic()
        with self._store_lock:
            requests = self.store.upsert(records, on_request=record)
        self._on_upserted(requests, time.monotonic() - started)
        self._finish(unit)

    def _finish(self, unit: _Unit) -> None:
        """The unit is recorded, or abandoned: give back what it holds."""
        if unit.queued:
            unit.queued = False
            self._queue.release()
        if unit.holds_slot:
            unit.holds_slot = False
            self._slots.release()
        with self._idle:
            self._open -= 1
            self._idle.notify_all()


@dataclass
class _Unit:
    chunks: list[Chunk]
    queued: bool = True  # holds a place in the queue before the embedding stage
    holds_slot: bool = False  # embedding or embedded, not yet recorded


def _byte_tokens(text: str) -> int:
    """A safe over-estimate of tokens when the embedder has no counter: UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None


def _env_float(name: str) -> float | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
