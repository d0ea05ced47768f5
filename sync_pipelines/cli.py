"""`sync-pipelines`: the demo, the sandbox, syncing a connection and searching the index."""

from __future__ import annotations

import argparse
import sys


def _query(args: argparse.Namespace) -> int:
    from sync_pipelines.cli_query import run_query

    return run_query(args.text, args.top_k, args.source, args.as_user, args.json, args.mode)


def _sync(args: argparse.Namespace) -> int:
    from sync_pipelines.cli_sync import run_sync

    return run_sync(args.source, args.connection, args.day, args.start, args.end)


def _top_k(value: str) -> int:
    from sync_pipelines.index.search import MAX_TOP_K, check_top_k

    try:
        return check_top_k(int(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of results from 1 to {MAX_TOP_K}, got {value!r}"
        ) from None


def _reindex(args: argparse.Namespace) -> int:
    from sync_pipelines.cli_reindex import run_reindex

    return run_reindex(args.yes)


def _metrics(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from sync_pipelines.metrics import metrics_table
    from sync_pipelines.sources.registry import names

    assets = [args.source] if args.source else [*names(), "call_insights", "vector_index"]
    frame = metrics_table(DagsterInstance.get(), assets, last=args.last)
    print(frame.to_string(index=False) if not frame.empty else "no runs recorded yet")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sync_pipelines.demo import run_demo

    return run_demo(messages=args.messages, days=args.days, seed=args.seed)


def _sandbox(argv: list[str]) -> int:
    sandbox_main = sandbox_entry("__main__").main

    return sandbox_main(argv) or 0


def sandbox_entry(module: str):
    """A module of the sandbox distribution, which only `make demo`/`make test` install."""
    import importlib

    try:
        return importlib.import_module(f"sync_pipelines_sandbox.{module}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"sync_pipelines_sandbox", "starlette",
                                                     "uvicorn", "graphql", "h11"}:
            raise SystemExit(
                f"the sandbox is not installed ({exc.name} is missing): "
                "run `pip install -e ./sandbox` (make demo does it)"
            ) from None
        raise


def main(argv: list[str] | None = None) -> int:
    import warnings

    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        return _sandbox(argv[1:])
    parser = argparse.ArgumentParser(prog="sync-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    query = sub.add_parser("query", help="search the vector index")
    query.add_argument("text")
    query.add_argument("--top-k", type=_top_k, default=5, help="results, 1 to 1000 (default 5)")
    query.add_argument("--source", help="only this source (its asset name)")
    query.add_argument(
        "--as", dest="as_user", metavar="EMAIL", help="search as this user (default: public only)"
    )
    query.add_argument(
        "--mode",
        choices=("hybrid", "vector", "keyword"),
        default="hybrid",
        help="hybrid: meaning and exact words fused (default; vector-only on Pinecone), "
        "vector: meaning only, keyword: exact words only (BM25, LanceDB)",
    )
    query.add_argument("--json", action="store_true", help="print the hits as a JSON list")
    query.set_defaults(func=_query)

    sync = sub.add_parser(
        "sync",
        help="sync one connection for a day or a range of days now ($DAGSTER_HOME's instance)",
        description="Registers the connection's partition if the connections sensor has not "
        "yet, then materializes the source for the days, at most 11 days per run.",
    )
    sync.add_argument("source", help="the source (its asset name)")
    sync.add_argument("--connection", required=True, help="connection id in the registry")
    sync.add_argument("--day", metavar="YYYY-MM-DD", help="one UTC day")
    sync.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first UTC day")
    sync.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last UTC day (default today)")
    sync.set_defaults(func=_sync)

    reindex = sub.add_parser(
        "reindex",
        help="empty the configured vector store and rebuild it from the document files now",
        description="Deletes the store's vectors, ledger rows and progress, then materializes "
        "vector_index against $DAGSTER_HOME's instance, which embeds every retained document "
        "file again with the configured embedder, printing progress as it goes.",
    )
    reindex.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reindex.set_defaults(func=_reindex)

    metrics = sub.add_parser(
        "metrics", help="figures of the last runs per source, from run storage ($DAGSTER_HOME)"
    )
    metrics.add_argument("--last", type=int, default=10, help="runs per asset")
    metrics.add_argument("--source", help="one asset (a source or vector_index)")
    metrics.set_defaults(func=_metrics)

    demo = sub.add_parser("demo", help="sandbox -> every source -> vector index, then a sample search")
    demo.add_argument("--messages", type=int, default=3000)
    demo.add_argument("--days", type=int, default=5)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=_demo)

    from sync_pipelines.cli_insights import register as register_insights

    register_insights(sub)

    sub.add_parser("sandbox", help="serve the API emulators (see --help after 'sandbox')")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
