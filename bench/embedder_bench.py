"""Benchmark: the local embedders, WordLlama (semantic) against hashing (lexical).

Prints the first load of WordLlama in this process (import + model from the installed wheel),
then texts/s and tokens/s embedding `--texts` short chat messages of a synthetic company (the
sandbox `Company`), in requests of `--batch` texts as the updater sends them, for:
WordLlamaEmbedder (windowed pooling), wordllama's own `embed` (pads each batch of 64 to its
longest text) and HashingEmbedder. Last, a paraphrase probe: where each embedder ranks "the
billing migration moves subscriptions to the new payment provider" among chat messages for
the query "payment system cutover for recurring plans" (1 = first).

    .venv/bin/python bench/embedder_bench.py --texts 10000
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from sync_pipelines_sandbox import Company

from sync_pipelines.index.embedders import HashingEmbedder
from sync_pipelines.index.wordllama import WordLlamaEmbedder

QUERY = "payment system cutover for recurring plans"
ANSWER = "the billing migration moves subscriptions to the new payment provider"


def chat_messages(count: int, seed: int) -> list[str]:
    company = Company.generate(seed=seed, messages=count, days=14)
    texts = [
        m.text
        for channel in company.chat_channels()
        for parent in company.channel_messages(channel.id)
        for m in [parent, *company.thread_replies(channel.id, parent.ts)]
        if m.text.strip()
    ]
    random.Random(seed).shuffle(texts)
    return texts[:count]


def throughput(embed, texts: list[str], batch: int) -> tuple[float, float]:
    """Wall and CPU seconds (CPU time of all this process's threads: steadier on a busy box)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), batch):
        embed(texts[start : start + batch])
    return time.perf_counter() - wall, time.process_time() - cpu


def rank_of_answer(embedder, distractors: list[str]) -> int:
    vectors = embedder.embed([QUERY, ANSWER, *distractors])
    scores = vectors[1:] @ vectors[0]
    return int((scores > scores[0]).sum()) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000, help="texts per embed call")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    started, cpu = time.perf_counter(), time.process_time()
    wordllama = WordLlamaEmbedder()
    load, load_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    WordLlamaEmbedder()
    again = time.perf_counter() - started
    print(
        f"WordLlama first load {load:.2f} s wall, {load_cpu:.2f} s CPU (import + model); "
        f"next embedder {again * 1e3:.1f} ms"
    )

    texts = chat_messages(args.texts, args.seed)
    chars = sum(map(len, texts))
    print(f"{len(texts)} chat messages, {chars / len(texts):.0f} characters on average\n")

    import wordllama as package

    own = package.WordLlama.load(cache_dir=Path(package.__file__).parent, disable_download=True)
    hashing = HashingEmbedder()
    runs = {
        "WordLlamaEmbedder (256-d)": (wordllama, wordllama.embed),
        "wordllama own embed (256-d)": (None, lambda batch: own.embed(batch, norm=True)),
        "HashingEmbedder (384-d)": (hashing, hashing.embed),
    }
    print(f"{'embedder':30} {'wall s':>7} {'cpu s':>7} {'texts/cpu s':>12} {'tokens/cpu s':>13}")
    for name, (embedder, embed) in runs.items():
        embed(texts[:100])  # warm caches
        tokens_before = embedder.stats.tokens if embedder else 0
        wall, cpu = throughput(embed, texts, args.batch)
        tokens = (embedder.stats.tokens - tokens_before) if embedder else 0
        tokens_s = f"{tokens / cpu:13,.0f}" if tokens else f"{'-':>13}"
        print(f"{name:30} {wall:7.2f} {cpu:7.2f} {len(texts) / cpu:12,.0f} {tokens_s}")

    same = np.abs(wordllama.embed(texts[:500]) - own.embed(texts[:500], norm=True)).max()
    print(f"\nlargest difference from wordllama's own vectors: {same:.1e}")
    distractors = texts[:1000]
    print(f"paraphrase probe, rank of the answer among {len(distractors) + 1} messages:")
    for name, embedder in (("wordllama", wordllama), ("hashing", hashing)):
        print(f"  {name:10} {rank_of_answer(embedder, distractors)}")


if __name__ == "__main__":
    main()
