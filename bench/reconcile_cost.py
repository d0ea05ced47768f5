"""Benchmark: what a 30-day reconciliation costs each source on its emulator.

For every source that declares a reconciliation, the sandbox serves a company with 30 days of
data (2,000 chat messages by default, and what each vendor's emulator derives from it), the
source's `<source>_reconcile` asset lists one connection with the production resource
(page size and pacing: Slack's replies tier, 50 calls/min, sets its time), and the bench
prints the ids listed, the API calls per route (what the vendor's limits count) and the
wall time.

    .venv/bin/python bench/reconcile_cost.py [--only jira] [--messages 2000] [--days 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from dagster import instance_for_test, materialize

from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines.sources import registry
from sync_pipelines_sandbox import Company, Sandbox
from sync_pipelines_sandbox.contract import SourceContract, discover


def production_resources(contract: SourceContract, sandbox: Sandbox) -> dict:
    """The contract's resources, the source's own with its production defaults."""
    resources = dict(contract.resources(sandbox))
    tested = resources[contract.name]
    resources[contract.name] = type(tested)(base_url=tested.base_url)
    return resources


def run_source(contract: SourceContract, company: Company, work: Path) -> str:
    asset = registry.reconcile_asset(contract.name)
    with Sandbox(company=company) as sandbox, instance_for_test() as instance:
        os.environ["BENCH_SECRET"] = contract.good_secret
        os.environ.update(contract.extra_env)
        path = work / f"{contract.name}.yaml"
        path.write_text("connections:\n" + contract.registry_entry(sandbox, "acme", "BENCH_SECRET"))
        instance.add_dynamic_partitions(connections_partitions_name(contract.name), ["acme"])
        resources = {
            "connections": ConnectionRegistry(path=str(path)),
            "documents": DocumentStore(root=str(work / "documents")),
            **production_resources(contract, sandbox),
        }
        started = time.monotonic()
        result = materialize([asset], partition_key="acme", instance=instance, resources=resources)
        elapsed = time.monotonic() - started
        (event,) = result.asset_materializations_for_node(asset.op.name)[-1:]
        meta = {k: v.value for k, v in event.metadata.items()}
        calls = {route: n for route, n in sorted(sandbox.knobs.calls.items()) if n}
        per_route = ", ".join(f"{route} {n}" for route, n in calls.items())
        return (
            f"{contract.name:10s} {meta['range_days']} days: {meta['ids_listed']:6d} ids in "
            f"{meta['listings']:3d} listings, {sum(calls.values()):5d} API calls ({per_route}), "
            f"{elapsed:6.1f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one source")
    parser.add_argument("--messages", type=int, default=2000, help="company size (chat messages)")
    parser.add_argument("--days", type=int, default=30, help="days of data in the company")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="reconcile-"))
    reconciling = registry.reconcile_assets()
    for contract in discover():
        if args.only not in (None, contract.name):
            continue
        if contract.name not in reconciling:
            print(f"{contract.name:10s} no reconciliation: its sync's own signals are all there is")
            continue
        company = Company.generate(seed=7, messages=args.messages, days=args.days)
        print(run_source(contract, company, work), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
