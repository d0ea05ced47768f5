"""Benchmark: a sandbox company's Slack through the `slack` asset and `vector_index`.

Prints messages/s, API calls made vs the minimum the page sizes allow, seconds and peak RSS,
for a first sync and for an unchanged re-run (which must embed nothing). Runs real Dagster
materializations against the Slack emulator with per-request latency, on a throwaway
DAGSTER_HOME, the hashing embedder and the embedded LanceDB store.

    .venv/bin/python bench/slack_index_bench.py --messages 50000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import math
import os
import re
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from dagster import DagsterInstance, materialize

from sync_pipelines import clock
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines.sources.base import MAX_DAYS_PER_RUN
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines_sandbox import Company, Knobs, Sandbox
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN

MENTION = re.compile(r"<@([UW][A-Z0-9]+)")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minimum_calls(company: Company, page_size: int, ranges, joins: bool) -> int:
    """The fewest calls any client could make for these runs with these page sizes.

    Per run: auth.test, one conversations.list page (≤1000 channels), the history pages of
    each channel, the member pages of each private channel, one replies page per 1000
    messages of each thread, users.info once per distinct author or mentioned user (cached per run); plus
    one conversations.join per public channel the bot is not in yet.
    """
    readable = [
        c for c in company.chat_channels() if not c.is_archived and company.bot_can_read(c)
    ]
    calls = sum(1 for c in readable if joins and company.bot.user_id not in c.members)
    for lo, hi in ranges:
        start, end = lo.timestamp(), (hi + timedelta(days=1)).timestamp()
        calls += 2
        users = set()
        for channel in readable:
            if channel.is_private:
                calls += math.ceil(len(channel.members) / 1000)
                users.update(channel.members)
            in_window = [
                m for m in company.channel_messages(channel.id) if start <= float(m.ts) < end
            ]
            calls += max(1, math.ceil(len(in_window) / page_size))
            for msg in in_window:
                replies = company.thread_replies(channel.id, msg.ts)
                if replies:
                    calls += math.ceil((len(replies) + 1) / 1000)
                for m in [msg, *replies]:
                    users.update([m.user] if m.user else [])
                    users.update(MENTION.findall(m.text or ""))
        calls += len(users)
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--page-size", type=int, default=999)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="slack-bench-"))
    os.environ["DAGSTER_HOME"] = str(work / "home")
    (work / "home").mkdir()
    (work / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["BENCH_SLACK_TOKEN"] = SANDBOX_SLACK_TOKEN

    started = time.monotonic()
    company = Company.generate(seed=7, messages=args.messages, days=args.days)
    print(f"company: {args.messages} messages over {args.days} days generated in "
          f"{time.monotonic() - started:.1f} s")
    from sync_pipelines.definitions import slack_asset, vector_index

    with Sandbox(company=company, knobs=Knobs(latency_ms=args.latency_ms)) as sandbox:
        registry = work / "connections.yaml"
        registry.write_text(
            "connections:\n  - id: bench\n    source: slack\n"
            f"    base_url: {sandbox.urls['slack']}\n"
            "    credentials: {token: BENCH_SLACK_TOKEN}\n"
        )
        resources = {
            "connections": ConnectionRegistry(path=str(registry)),
            "documents": DocumentStore(root=str(work / "documents")),
            "slack": SlackResource(
                base_url=sandbox.urls["slack"],
                tier_limits_per_minute={},
                page_size=args.page_size,
                max_workers=args.workers,
            ),
            "embedder": EmbedderResource(kind="hashing"),
            "vector_store": VectorStoreResource(
                kind="lance",
                lance_path=str(work / "vectors"),
                ledger_url=f"sqlite:///{work / 'ledger.sqlite'}",
            ),
        }
        instance = DagsterInstance.get()
        instance.add_dynamic_partitions(connections_partitions_name("slack"), ["bench"])
        today = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        first = today - timedelta(days=args.days - 1)
        ranges = []
        day = first
        while day <= today:
            last = min(today, day + timedelta(days=MAX_DAYS_PER_RUN - 1))
            ranges.append((day, last))
            day = last + timedelta(days=1)

        def sync_all() -> tuple[int, float]:
            started = time.monotonic()
            docs = 0
            for lo, hi in ranges:
                result = materialize(
                    [slack_asset],
                    instance=instance,
                    resources=resources,
                    tags={
                        "dagster/asset_partition_range_start": f"bench|{lo:%Y-%m-%d}",
                        "dagster/asset_partition_range_end": f"bench|{hi:%Y-%m-%d}",
                    },
                )
                meta = result.asset_materializations_for_node("slack")[-1].metadata
                docs += meta["run_documents_written"].value
            return docs, time.monotonic() - started

        def index() -> tuple[dict, float]:
            started = time.monotonic()
            result = materialize(
                [vector_index, slack_asset.to_source_asset()],
                selection=[vector_index],
                instance=instance,
                resources=resources,
            )
            meta = result.asset_materializations_for_node("vector_index")[-1].metadata
            return {k: v.value for k, v in meta.items()}, time.monotonic() - started

        for label in ("first sync", "unchanged re-run"):
            minimum = minimum_calls(company, args.page_size, ranges, joins=label == "first sync")
            sandbox.knobs.reset()
            docs, sync_s = sync_all()
            calls = sum(sandbox.knobs.calls.values())
            meta, index_s = index()
            print(f"\n== {label} ({len(ranges)} slack runs, latency {args.latency_ms} ms/request)")
            print(f"slack: {docs} messages in {sync_s:.1f} s = {docs / sync_s:.0f} messages/s")
            print(f"slack API calls: {calls} made vs {minimum} minimum for page size "
                  f"{args.page_size} ({calls / minimum:.2f}x)")
            print(f"vector_index: {meta['documents']} documents, {meta['chunks_seen']} chunks, "
                  f"{meta['chunks_embedded']} embedded, {meta['chunks_skipped_unchanged']} "
                  f"unchanged, {meta['upsert_requests']} upsert requests, "
                  f"{meta['vectors_in_store']} vectors in {index_s:.1f} s")
            print(f"end to end: {sync_s + index_s:.1f} s, peak RSS {peak_rss_mb():.0f} MB")
        if meta["chunks_embedded"] != 0:
            print("FAIL: the unchanged re-run embedded chunks", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
