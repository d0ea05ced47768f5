"""Benchmark: embedding inputs a killed vector_index run costs, per write policy.

Indexes the same documents once without a kill and once with `--kills` kills, each landing at
the worst moment (the store has accepted an upsert request, the ledger has not recorded it),
then a run that finishes the job. Compares recording the ledger per upsert request of at
most WRITE_UNIT chunks (now) with recording it once per 500-document batch (before), and
prints inputs embedded, the extra a kill costs, and seconds without kills (local LanceDB and
the hashing embedder: the times show overhead, not network latency).

    .venv/bin/python bench/kill_cost.py --documents 500 --kills 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sync_pipelines.documents import Document
from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.resources import EmbedderResource
from sync_pipelines.index.stores.lance import LanceStore
from sync_pipelines.index.updater import WRITE_UNIT, IndexUpdater

BATCH_DOCUMENTS = 500  # VectorStoreResource.batch_documents' default


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


class KillableStore(LanceStore):
    """Raises Killed once it accepted `kill_after` requests, before the caller records them."""

    kill_after: int | None = None
    accepted = 0

    def upsert(self, records, on_request=None):
        def accepted(batch):
            self.accepted += 1
            if self.accepted == self.kill_after:
                raise Killed()
            if on_request is not None:
                on_request(batch)

        return super().upsert(records, on_request=accepted)


def documents(n: int) -> list[Document]:
    """Chat-sized documents, 11 in 50 a page of two chunks (500 give 610 chunks)."""
    docs = []
    for i in range(n):
        sentences = 14 if i % 50 < 11 else 6
        text = " ".join(f"Item {i} sentence {j} about the plan." for j in range(sentences))
        docs.append(
            Document(
                doc_id=Document.make_id("notion", "bench", f"p{i}"),
                source="notion",
                connection="bench",
                title=f"Page {i}",
                text=text,
                url=f"https://notion.test/p{i}",
                author="ana",
                created_at="2026-01-01",
                updated_at="2026-01-02",
                timestamp_epoch=1767312000.0 + i,
            )
        )
    return docs


def index(docs, work: Path, write_unit: int, kills: int) -> dict:
    """Inputs embedded over `kills` killed runs and the run that completes the index."""
    store = KillableStore(work / "vectors")
    embedder = HashingEmbedder()
    ledger = ChunkLedger(f"sqlite:///{work / 'ledger.sqlite'}", store.name)
    splitter = EmbedderResource(kind="hashing").splitter()
    runs = []
    started = time.monotonic()
    for run in range(kills + 1):
        store.accepted = 0
        store.kill_after = 1 if run < kills else None
        updater = IndexUpdater(
            embedder, store, ledger, splitter, batch_documents=BATCH_DOCUMENTS,
            write_unit=write_unit,
        )
        try:
            updater.apply(docs)
        except Killed:
            pass
        runs.append(updater.stats)
    seconds = time.monotonic() - started
    final = runs[-1]
    if store.ids() != ledger.all_ids() or store.count() != final.chunks_seen:
        raise SystemExit("FAIL: the store and the ledger disagree after the final run")
    ledger.close()
    return {
        "chunks": final.chunks_seen,
        "inputs": embedder.stats.inputs,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args(argv)
    docs = documents(args.documents)
    policies = {
        f"per request (<= {WRITE_UNIT} chunks)": WRITE_UNIT,
        f"per {BATCH_DOCUMENTS}-document batch": 10**9,
    }
    print(f"{args.documents} documents; each kill lands after the store accepted a request "
          "and before the ledger recorded it")
    with_kills = f"inputs, {args.kills} kills"
    print(f"{'ledger recorded':<30} {'chunks':>7} {'inputs':>7} {with_kills:>16} {'extra':>15} "
          f"{'s (no kill)':>12}")
    for label, unit in policies.items():
        with tempfile.TemporaryDirectory(prefix="kill-cost-") as clean_dir:
            clean = index(docs, Path(clean_dir), unit, kills=0)
        with tempfile.TemporaryDirectory(prefix="kill-cost-") as killed_dir:
            killed = index(docs, Path(killed_dir), unit, kills=args.kills)
        extra = killed["inputs"] - clean["inputs"]
        share = f"+{extra:,} (+{100 * extra / clean['inputs']:.0f} %)"
        print(f"{label:<30} {clean['chunks']:>7,} {clean['inputs']:>7,} {killed['inputs']:>16,} "
              f"{share:>15} {clean['seconds']:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
