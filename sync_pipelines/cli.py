"""`sync-pipelines`: the demo, the sandbox, and search over the index from a shell."""

from __future__ import annotations

import argparse
import sys


def _query(args: argparse.Namespace) -> int:
    from sync_pipelines.definitions import embedder_resource, vector_store_resource
    from sync_pipelines.index.search import search

    store_resource = vector_store_resource()
    matches = search(
        args.text,
        embedder_resource().build(),
        store_resource.build(),
        top_k=args.top_k,
        source=args.source,
        as_user=args.as_user,
    )
    if not matches:
        print("no results")
        return 0
    for rank, match in enumerate(matches, 1):
        meta = match.metadata
        snippet = " ".join(str(meta.get("text", "")).split())[:160]
        print(f"{rank}. [{match.score:.3f}] {meta.get('title', '')}  {meta.get('url', '')}")
        print(f"   {snippet}")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from sync_pipelines.definitions import SOURCE_NAMES
    from sync_pipelines.metrics import metrics_table

    assets = [args.source] if args.source else [*SOURCE_NAMES, "vector_index"]
    frame = metrics_table(DagsterInstance.get(), assets, last=args.last)
    print(frame.to_string(index=False) if not frame.empty else "no runs recorded yet")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sync_pipelines.demo import run_demo

    return run_demo(messages=args.messages, days=args.days, seed=args.seed)


def _sandbox(argv: list[str]) -> int:
    from sync_pipelines.sandbox.__main__ import main as sandbox_main

    return sandbox_main(argv) or 0


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
    query.add_argument("--top-k", type=int, default=5)
    query.add_argument("--source", help="only this source (e.g. slack)")
    query.add_argument(
        "--as", dest="as_user", metavar="EMAIL", help="search as this user (default: public only)"
    )
    query.set_defaults(func=_query)

    metrics = sub.add_parser(
        "metrics", help="figures of the last runs per source, from run storage ($DAGSTER_HOME)"
    )
    metrics.add_argument("--last", type=int, default=10, help="runs per asset")
    metrics.add_argument("--source", help="one asset (e.g. slack, vector_index)")
    metrics.set_defaults(func=_metrics)

    demo = sub.add_parser("demo", help="sandbox -> Slack -> vector index, then a sample search")
    demo.add_argument("--messages", type=int, default=3000)
    demo.add_argument("--days", type=int, default=5)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=_demo)

    sub.add_parser("sandbox", help="serve the API emulators (see --help after 'sandbox')")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
