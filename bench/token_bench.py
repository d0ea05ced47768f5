"""Benchmark: exact cl100k tokens offline (bpe-openai) against tiktoken and the byte bound.

Builds tiktoken's own cl100k_base offline (a cache laid out from the rank file bpe-openai ships,
which tiktoken checks against the SHA-256 it hard-codes), then on a synthetic company's chat
threads (the sandbox `Company`, one document per thread titled with its channel) prints:

- load time of each counter (CPU, in a fresh process), and tokens/s of `count` over all threads;
- exactness: threads whose bpe-openai count differs from tiktoken's (should be 0);
- chunking with the defaults (256 tokens, 32 overlap) per counter, and with the old offline
  setting (400 UTF-8 bytes, 40 overlap): chunks, embedded tokens (true cl100k) and docs/s;
- what the title line costs: the share of embedded tokens that goes away without titles.

    .venv/bin/python bench/token_bench.py --messages 20000
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import importlib.resources
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tiktoken
import tiktoken_ext.openai_public
from sync_pipelines_sandbox import Company

from sync_pipelines.documents import Document
from sync_pipelines.index.chunking import TextSplitter, chunk_document
from sync_pipelines.index.tokens import TokenCounter, token_counter


def tiktoken_offline(encoding: str = "cl100k_base") -> tiktoken.Encoding:
    """tiktoken's encoding from bpe-openai's rank file, verified by tiktoken's own hash."""
    data = gzip.decompress(
        importlib.resources.files("bpe_openai.data")
        .joinpath(f"{encoding}.tiktoken.gz")
        .read_bytes()
    )
    consts = tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[encoding].__code__.co_consts
    (url,) = [c for c in consts if isinstance(c, str) and "://" in c]
    cache = Path(tempfile.mkdtemp(prefix="tiktoken-cache-"))
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        return tiktoken.get_encoding(encoding)
    finally:
        if previous is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR")
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous


LOAD_IN_A_FRESH_PROCESS = """
import sys, time
sys.path.insert(0, {bench!r})
from token_bench import tiktoken_offline
from sync_pipelines.index.tokens import token_counter
started = time.process_time()
{load}
print(time.process_time() - started)
"""


def fresh_load_seconds(load: str) -> float:
    """CPU seconds of `load` in a new interpreter: what a code-location process pays once."""
    code = LOAD_IN_A_FRESH_PROCESS.format(bench=str(Path(__file__).parent), load=load)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def thread_documents(messages: int, seed: int) -> list[Document]:
    company = Company.generate(seed=seed, messages=messages, days=14)
    docs = []
    for channel in company.chat_channels():
        for parent in company.channel_messages(channel.id):
            replies = company.thread_replies(channel.id, parent.ts)
            text = "\n".join(m.text for m in [parent, *replies])
            docs.append(
                Document(
                    doc_id=Document.make_id("slack", "bench", f"{channel.id}-{parent.ts}"),
                    source="slack",
                    connection="bench",
                    title=f"#{channel.name}",
                    text=text,
                    url=None,
                    author=parent.user,
                    created_at=None,
                    updated_at=None,
                    timestamp_epoch=float(parent.ts),
                    access=("all",),
                )
            )
    return docs


def timed(function):
    """The value and the CPU seconds it took (steadier than wall time on a shared machine)."""
    started = time.process_time()
    value = function()
    return value, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    docs, seconds = timed(lambda: thread_documents(args.messages, args.seed))
    texts = [d.text for d in docs]
    print(f"{len(docs)} thread documents from {args.messages} messages ({seconds:.1f} s)")

    reference = tiktoken_offline()
    bpe = token_counter("cl100k_base", "bpe-openai")
    counters = {
        "tiktoken (offline ranks)": (TokenCounter(reference), "tiktoken_offline()"),
        "bpe-openai": (bpe, "token_counter('cl100k_base', 'bpe-openai').count('x')"),
        "utf8-bytes": (TokenCounter(), "token_counter(mode='bytes')"),
    }
    exact = TokenCounter(reference)
    true_tokens = sum(exact.count(t) for t in texts)
    print(f"{true_tokens:,} cl100k tokens, {sum(len(t) for t in texts):,} characters\n")

    print(f"{'counter':26} {'load cpu s':>7} {'tok/cpu s':>13} {'counted':>11} {'differ':>7}")
    for name, (counter, loader) in counters.items():
        load = fresh_load_seconds(loader)
        counts, seconds = timed(lambda c=counter: [c.count(t) for t in texts])
        differ = sum(a != exact.count(t) for a, t in zip(counts, texts, strict=True))
        print(f"{name:26} {load:7.2f} {true_tokens / seconds:13,.0f} {sum(counts):11,} {differ:7}")

    print(f"\n{'chunking':34} {'chunks':>7} {'embedded tok':>13} {'docs/cpu s':>8} {'title %':>8}")
    untitled = [dataclasses.replace(d, title=None) for d in docs]
    settings = [
        ("256/32 bpe-openai (default)", TextSplitter(256, 32, bpe)),
        ("256/32 tiktoken", TextSplitter(256, 32, exact)),
        ("400/40 utf8-bytes (old offline)", TextSplitter(400, 40, TokenCounter())),
    ]
    for name, splitter in settings:
        chunks, seconds = timed(
            lambda s=splitter: [c for d in docs for c in chunk_document(d, s, "bench")]
        )
        embedded = sum(exact.count(c.text) for c in chunks)
        bare = sum(
            exact.count(c.text) for d in untitled for c in chunk_document(d, splitter, "bench")
        )
        print(
            f"{name:34} {len(chunks):7,} {embedded:13,} {len(docs) / seconds:8,.0f} "
            f"{100 * (embedded - bare) / embedded:7.1f}%"
        )


if __name__ == "__main__":
    main()
