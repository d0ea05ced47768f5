"""Retrieval evaluation: recall@5, recall@20 and MRR over a synthetic company's documents.

The sandbox company knows which documents answer which query (sync_pipelines_sandbox.
retrieval_truth: exact issue keys, person names, topic words, paraphrases sharing no
distinctive word with the answer). This script syncs the company through the real sources
against the emulators once, indexes the documents with the real `vector_index` asset into a
fresh LanceDB store per embedder (and chunk setting), runs every query through
`sync_pipelines.index.search.search` as the query's user, and prints the figures per category
and overall, per embedder and search mode.

Metrics, per query, over the relevant documents the query's user may read (R):
recall@k = |R ∩ top k| / min(|R|, k) (a query with 30 answers can still score 1.0 at k=5),
MRR = 1 / rank of the first relevant document within the top `--depth` (0 if none),
P@1 = share of queries whose first result is relevant. Results are documents: a chunk-level
search API is collapsed to each document's best rank.

The OpenAI emulator's vectors are hashes of the text, not meaning: `--openai` runs it only to
check the plumbing (batching, dimensions, store) end to end, and its rows say so. An
embedder kind or search mode this checkout lacks is reported as unavailable, not skipped
silently. A default run (3,000 chat messages, 12 sources, 2 embedders) takes about 4 minutes.

    .venv/bin/python bench/retrieval_eval.py    # hashing and wordllama, vector and hybrid
    .venv/bin/python bench/retrieval_eval.py --chunk-tokens 128,256,400 --chunk-overlap 0,32
    .venv/bin/python bench/retrieval_eval.py --embedders hashing --modes vector --json out.json
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from dagster import DagsterInstance, materialize
from sync_pipelines_sandbox import Company, Sandbox
from sync_pipelines_sandbox.contract import contract_for
from sync_pipelines_sandbox.retrieval_truth import (
    CATEGORIES,
    SOURCES,
    TruthQuery,
    retrieval_queries,
)

from sync_pipelines import clock
from sync_pipelines.documents import ACCESS_ALL, Document, DocumentFiles, Tombstone
from sync_pipelines.index import search as search_module
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines.sources.base import MAX_DAYS_PER_RUN
from sync_pipelines.sources.registry import names
from sync_pipelines.warehouse.destination import WarehouseResource

CONNECTION = "acme"
CHUNK_TOKENS_ENV = "SYNC_CHUNK_TOKENS"
CHUNK_OVERLAP_ENV = "SYNC_CHUNK_OVERLAP"
INSTANCE_YAML = "telemetry:\n  enabled: false\n"
# A chunk-level search API returns chunks: ask for this many per wanted document, then more.
_CHUNKS_PER_DOCUMENT = 8


# ----------------------------------------------------------------------------- syncing
def connections_env(sandbox: Sandbox, sources: Sequence[str], registry: Path) -> dict[str, str]:
    """Writes a registry with one `acme` connection per source on its emulator (the source
    contracts' entries) and answers the environment variables its credentials name."""
    env: dict[str, str] = {}
    entries: dict[str, str] = {}  # source -> its entry (Tempo's contract adds Jira's too)
    for source in sources:
        contract = contract_for(source)
        secret_env = f"RETRIEVAL_EVAL_{source.upper()}_SECRET"
        env[secret_env] = contract.good_secret
        env.update(contract.extra_env)
        text = contract.registry_entry(sandbox, CONNECTION, secret_env)
        for item in re.split(r"(?m)^(?=  - id: )", text):
            named = re.search(r"(?m)^    source: (\S+)", item)
            if named and (named.group(1) == source or named.group(1) not in entries):
                entries[named.group(1)] = item.rstrip("\n")
    registry.write_text("connections:\n" + "\n".join(entries.values()) + "\n")
    return env


def sync_sources(
    company: Company,
    sandbox: Sandbox,
    instance: DagsterInstance,
    work: Path,
    sources: Sequence[str],
) -> None:
    """Range runs per source over the company's days, through the source's asset with the
    contract's (unpaced) resources; the environment must hold `connections_env`'s answer."""
    resources: dict = {
        "connections": ConnectionRegistry(path=str(work / "connections.yaml")),
        "documents": DocumentStore(root=str(work / "documents")),
        "warehouse": WarehouseResource(url=None, data_dir=str(work / "warehouse")),
    }
    for source in sources:
        resources.update(contract_for(source).resources(sandbox))
    today = clock.today()
    first = today - timedelta(days=company.days - 1)
    ranges = []  # a run covers at most MAX_DAYS_PER_RUN days (the backfill policy's limit)
    while first <= today:
        last = min(today, first + timedelta(days=MAX_DAYS_PER_RUN - 1))
        ranges.append((first, last))
        first = last + timedelta(days=1)
    for source in sources:
        instance.add_dynamic_partitions(connections_partitions_name(source), [CONNECTION])
        for lo, hi in ranges:
            materialize(
                [contract_for(source).asset],
                instance=instance,
                resources=resources,
                tags={
                    "dagster/asset_partition_range_start": f"{CONNECTION}|{lo}",
                    "dagster/asset_partition_range_end": f"{CONNECTION}|{hi}",
                },
            )


def synced_documents(documents_root: Path) -> dict[str, Document]:
    """The latest version of every document the sources wrote (tombstoned ones left out)."""
    docs: dict[str, Document] = {}
    paths = sorted(documents_root.rglob("*.parquet"), key=lambda p: p.stat().st_mtime)
    for path in paths:
        for entry in DocumentFiles.read_entries(path):
            if isinstance(entry, Document):
                docs[entry.doc_id] = entry
            elif isinstance(entry, Tombstone):
                docs.pop(entry.doc_id, None)
    return docs


def readable(doc: Document, as_user: str | None) -> bool:
    identities = {ACCESS_ALL} | ({as_user.strip().lower()} if as_user else set())
    return any(a.lower() in identities for a in doc.access)


# ----------------------------------------------------------------------------- the search API
class ModeUnavailable(RuntimeError):
    """The installed search (or this store) cannot search in the asked mode."""


def search_documents(
    query: str, embedder, store, top_k: int, as_user: str | None, mode: str
) -> list[str]:
    """The top_k document ids for `query`, with either search API: documents with `.doc_id`
    and a `mode` (hybrid search), or chunks with `metadata["doc_id"]` and no mode (vector
    only), collapsed here to each document's first rank."""
    search = search_module.search
    params = inspect.signature(search).parameters
    options = {"as_user": as_user}
    if "mode" in params:
        if mode != "vector" and not getattr(store, "supports_keyword", False):
            raise ModeUnavailable(f"store {getattr(store, 'name', store)} has no keyword search")
        options["mode"] = mode
    elif mode != "vector":
        raise ModeUnavailable("search() has no `mode`: vector search only")
    limit = getattr(search_module, "MAX_TOP_K", 1000)
    fetch = top_k
    while True:
        hits = search(query, embedder, store, top_k=fetch, **options)
        ids = list(dict.fromkeys(_doc_id(h) for h in hits))
        if len(ids) >= top_k or len(hits) < fetch or fetch >= limit:
            return ids[:top_k]
        fetch = min(limit, max(fetch * 4, top_k * _CHUNKS_PER_DOCUMENT))


def _doc_id(hit) -> str:
    doc_id = getattr(hit, "doc_id", None)
    return doc_id if doc_id is not None else hit.metadata["doc_id"]


# ----------------------------------------------------------------------------- metrics
@dataclass
class Scores:
    """Per-query figures of one category (or all queries)."""

    recall5: list[float] = field(default_factory=list)
    recall20: list[float] = field(default_factory=list)
    rr: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)

    def add(self, ranking: Sequence[str], relevant: set[str]) -> None:
        self.recall5.append(recall_at(ranking, relevant, 5))
        self.recall20.append(recall_at(ranking, relevant, 20))
        rank = next((n for n, d in enumerate(ranking, 1) if d in relevant), None)
        self.rr.append(1.0 / rank if rank else 0.0)
        self.first.append(1.0 if rank == 1 else 0.0)

    def summary(self) -> dict:
        def mean(values: list[float]) -> float | None:
            return round(statistics.fmean(values), 3) if values else None

        return {
            "queries": len(self.rr),
            "recall@5": mean(self.recall5),
            "recall@20": mean(self.recall20),
            "mrr": mean(self.rr),
            "p@1": mean(self.first),
        }


def recall_at(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant.intersection(ranking[:k])) / min(len(relevant), k)


@dataclass(frozen=True)
class Judged:
    """A query with the relevant documents its user may read among those indexed."""

    truth: TruthQuery
    relevant: frozenset[str]


def judge(queries: Iterable[TruthQuery], docs: dict[str, Document]) -> tuple[list[Judged], dict]:
    """Keeps each query's readable, indexed answers; counts what was dropped and why."""
    judged, dropped = [], {"relevant_not_synced": 0, "queries_without_readable_answer": 0}
    for q in queries:
        synced = [d for d in q.relevant if d in docs]
        dropped["relevant_not_synced"] += len(q.relevant) - len(synced)
        keep = frozenset(d for d in synced if readable(docs[d], q.as_user))
        if keep:
            judged.append(Judged(q, keep))
        else:
            dropped["queries_without_readable_answer"] += 1
    return judged, dropped


def names_key(doc: Document, key: str) -> bool:
    """The document's title or text names the issue key (not a longer one: SUBS-12 is not
    named by SUBS-121)."""
    pattern = rf"(?<![\w-]){re.escape(key)}(?!\d)"
    return re.search(pattern, f"{doc.title}\n{doc.text}") is not None


def evaluate(
    judged: Sequence[Judged], docs: dict[str, Document], embedder, store, mode: str, depth: int
) -> dict:
    """Every query through search; besides the scores, for exact keys, how often the first
    result at least names the key (the issue itself first is P@1 of exact_key)."""
    by_category = {c: Scores() for c in CATEGORIES}
    overall = Scores()
    key_named_first = []
    started = time.monotonic()
    for item in judged:
        q = item.truth
        ranking = search_documents(q.query, embedder, store, depth, q.as_user, mode)
        by_category[q.category].add(ranking, set(item.relevant))
        overall.add(ranking, set(item.relevant))
        if q.category == "exact_key":
            key_named_first.append(bool(ranking) and names_key(docs[ranking[0]], q.query))
    seconds = time.monotonic() - started
    return {
        "categories": {c: s.summary() for c, s in by_category.items()},
        "overall": overall.summary(),
        "exact_key_named_by_first": round(statistics.fmean(key_named_first), 3)
        if key_named_first
        else None,
        "ms_per_query": round(1000 * seconds / max(1, len(judged)), 1),
    }


# ----------------------------------------------------------------------------- indexing
@dataclass(frozen=True)
class Setup:
    """One index to build: an embedder (with a label) and a chunk setting."""

    label: str
    embedder: EmbedderResource
    chunk_tokens: int | None
    chunk_overlap: int | None
    plumbing_only: bool = False

    @property
    def name(self) -> str:
        tokens = getattr(self.embedder, "chunk_tokens", self.chunk_tokens)
        overlap = getattr(self.embedder, "chunk_overlap_tokens", self.chunk_overlap)
        return f"{self.label} chunks={tokens}/{overlap}"


def embedder_resource(kind: str, sandbox: Sandbox, tokens: int | None, overlap: int | None):
    """The embedder as the code location configures it; chunk sizes through the resource's
    fields when it has them (else only through SYNC_CHUNK_TOKENS/SYNC_CHUNK_OVERLAP)."""
    options: dict = {"kind": kind}
    fields = getattr(EmbedderResource, "model_fields", {})
    if tokens is not None and "chunk_tokens" in fields:
        options["chunk_tokens"] = tokens
    if overlap is not None and "chunk_overlap_tokens" in fields:
        options["chunk_overlap_tokens"] = overlap
    if kind == "openai":
        env = sandbox.env()
        options.update(
            openai_api_key=env.get("OPENAI_API_KEY", "sandbox"),
            openai_base_url=sandbox.urls["openai"],
        )
    return EmbedderResource(**options)


def build_index(setup: Setup, synced_home: Path, work: Path, sources: Sequence[str]):
    """vector_index over the synced documents into a fresh store: a copy of the synced
    Dagster home (its source events are vector_index's queue) and an empty LanceDB folder."""
    slug = "".join(c if c.isalnum() else "-" for c in setup.name)
    home = work / f"home-{slug}"
    shutil.copytree(synced_home, home)
    store_resource = VectorStoreResource(
        kind="lance",
        lance_path=str(work / f"vectors-{slug}"),
        ledger_url=f"sqlite:///{work / f'ledger-{slug}.sqlite'}",
    )
    _set_chunk_env(setup.chunk_tokens, setup.chunk_overlap)
    from sync_pipelines.definitions import vector_index

    upstream = [contract_for(s).asset.to_source_asset() for s in sources]
    instance = DagsterInstance.local_temp(tempdir=str(home))
    started = time.monotonic()
    try:
        result = materialize(
            [vector_index, *upstream],
            selection=[vector_index],
            instance=instance,
            resources={"embedder": setup.embedder, "vector_store": store_resource},
        )
    finally:
        instance.dispose()
    meta = result.asset_materializations_for_node("vector_index")[-1].metadata
    figures = {k: meta[k].value for k in ("documents", "chunks_seen", "vectors_in_store")}
    figures["index_s"] = round(time.monotonic() - started, 1)
    return setup.embedder.build(), store_resource.build(), figures


def _set_chunk_env(tokens: int | None, overlap: int | None) -> None:
    for name, value in ((CHUNK_TOKENS_ENV, tokens), (CHUNK_OVERLAP_ENV, overlap)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)


def embedder_available(kind: str) -> str | None:
    """None if EmbedderResource can build `kind` here, else why not."""
    if kind == "openai":
        return None
    try:
        EmbedderResource(kind=kind).build()
    except Exception as exc:  # noqa: BLE001 - reported, the other embedders still run
        return f"{type(exc).__name__}: {exc}"
    return None


# ----------------------------------------------------------------------------- report
def print_table(rows: list[dict]) -> None:
    header = f"{'index':34s} {'mode':7s} {'category':11s} {'n':>4s} "
    header += f"{'R@5':>6s} {'R@20':>6s} {'MRR':>6s} {'P@1':>6s}"
    print(header)
    print("-" * len(header))
    for row in rows:
        prefix = f"{row['index']:34s} {row['mode']:7s}"
        if "unavailable" in row:
            print(f"{prefix} unavailable: {row['unavailable']}")
            continue
        parts = [*((c, row["categories"][c]) for c in CATEGORIES), ("overall", row["overall"])]
        for category, s in parts:
            if not s["queries"]:
                continue
            print(
                f"{prefix} {category:11s} {s['queries']:4d} {s['recall@5']:6.3f} "
                f"{s['recall@20']:6.3f} {s['mrr']:6.3f} {s['p@1']:6.3f}"
            )
        note = (
            " (PLUMBING ONLY: the emulator's vectors are not semantic)" if row["plumbing"] else ""
        )
        named = row["exact_key_named_by_first"]
        named = "" if named is None else f"; first result names the exact key: {named:.3f}"
        print(f"{prefix} {row['ms_per_query']} ms/query{named}{note}")
    print()


def _ints(text: str) -> list[int | None]:
    return [None if t in ("", "default") else int(t) for t in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000, help="company size (chat)")
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--sources",
        default="all",
        help="'all' declared sources (distractors included) or "
        f"'truth' (only those answers come from: {', '.join(SOURCES)}) or a comma list",
    )
    parser.add_argument("--embedders", default="hashing,wordllama", help="comma list")
    parser.add_argument(
        "--openai",
        action="store_true",
        help="add the OpenAI emulator (plumbing only: its vectors are not semantic)",
    )
    parser.add_argument("--modes", default="vector,hybrid", help="vector, keyword, hybrid")
    parser.add_argument("--chunk-tokens", default="default", help="comma list, e.g. 128,256")
    parser.add_argument("--chunk-overlap", default="default", help="comma list, e.g. 0,32")
    parser.add_argument("--depth", type=int, default=20, help="results per query (>= 20)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.depth < 20:
        parser.error("--depth must be at least 20 (recall@20 is reported)")
    if args.sources == "all":
        sources = list(names())
    elif args.sources == "truth":
        sources = list(SOURCES)
    else:
        sources = args.sources.split(",")
    missing = set(SOURCES) - set(sources)
    if missing:
        parser.error(f"--sources must include the sources answers come from: {sorted(missing)}")
    kinds = [k for k in args.embedders.split(",") if k] + (["openai"] if args.openai else [])
    modes = [m for m in args.modes.split(",") if m]

    work = Path(tempfile.mkdtemp(prefix="retrieval-eval-"))
    synced_home = work / "home"
    synced_home.mkdir()
    (synced_home / "dagster.yaml").write_text(INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(synced_home)
    report: dict = {"settings": vars(args), "runs": []}
    started = time.monotonic()
    company = Company.generate(seed=args.seed, messages=args.messages, days=args.days)
    queries = retrieval_queries(company, CONNECTION)
    try:
        with Sandbox(company=company) as sandbox:
            os.environ.update(connections_env(sandbox, sources, work / "connections.yaml"))
            instance = DagsterInstance.local_temp(tempdir=str(synced_home))
            try:
                sync_sources(company, sandbox, instance, work, sources)
            finally:
                instance.dispose()
            docs = synced_documents(work / "documents")
            judged, dropped = judge(queries, docs)
            counts = {c: sum(j.truth.category == c for j in judged) for c in CATEGORIES}
            report["corpus"] = {
                "documents": len(docs),
                "sources": sources,
                "queries": len(judged),
                "per_category": counts,
                **dropped,
                "sync_s": round(time.monotonic() - started, 1),
            }
            print(
                f"company: {args.messages} chat messages over {args.days} days, seed "
                f"{args.seed}; {len(docs)} documents from {len(sources)} sources in "
                f"{report['corpus']['sync_s']} s"
            )
            print(f"queries: {len(judged)} judged {counts}; dropped: {dropped}\n")
            rows = []
            chunk_settings = list(
                itertools.product(_ints(args.chunk_tokens), _ints(args.chunk_overlap))
            )
            for kind in kinds:
                why_not = embedder_available(kind)
                if why_not:
                    rows.append({"index": kind, "mode": "-", "unavailable": why_not})
                    print(f"{kind}: unavailable ({why_not})", flush=True)
                    continue
                for tokens, overlap in chunk_settings:
                    setup = Setup(
                        kind,
                        embedder_resource(kind, sandbox, tokens, overlap),
                        tokens,
                        overlap,
                        plumbing_only=kind == "openai",
                    )
                    embedder, store, figures = build_index(setup, synced_home, work, sources)
                    print(f"{setup.name}: {figures}", flush=True)
                    for mode in modes:
                        row = {
                            "index": setup.name,
                            "mode": mode,
                            "plumbing": setup.plumbing_only,
                            "index_figures": figures,
                        }
                        try:
                            row.update(evaluate(judged, docs, embedder, store, mode, args.depth))
                        except ModeUnavailable as exc:
                            row["unavailable"] = str(exc)
                        rows.append(row)
            print()
            print_table(rows)
            report["runs"] = rows
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")
    report["total_s"] = round(time.monotonic() - started, 1)
    print(f"total {report['total_s']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
