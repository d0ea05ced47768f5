"""Search modes on LanceDB over a synthetic company: exact issue keys, a person's name, latency.

Documents: every chat message of `Company.generate` (one chunk each), every issue of the Jira
emulator (titled "KEY: summary" as the Jira source does, the title heading its chunk) and one long meeting transcript whose sentences all name one
person (chunked by 6 sentences). Embedder: hashing (lexical), so vector search already sees
words; the point is what keyword + fusion + document grouping add on top, and what it costs.

Prints, per mode: how often an exact issue key query returns its issue first (and MRR over the
issue's document rank), distinct documents in the top 20 of a name query, the places the
transcript takes there, and query latency (p50/p95). The chunk-level row is the former search
(top 20 chunks as they come from the store). Run:

    .venv/bin/python bench/search_modes.py [--messages 20000] [--keys 100]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.jira.data import JiraSite
from sync_pipelines_sandbox.text import Chatter

from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.search import SEARCH_MODES, search
from sync_pipelines.index.stores.base import SearchFilter, VectorRecord
from sync_pipelines.index.stores.lance import LanceStore

TRANSCRIPT_SENTENCES = 640
SENTENCES_PER_CHUNK = 6
TOP = 20


def documents(company: Company, rng: random.Random) -> tuple[list[tuple[str, list[str]]], str]:
    """(doc id, chunk texts) for every document, and the first name the transcript repeats."""
    docs = []
    for channel in company.chat_channels():
        for msg in company.channel_messages(channel.id):
            docs.append((f"slack:{channel.id}:{msg.ts}", [msg.text]))
    site = JiraSite.of(company)
    for key, issue in site.issues.items():
        # As the Jira source titles it, and as chunking heads every chunk with the title.
        docs.append((f"jira:{key}", [f"{key}: {issue.summary}\n\n{site.issue_text(issue)}"]))
    projects = [p.name for p in company.projects]
    chatter = Chatter(rng, company.issue_keys, projects)
    members = [(p.user_id, p.name.split()[0]) for p in company.people if not p.is_bot]
    who = members[0]
    sentences = [chatter.message([who]) + f" {who[1]} agreed." for _ in range(TRANSCRIPT_SENTENCES)]
    chunks = [
        " ".join(sentences[i : i + SENTENCES_PER_CHUNK])
        for i in range(0, len(sentences), SENTENCES_PER_CHUNK)
    ]
    docs.append(("fireflies:weekly", chunks))
    return docs, who[1]


def build(store: LanceStore, embedder: HashingEmbedder, docs) -> tuple[int, float, float]:
    records = []
    for doc_id, chunks in docs:
        vectors = embedder.embed(chunks)
        for n, text in enumerate(chunks):
            metadata = {"doc_id": doc_id, "source": doc_id.split(":")[0], "access": ["all"],
                        "chunk_n": n, "text": text, "title": doc_id}  # fmt: skip
            records.append(VectorRecord(f"{doc_id}#{n}", vectors[n], metadata))
    store.ensure_dimension(embedder.dimension)
    started = time.perf_counter()
    store.upsert(records)
    upserted = time.perf_counter() - started
    started = time.perf_counter()
    store.compact()  # merges fragments and builds the full-text index
    return len(records), upserted, time.perf_counter() - started


def timed(call, *args):
    started = time.perf_counter()
    result = call(*args)
    return result, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(11)
    company = Company.generate(seed=7, messages=args.messages, days=14)
    docs, name = documents(company, rng)
    embedder = HashingEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        store = LanceStore(Path(tmp) / "vectors")
        chunks, upsert_s, compact_s = build(store, embedder, docs)
        print(f"{len(docs)} documents, {chunks} chunks; upsert {upsert_s:.2f} s, "
              f"compact + full-text index {compact_s:.2f} s")  # fmt: skip
        keys = rng.sample(company.issue_keys, min(args.keys, len(company.issue_keys)))
        everyone = SearchFilter(["all"])
        print(f"{'mode':<14}{'key first':>10}{'key MRR':>9}{'name docs@20':>14}"
              f"{'transcript':>12}{'p50 ms':>9}{'p95 ms':>9}")  # fmt: skip

        def chunk_level(query: str) -> list[str]:
            vector = embedder.embed([query])[0]
            return [m.metadata["doc_id"] for m in store.query(vector, TOP, everyone)]

        rows = [("chunk-level", chunk_level)] + [
            (
                mode,
                lambda q, mode=mode: [h.doc_id for h in search(q, embedder, store, TOP, mode=mode)],
            )
            for mode in SEARCH_MODES
        ]
        for label, run in rows:
            latencies, first, reciprocal = [], 0, 0.0
            for key in keys:
                ids, ms = timed(run, key)
                latencies.append(ms)
                ranked = list(dict.fromkeys(ids))  # document ranks, for the chunk-level row too
                first += ranked[:1] == [f"jira:{key}"]
                if f"jira:{key}" in ranked:
                    reciprocal += 1 / (ranked.index(f"jira:{key}") + 1)
            ids, ms = timed(run, name)
            latencies.append(ms)
            p95 = statistics.quantiles(latencies, n=20)[-1]
            print(f"{label:<14}{first / len(keys):>10.2f}{reciprocal / len(keys):>9.3f}"
                  f"{len(set(ids)):>14}{ids.count('fireflies:weekly'):>12}"
                  f"{statistics.median(latencies):>9.1f}{p95:>9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
