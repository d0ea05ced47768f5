"""Benchmark: vector_index's pipelined updater against LangChain's index() (issue 14).

Same documents (Slack-like messages of 50 to 3,000 characters, as parquet document files),
same emulated endpoints for both: the sandbox's OpenAI emulator answering embeddings after
200 ms + 0.5 ms per input, its Pinecone emulator after 50 ms, in a separate process (so the
measured processes' memory is their own), rate limits out of the way. Prints, for each side:

- first run over N documents: docs/s, chunks, embedding requests in flight (max and
  time-weighted mean, counted by the emulator itself), peak RSS;
- an unchanged re-run: chunks embedded and vectors upserted (ideal: 0 and 0);
- a 1 % edit: chunks embedded and deleted against the ideal for its own chunking;
- ours alone, peak RSS over 10k / 50k / 200k documents with the hashing embedder and the
  embedded LanceDB store (the remote fakes would take an hour at 200k), each size in its own
  process.

The peer runs from a separate virtualenv, never a dependency of the project:

    python3.11 -m venv /tmp/peer
    /tmp/peer/bin/pip install langchain-classic langchain-openai langchain-pinecone \\
        langchain-text-splitters sqlalchemy greenlet pyarrow bpe-openai
    .venv/bin/python bench/index_bench.py --peer-python /tmp/peer/bin/python

Options: --docs 10000, --scale 10000,50000,200000 (empty: skip), --peer-python '' (skip).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve()
PEER_SCRIPT = BENCH.parent / "langchain_index_peer.py"
FILE_DOCS = 1000  # documents per file, as one source run writes them
EPOCH = 1_780_000_000.0
MODEL = "text-embedding-3-small"

# ---------------------------------------------------------------- the emulated endpoints


def serve(args) -> None:
    """Run one emulator (`--service openai` or `pinecone`) until stdin closes; print its URL.
    The OpenAI one also answers GET /bench/stats: embedding requests served, and in flight
    (the most, and the time-weighted mean while any was), `?reset` to start counting anew.
    Each emulator has a process of its own: the Pinecone one parses every vector's JSON, and
    sharing one interpreter lock would slow the embeddings server with it."""
    import uvicorn
    from starlette.responses import JSONResponse
    from sync_pipelines_sandbox import openai_api, pinecone_api

    if args.service == "pinecone":
        state = pinecone_api.PineconeState(dimension=args.dimension)
        state.latency_ms = args.store_ms
        app = pinecone_api.make_app(state)
    else:
        state = openai_api.OpenAIState()
        state.latency_ms = args.embed_ms
        state.latency_per_input_ms = args.embed_input_ms
        inner = openai_api.make_app(state)
        gauge = InFlightGauge()

        async def app(scope, receive, send):
            if scope["type"] == "http" and scope["path"] == "/bench/stats":
                reset = scope["query_string"] == b"reset"
                await JSONResponse(gauge.snapshot(reset))(scope, receive, send)
                return
            measured = scope["type"] == "http" and scope["path"] == "/v1/embeddings"
            if measured:
                gauge.step(+1)
            try:
                await inner(scope, receive, send)
            finally:
                if measured:
                    gauge.step(-1)

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    sys.stdin.read()


class InFlightGauge:
    """Requests in flight over time: the most, and the mean while any was in flight."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.now, self.busy, self.area, self.max, self.requests = 0, 0.0, 0.0, 0, 0
        self.changed = time.monotonic()

    def step(self, delta: int) -> None:
        with self.lock:
            moment = time.monotonic()
            if self.now:
                self.area += self.now * (moment - self.changed)
                self.busy += moment - self.changed
            self.now += delta
            self.changed = moment
            self.max = max(self.max, self.now)
            self.requests += delta > 0

    def snapshot(self, reset: bool) -> dict:
        with self.lock:
            out = {
                "requests": self.requests,
                "max_in_flight": self.max,
                "mean_in_flight": round(self.area / self.busy, 2) if self.busy else 0.0,
            }
            if reset:
                self.reset()
        return out


class Endpoints:
    """The two emulator processes, started for one side of the benchmark."""

    def __init__(self, dimension: int, embed_ms: float, embed_input_ms: float, store_ms: float):
        self.procs, self.urls = [], {}
        for service in ("openai", "pinecone"):
            command = [sys.executable, str(BENCH), "serve", "--service", service]
            command += ["--dimension", str(dimension), "--store-ms", str(store_ms)]
            command += ["--embed-ms", str(embed_ms), "--embed-input-ms", str(embed_input_ms)]
            proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            self.procs.append(proc)
            self.urls[service] = proc.stdout.readline().strip()

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
            proc.wait(timeout=30)


# ---------------------------------------------------------------- the documents

_WORDS = [
    "deploy",
    "release",
    "rollback",
    "billing",
    "migration",
    "subscription",
    "invoice",
    "customer",
    "renewal",
    "pipeline",
    "dashboard",
    "latency",
    "alert",
    "incident",
    "postmortem",
    "review",
    "design",
    "spec",
    "roadmap",
    "sprint",
    "backlog",
    "ticket",
    "bug",
    "fix",
    "patch",
    "hotfix",
    "staging",
    "production",
    "database",
    "index",
    "query",
    "cache",
    "timeout",
    "retry",
    "queue",
    "worker",
    "cluster",
    "node",
    "metrics",
    "logs",
    "trace",
    "budget",
    "forecast",
    "contract",
    "onboarding",
    "churn",
    "pricing",
    "discount",
    "quote",
    "demo",
    "meeting",
    "agenda",
    "notes",
    "follow-up",
    "decision",
    "owner",
    "deadline",
    "risk",
    "the",
    "a",
    "to",
    "of",
    "and",
    "for",
    "on",
    "with",
    "we",
    "it",
    "is",
    "this",
    "that",
    "please",
    "can",
    "should",
    "will",
    "just",
    "thanks",
    "team",
]
_PEOPLE = ["ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo"]
_CHANNELS = ["general", "eng", "billing", "support", "sales", "ops", "design", "random"]


def message(rng: random.Random) -> str:
    """A Slack-like message of 50 to 3,000 characters, most of them short."""
    target = int(50 * (60 ** rng.random()))  # log-uniform between 50 and 3,000
    sentences, size = [], 0
    while size < target:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), f"@{rng.choice(_PEOPLE)}")
        if rng.random() < 0.1:
            words.append(f"SUBS-{rng.randint(1, 999)}")
        sentence = " ".join(words).capitalize() + rng.choice(".!?")
        sentences.append(sentence)
        size += len(sentence) + 1
        if rng.random() < 0.15:
            sentences.append("\n\n")
    return " ".join(sentences)[:3000].strip()


def document(n: int, rng: random.Random):
    from sync_pipelines.documents import Document

    channel = _CHANNELS[n % len(_CHANNELS)]
    private = channel in ("billing", "sales")
    author = rng.choice(_PEOPLE)
    ts = EPOCH + n * 7.0
    return Document(
        doc_id=Document.make_id("slack", "bench", f"C{n % len(_CHANNELS)}-{ts:.6f}"),
        source="slack",
        connection="bench",
        title=f"#{channel}",
        text=message(rng),
        url=f"https://bench.slack.test/archives/{channel}/p{int(ts * 1e6)}",
        author=f"{author}@bench.test",
        created_at=f"{ts:.0f}",
        updated_at=f"{ts:.0f}",
        timestamp_epoch=ts,
        access=(f"{channel}@bench.test",) if private else ("all",),
        metadata={"channel_id": f"C{n % len(_CHANNELS)}", "channel_name": channel},
    )


def write_corpus(folder: Path, docs: int, seed: int = 7) -> list[str]:
    """`docs` documents in files of FILE_DOCS, written one file at a time."""
    from sync_pipelines.documents import DocumentFiles

    rng = random.Random(seed)
    files = DocumentFiles(folder)
    paths = []
    for start in range(0, docs, FILE_DOCS):
        batch = [document(n, rng) for n in range(start, min(docs, start + FILE_DOCS))]
        paths.append(str(files.write("slack", "bench", f"run{start // FILE_DOCS:05d}", batch)))
    return paths


def write_edits(folder: Path, paths: list[str], every: int = 100, seed: int = 11) -> str:
    """One document in `every` edited, as a source's next run would land them: a third with
    a word changed mid-text, a third with a sentence appended, a third cut to half its
    length (so chunks vanish)."""
    from dataclasses import replace

    from sync_pipelines.documents import DocumentFiles

    rng = random.Random(seed)
    edited = []
    n = 0
    for path in paths:
        for doc in DocumentFiles.iter_entries(path):
            if n % every == 0:
                kind = (n // every) % 3
                if kind == 0:
                    words = doc.text.split(" ")
                    middle = len(words) // 2
                    words[middle] = words[middle] + "-edited"
                    text = " ".join(words)
                elif kind == 1:
                    text = doc.text + " Edit: " + message(rng)[:200]
                else:
                    text = doc.text[: max(40, len(doc.text) // 2)].rstrip() + " (cut)"
                edited.append(replace(doc, text=text, updated_at=doc.updated_at + "1"))
            n += 1
    return str(DocumentFiles(folder).write("slack", "bench", "edits", edited))


# ---------------------------------------------------------------- our side


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(args) -> None:
    """First run, unchanged re-run and 1 % edit through IndexUpdater; one JSON line out."""
    from sync_pipelines.documents import DocumentFiles
    from sync_pipelines.index.chunking import chunk_document
    from sync_pipelines.index.embedders import HashingEmbedder, OpenAIEmbedder
    from sync_pipelines.index.ledger import ChunkLedger
    from sync_pipelines.index.resources import EmbedderResource
    from sync_pipelines.index.updater import IndexUpdater

    work = Path(args.work)
    paths = json.loads(Path(args.corpus).read_text())
    splitter = EmbedderResource().splitter()
    if args.remote:
        from sync_pipelines_sandbox.openai_api import SANDBOX_OPENAI_KEY
        from sync_pipelines_sandbox.pinecone_api import SANDBOX_PINECONE_KEY

        from sync_pipelines.index.stores.pinecone import PineconeStore

        urls = json.loads(args.remote)
        embedder = OpenAIEmbedder(
            api_key=SANDBOX_OPENAI_KEY, base_url=urls["openai"] + "/v1", model=MODEL
        )
        if args.local_embedder:
            embedder = HashingEmbedder()
        store = PineconeStore(api_key=SANDBOX_PINECONE_KEY, host=urls["pinecone"])
    else:
        from sync_pipelines.index.stores.lance import LanceStore

        embedder, store = HashingEmbedder(), LanceStore(work / "vectors")
    ledger = ChunkLedger(f"sqlite:///{work / 'ledger.sqlite'}", store.name)
    splitter.counter.count("load the tokenizer")  # its tables are part of the baseline
    baseline = peak_rss_mb()  # imports, clients, tokenizer: before any document

    def run(files: list[str]) -> dict:
        updater = IndexUpdater(embedder, store, ledger, splitter)
        started, cpu = time.monotonic(), time.process_time()
        stats = updater.apply_files(files)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        upserted = {"upserted": stats.chunks_embedded}
        return {
            **stats.as_metadata(),
            **upserted,
            "seconds": round(seconds, 2),
            "cpu_s": round(cpu, 2),
            "rss_mb": peak_rss_mb(),
        }

    out = {"first": run(paths)}
    out["first"]["rss_baseline_mb"] = baseline
    out["first"]["settings"] = str(IndexUpdater(embedder, store, ledger, splitter).settings)
    if args.remote and not args.local_embedder:
        out["first"]["server"] = stats_of(args.remote)
    if not args.only_first:
        out["rerun"] = run(paths)
        edits = json.loads(Path(args.edits).read_text())
        out["edit"] = run([edits])
        # The ideal for our chunking: ids whose text changed or appeared, ids that vanished.
        old = {}
        for path in paths:
            for doc in DocumentFiles.iter_entries(path):
                old[doc.doc_id] = doc
        embed = delete = 0
        for doc in DocumentFiles.iter_entries(edits):
            before = {c.vector_id: c.text for c in chunk_document(old[doc.doc_id], splitter, "")}
            after = {c.vector_id: c.text for c in chunk_document(doc, splitter, "")}
            embed += sum(1 for i, t in after.items() if before.get(i) != t)
            delete += len(before.keys() - after.keys())
        out["edit"]["ideal_embedded"], out["edit"]["ideal_deleted"] = embed, delete
    print(json.dumps(out), flush=True)


def stats_of(remote: str) -> dict:
    import urllib.request

    url = json.loads(remote)["openai"] + "/bench/stats?reset"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def child(command: list[str]) -> dict:
    """Run one measured side in its own process (its peak RSS is its own); its JSON line."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("serve")
    p.add_argument("--service", choices=("openai", "pinecone"), required=True)
    p.add_argument("--dimension", type=int, default=1536)
    p.add_argument("--embed-ms", type=float, default=200)
    p.add_argument("--embed-input-ms", type=float, default=0.5)
    p.add_argument("--store-ms", type=float, default=50)
    p = sub.add_parser("ours")
    p.add_argument("--work", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--edits", default="")
    p.add_argument("--remote", default="")
    p.add_argument("--only-first", action="store_true")
    p.add_argument("--local-embedder", action="store_true", help="hashing, not the emulator")
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--scale", default="10000,50000,200000")
    parser.add_argument("--peer-python", default="/tmp/peer/bin/python")
    parser.add_argument("--dimension", type=int, default=1536)
    parser.add_argument("--lance", action="store_true", help="scale runs on LanceDB")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args)
        return 0
    if args.command == "ours":
        run_ours(args)
        return 0

    work = Path(tempfile.mkdtemp(prefix="index-bench-"))
    started = time.monotonic()
    paths = write_corpus(work / "documents", args.docs)
    edits = write_edits(work / "edited", paths)
    (work / "corpus.json").write_text(json.dumps(paths))
    (work / "edits.json").write_text(json.dumps(edits))
    print(
        f"{args.docs} documents in {len(paths)} files, 1 % edited, written in "
        f"{time.monotonic() - started:.1f} s under {work}"
    )
    results = {}
    for side in ("ours", "langchain") if args.peer_python else ("ours",):
        endpoints = Endpoints(args.dimension, 200, 0.5, 50)
        try:
            remote = json.dumps(endpoints.urls)
            side_work = work / side
            side_work.mkdir()
            if side == "ours":
                command = [sys.executable, str(BENCH), "ours", "--work", str(side_work)]
                command += ["--corpus", str(work / "corpus.json")]
                command += ["--edits", str(work / "edits.json"), "--remote", remote]
            else:
                command = [args.peer_python, str(PEER_SCRIPT), "--work", str(side_work)]
                command += ["--corpus", str(work / "corpus.json")]
                command += ["--edits", str(work / "edits.json"), "--remote", remote]
            results[side] = child(command)
        finally:
            endpoints.close()
        report(side, results[side], args.docs)
    if "langchain" in results:
        ours, peer = results["ours"]["first"], results["langchain"]["first"]
        print(f"\nfirst run speed: {ours['docs_per_s'] / peer['docs_per_s']:.1f}x LangChain's")
    for size in [int(s) for s in args.scale.split(",") if s.strip()]:
        scale_work = work / f"scale{size}"
        scale_work.mkdir()
        corpus = write_corpus(scale_work / "documents", size, seed=size)
        (scale_work / "corpus.json").write_text(json.dumps(corpus))
        command = [sys.executable, str(BENCH), "ours", "--work", str(scale_work), "--only-first"]
        command += ["--corpus", str(scale_work / "corpus.json")]
        if args.lance:
            first, where = child(command)["first"], "LanceDB"
        else:
            endpoints = Endpoints(384, 0, 0, 50)  # the store's vectors live in its process
            try:
                command += ["--remote", json.dumps(endpoints.urls), "--local-embedder"]
                first, where = child(command)["first"], "Pinecone emulator at 50 ms"
            finally:
                endpoints.close()
        print(
            f"\nscale {size} documents (hashing embedder, {where}): {first['chunks_seen']} "
            f"chunks in {first['seconds']:.0f} s = {size / first['seconds']:.0f} docs/s, peak RSS "
            f"{first['rss_mb']:.0f} MB ({first['rss_baseline_mb']:.0f} MB before any document)"
        )
    return 0


def report(side: str, result: dict, docs: int) -> None:
    first = result["first"]
    first["docs_per_s"] = docs / first["seconds"]
    server = first.get("server", {})
    print(f"\n== {side}")
    print(
        f"first run: {docs} documents, {first['chunks_seen']} chunks in {first['seconds']:.1f} s "
        f"= {first['docs_per_s']:.0f} docs/s; embedding requests {server.get('requests')}, "
        f"in flight max {server.get('max_in_flight')} mean {server.get('mean_in_flight')}; "
        f"process CPU {first['cpu_s']:.0f} s; peak RSS {first['rss_mb']:.0f} MB"
        + (
            f" ({first['rss_baseline_mb']:.0f} before any document)"
            if "rss_baseline_mb" in first
            else ""
        )
    )
    if "rerun" in result:
        rerun = result["rerun"]
        print(
            f"unchanged re-run: {rerun['chunks_embedded']} embedded, "
            f"{rerun['upserted']} upserted in {rerun['seconds']:.1f} s"
        )
        edit = result["edit"]
        print(
            f"1 % edit: {edit['chunks_embedded']} embedded / {edit['chunks_deleted']} deleted, "
            f"ideal {edit['ideal_embedded']} / {edit['ideal_deleted']}"
        )


if __name__ == "__main__":
    sys.exit(main())
