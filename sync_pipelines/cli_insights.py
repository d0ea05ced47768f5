"""`sync-pipelines insights`: query the call insights table (what customers ask for, complain
about, compare us with, and who owes what), from the data dir's Parquet file."""

from __future__ import annotations

import argparse
import json

from sync_pipelines.insights.schema import KINDS, SENTIMENT_KIND

SHOWN = ["call_date", "source", "title", "kind", "value", "owner", "sentiment", "quote"]
QUOTE_CHARS = 80


def register(sub) -> None:
    """Add the `insights` command to the CLI's subparsers."""
    parser = sub.add_parser(
        "insights",
        help="query the insights extracted from call transcripts (call_insights)",
        description="Rows of the call_insights table ($SYNC_DATA_DIR/insights), newest call "
        "first; every filter given must hold.",
    )
    parser.add_argument("--feature", help="feature requests or discussions mentioning this")
    parser.add_argument("--competitor", help="competitors whose name contains this")
    parser.add_argument("--kind", choices=[*KINDS, SENTIMENT_KIND], help="one kind of insight")
    parser.add_argument("--text", help="in the value or the evidence quote")
    parser.add_argument("--source", help="only calls of this source")
    parser.add_argument(
        "--since", metavar="30d|12h|2w|YYYY-MM-DD", help="only calls since then (UTC)"
    )
    parser.add_argument("--limit", type=int, default=50, help="rows shown (default 50)")
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    parser.add_argument("--root", help="the insights folder (default: under the data dir)")
    parser.set_defaults(func=run_insights)


def run_insights(args: argparse.Namespace) -> int:
    from sync_pipelines.insights.table import (
        InsightsStore,
        InsightTable,
        Query,
        select,
        since_epoch,
    )

    try:
        since = since_epoch(args.since) if args.since else None
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    table = InsightTable(args.root) if args.root else InsightsStore().table()
    query = Query(
        kind=args.kind,
        feature=args.feature,
        competitor=args.competitor,
        text=args.text,
        source=args.source,
        since_epoch=since,
    )
    found = select(table.read(), query)
    shown = found.head(max(0, args.limit))
    if args.json:
        print(json.dumps(shown.to_dict("records"), ensure_ascii=False, default=str, indent=1))
        return 0
    if shown.empty:
        where = "" if table.path.exists() else f" (no table at {table.path} yet)"
        print(f"no insights match{where}")
        return 0
    view = shown[SHOWN].copy()
    view["call_date"] = view["call_date"].str[:10]
    view["owner"] = view["owner"].fillna("")
    view["quote"] = view["quote"].map(
        lambda q: q if len(q or "") <= QUOTE_CHARS else q[: QUOTE_CHARS - 1] + "…"
    )
    print(view.to_string(index=False))
    more = len(found) - len(shown)
    print(f"{len(found)} row(s)" + (f", {more} not shown (--limit)" if more > 0 else ""))
    return 0
