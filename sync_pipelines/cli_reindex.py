"""`sync-pipelines reindex`: rebuild the configured vector store from the document files, now.

Why a command when vector_index already rebuilds a store it has no progress for (progress.py):
an operator sometimes wants a clean store on demand (vectors lost or restored from an old
backup, stray vectors nothing tracks, new chunk settings that otherwise reach only documents
synced again). It empties the store and its ledger partition and claims it for a rebuild,
then materializes vector_index in this process against $DAGSTER_HOME's instance, so the
rebuild is a run in the UI's history like any other; that run finds no progress and applies
every retained document file. While it runs, a line every few seconds says how many documents
and chunks are indexed and how fast.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack

from sync_pipelines.index.embedders import EmbedderError
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.progress import IndexProgress, empty_store, indexed
from sync_pipelines.index.stores.base import StoreError

REINDEX_TAG = "sync/reindex"
PROGRESS_EVERY_S = 5.0
# The asset's own lines (document files, batches) without the engine's debug events.
_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
_IN_FLIGHT = ("QUEUED", "STARTING", "STARTED", "CANCELING")


class ReindexRefused(RuntimeError):
    """The rebuild would clash with a run in flight, or was not confirmed."""


def run_reindex(yes: bool, confirm: Callable[[str], str] = input) -> int:
    """Empty, then rebuild through a vector_index run; 0 on success, 1 if it failed or was
    refused, 2 for a configuration error."""
    from sync_pipelines.cli_query import index_resources
    from sync_pipelines.cli_sync import instance_from_env
    from sync_pipelines.definitions import embedder_resource, vector_store_resource

    with ExitStack() as stack:
        try:
            instance = stack.enter_context(instance_from_env())
            embedder, store = stack.enter_context(index_resources())
            resources = {"embedder": embedder_resource(), "vector_store": vector_store_resource()}
            ledger = resources["vector_store"].ledger(store)
            stack.callback(ledger.close)
        except ValueError as exc:  # SyncInputError, QueryConfigError: they say what to set
            print(f"sync-pipelines reindex: {exc}", file=sys.stderr)
            return 2
        try:
            refuse_if_running(instance)
            _confirm(yes, confirm, store.name, store.count(), embedder.signature)
            progress = IndexProgress.beside(ledger)
            deleted = empty_store(progress, store, ledger, embedder.signature)
            _say(f"emptied store {store.name}: {deleted} ids deleted from it and its ledger")
            _say(f"rebuilding with embedder {embedder.signature} in a vector_index run")
            return _rebuild(instance, resources, ledger)
        except (ReindexRefused, StoreError, EmbedderError) as exc:
            print(f"sync-pipelines reindex: {exc}", file=sys.stderr)
            return 1


def refuse_if_running(instance) -> None:
    """A vector_index run in flight would race the emptying: wait for it or cancel it."""
    from dagster import AssetKey, DagsterRunStatus, RunsFilter

    from sync_pipelines.index.asset import VECTOR_INDEX

    statuses = [DagsterRunStatus[s] for s in _IN_FLIGHT]
    for run in instance.get_runs(filters=RunsFilter(statuses=statuses)):
        if AssetKey(VECTOR_INDEX) in (run.asset_selection or ()):
            raise ReindexRefused(
                f"vector_index run {run.run_id} is {run.status.value.lower()}: let it finish "
                "(or cancel it in the UI), then run reindex again"
            )


def _confirm(yes: bool, confirm: Callable[[str], str], store: str, vectors: int, embedder: str):
    if yes:
        return
    question = (
        f"This deletes the {vectors} vectors of {store} and embeds every retained document "
        f"again with {embedder}. Continue? [y/N] "
    )
    try:
        answer = confirm(question)
    except EOFError:  # no terminal to ask
        answer = ""
    if answer.strip().lower() not in {"y", "yes"}:
        raise ReindexRefused("not confirmed: nothing deleted (pass --yes to skip the question)")


def _rebuild(instance, resources: dict, ledger: ChunkLedger) -> int:
    """Materialize vector_index, printing progress from the ledger until it returns."""
    from dagster import materialize

    from sync_pipelines.definitions import vector_index

    started = time.monotonic()
    done = threading.Event()
    reporter = threading.Thread(
        target=_report, args=(ledger, started, done), daemon=True, name="reindex-progress"
    )
    reporter.start()
    try:
        result = materialize(
            [vector_index],
            selection=[vector_index],
            instance=instance,
            resources=resources,
            raise_on_error=False,
            run_config=_RUN_CONFIG,
            tags={REINDEX_TAG: uuid.uuid4().hex[:12]},
        )
    finally:
        done.set()
        reporter.join()
    if not result.success:
        _say(f"FAILURE (run {result.run_id}): {_failure(result)}")
        _say("the store is part-rebuilt: the next vector_index run (or reindex) finishes it")
        return 1
    (event,) = result.asset_materializations_for_node("vector_index")[-1:]
    meta = {k: v.value for k, v in event.metadata.items()}
    seconds = max(time.monotonic() - started, 1e-9)
    _say(
        f"reindexed: {_count(meta['document_files'], 'document file')}, "
        f"{meta['documents']} documents, "
        f"{meta['chunks_embedded']} chunks embedded, {meta['vectors_in_store']} vectors in the "
        f"store in {seconds:.1f} s ({meta['documents'] / seconds:.0f} documents/s, "
        f"{meta['chunks_embedded'] / seconds:.0f} chunks/s); run {result.run_id}"
    )
    return 0


def _report(ledger: ChunkLedger, started: float, done: threading.Event) -> None:
    """A line every PROGRESS_EVERY_S while the run lasts: the first, then each that moved."""
    last = None
    while not done.wait(PROGRESS_EVERY_S):
        now = indexed(ledger)
        if now != last:
            seconds = time.monotonic() - started
            _say(
                f"  {seconds:.0f} s: {now[0]} documents, {now[1]} chunks indexed "
                f"({now[1] / seconds:.0f} chunks/s)"
            )
            last = now


def _failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                return data.user_failure_data.description
            if data.error is not None:
                return data.error.message.strip()
    return "see the run in the UI"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _say(line: str) -> None:
    print(line, flush=True)  # between Dagster's own log lines, in order
