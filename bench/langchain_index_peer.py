"""The peer of bench/index_bench.py: LangChain's index() with a SQL record manager and
incremental cleanup, over the same document files and the same emulated endpoints.

Runs in its own virtualenv (see index_bench.py), so it imports nothing of sync_pipelines:
it reads the parquet document files with pyarrow, record batch by record batch, and splits
them with RecursiveCharacterTextSplitter measuring length in cl100k tokens (bpe-openai, the
offline tokenizer our splitter uses), at our default 256 tokens and 32 of overlap. Prints one
JSON line: first run, unchanged re-run and 1 % edit, as index_bench.py's own side does.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import urllib.request
from pathlib import Path

import bpe_openai
import pyarrow.parquet as pq
from langchain_classic.indexes import SQLRecordManager, index
from langchain_core.documents import Document
from langchain_openai import OpenAIEmbeddings
from langchain_pinecone import PineconeVectorStore
from langchain_text_splitters import RecursiveCharacterTextSplitter
from pinecone import Pinecone

MODEL = "text-embedding-3-small"
CHUNK_TOKENS, OVERLAP_TOKENS = 256, 32
FIELDS = ("doc_id", "source", "title", "url", "author", "timestamp_epoch", "access")


def documents(paths):
    """LangChain documents from the files, lazily (index() batches them itself)."""
    for path in paths:
        with pq.ParquetFile(path) as file:
            for batch in file.iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    if row.get("deleted") or row.get("listed_ids") is not None:
                        continue
                    meta = {k: row[k] for k in FIELDS}
                    meta.update(json.loads(row["metadata"] or "{}"))
                    yield Document(page_content=row["text"], metadata=meta)


def chunks(splitter, paths):
    for doc in documents(paths):
        yield from splitter.split_documents([doc])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_stats(urls) -> dict:
    with urllib.request.urlopen(urls["openai"] + "/bench/stats?reset", timeout=10) as answer:
        return json.loads(answer.read())


def key(doc: Document) -> str:
    return json.dumps([doc.page_content, doc.metadata], sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--edits", required=True)
    parser.add_argument("--remote", required=True)
    args = parser.parse_args()
    urls = json.loads(args.remote)
    paths = json.loads(Path(args.corpus).read_text())
    edits = json.loads(Path(args.edits).read_text())

    encoding = bpe_openai.get_encoding("cl100k_base")
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_TOKENS,
        chunk_overlap=OVERLAP_TOKENS,
        length_function=lambda text: len(encoding.encode(text)),
    )
    embeddings = OpenAIEmbeddings(
        model=MODEL,
        api_key="sk-sandbox",
        base_url=urls["openai"] + "/v1",
        check_embedding_ctx_length=False,  # tiktoken cannot fetch its files here
        max_retries=5,
    )
    store = PineconeVectorStore(
        index=Pinecone(api_key="pcsk-sandbox").Index(host=urls["pinecone"]),
        embedding=embeddings,
    )
    records = SQLRecordManager("pinecone/bench", db_url=f"sqlite:///{args.work}/records.sqlite")
    records.create_schema()
    encoding.encode("load the tokenizer")
    baseline = peak_rss_mb()  # imports, clients, tokenizer: before any document

    def run(files) -> dict:
        started, cpu = time.monotonic(), time.process_time()
        result = index(
            chunks(splitter, files),
            records,
            store,
            cleanup="incremental",
            source_id_key="doc_id",
        )
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        return {
            "chunks_seen": sum(result[k] for k in ("num_added", "num_updated", "num_skipped")),
            "chunks_embedded": result["num_added"] + result["num_updated"],
            "upserted": result["num_added"] + result["num_updated"],
            "chunks_deleted": result["num_deleted"],
            "seconds": round(seconds, 2),
            "cpu_s": round(cpu, 2),
            "rss_mb": peak_rss_mb(),
        }

    out = {"first": run(paths)}
    out["first"]["rss_baseline_mb"] = baseline
    out["first"]["server"] = server_stats(urls)
    out["rerun"] = run(paths)
    out["edit"] = run([edits])
    # The ideal for LangChain's own ids (a hash of content and metadata): chunks of the new
    # versions it did not hold, chunks of the old versions they no longer produce.
    edited = {d.metadata["doc_id"] for d in documents([edits])}
    before = {key(c) for c in chunks(splitter, paths) if c.metadata["doc_id"] in edited}
    after = {key(c) for c in chunks(splitter, [edits])}
    out["edit"]["ideal_embedded"] = len(after - before)
    out["edit"]["ideal_deleted"] = len(before - after)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
