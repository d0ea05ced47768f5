"""`python -m sync_pipelines_sandbox`: serve every emulator on fixed ports until Ctrl-C.

Prints the URLs and the `export` lines a client (or `sync-pipelines`) needs. `main(argv)` is
the same entry point for the project CLI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import threading
from collections.abc import Sequence
from contextlib import ExitStack

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.fault_proxy import FaultPlan, FaultProxies
from sync_pipelines_sandbox.knobs import FAULT_KINDS, Knobs
from sync_pipelines_sandbox.server import Sandbox, emulators, fixed_ports


def _rate_limit(text: str) -> tuple[str, int]:
    route, sep, limit = text.partition("=")
    if not sep or not route or not limit.isdigit():
        raise argparse.ArgumentTypeError(f"expected ROUTE=REQUESTS_PER_MINUTE, got {text!r}")
    return route, int(limit)


def _fault_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kinds {sorted(unknown)}; use {FAULT_KINDS}"
        )
    return kinds


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate between 0 and 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sync_pipelines_sandbox", description=__doc__.split("\n")[0]
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--messages", type=int, default=2000, help="chat messages, replies included")
    p.add_argument("--days", type=int, default=14, help="days of history ending on --anchor")
    p.add_argument(
        "--anchor",
        type=dt.date.fromisoformat,
        default=None,
        help="last day of history, YYYY-MM-DD (default: today, UTC)",
    )
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument(
        "--rate-limit",
        type=_rate_limit,
        action="append",
        default=[],
        metavar="ROUTE=N",
        help="max requests per minute for a route, e.g. conversations.history=50 (repeatable)",
    )
    p.add_argument("--fault-rate", type=float, default=0.0, help="probability of a random fault")
    p.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        default=FAULT_KINDS,
        help=f"comma-separated subset of {','.join(FAULT_KINDS)}",
    )
    p.add_argument("--timeout-s", type=float, default=30.0, help="stall of a 'timeout' fault")
    p.add_argument(
        "--faults",
        type=_probability,
        default=0.0,
        metavar="RATE",
        help="serve every emulator through a fault-injecting proxy failing RATE of requests "
        "(5xx, 429, malformed, reset, hang, write landed then 502, delivered twice)",
    )
    p.add_argument("--fault-seed", type=int, default=0, metavar="N", help="seed of --faults")
    ports = ", ".join(f"{e.name} +{e.port_offset}" for e in emulators())
    p.add_argument("--port-base", type=int, default=8700, help=f"each emulator's port: {ports}")
    p.add_argument("--pinecone-dimension", type=int, default=384)
    return p


def main(argv: Sequence[str] | None = None, stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C (or until `stop` is set, for callers that run it in a thread)."""
    args = parser().parse_args(argv)
    company = Company.generate(
        seed=args.seed, messages=args.messages, days=args.days, anchor=args.anchor
    )
    knobs = Knobs(
        latency_ms=args.latency_ms,
        rate_limits=dict(args.rate_limit),
        fault_rate=args.fault_rate,
        fault_kinds=args.fault_kinds,
        timeout_s=args.timeout_s,
        seed=args.seed,
    )
    sandbox = Sandbox(company, knobs, fixed_ports(args.port_base), args.pinecone_dimension)
    with sandbox, ExitStack() as stack:
        urls, env = sandbox.urls, sandbox.env()
        if args.faults > 0:
            proxies = stack.enter_context(
                FaultProxies.for_sandbox(sandbox, FaultPlan(rate=args.faults), args.fault_seed)
            )
            stack.callback(lambda: print(f"Faults fired: {dict(proxies.fired)}"))
            urls, env = proxies.urls, proxies.sandbox_env(sandbox)
            print(f"Fault proxy: {args.faults:.0%} of requests (seed {args.fault_seed})")
        print(
            f"Sandbox company: {len(company.people)} people, {args.messages} chat messages over "
            f"{args.days} days ending {company.anchor} (seed {args.seed})"
        )
        for name, url in urls.items():
            print(f"  {name:<10} {url}")
        print()
        for var, value in env.items():
            print(f"export {var}={value}")
        print("\nServing; Ctrl-C to stop.", flush=True)
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
