"""Benchmark: per-source throughput against its emulator with the vendor's rate limit enforced.

For each source the emulator answers 429 past the documented rate on every route, and the
client runs with its production pacing. The ceiling is the steady-state records/s that rate
allows given the calls the sync needs per record at the page size used (listing pages plus
per-record reads such as Notion's block children): ceiling = rate × records / calls. The
printed ratio is achieved records/s ÷ ceiling (1.0 = the whole request budget used); runs
are sized to make far more calls than the client's initial burst, which would flatter it.

    .venv/bin/python bench/source_throughput.py [--only notion] [--scale 0.5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from dagster import instance_for_test, materialize
from sync_pipelines_sandbox import Company, Knobs, Sandbox
from sync_pipelines_sandbox.contract import SourceContract, discover

from sync_pipelines import clock
from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines.sources.registry import names
from sync_pipelines.warehouse.destination import WarehouseResource


def production_resources(contract: SourceContract, sandbox: Sandbox, work: Path) -> dict:
    """The contract's resources, the source's own at its production pacing (the resource's
    defaults) and the bench's page size; a CRM source also gets a warehouse (DuckDB under
    `work`) whose page size is the bench's (a connection's own page_size option still wins)."""
    resources = dict(contract.resources(sandbox))
    tested = resources[contract.name]
    resources[contract.name] = type(tested)(
        base_url=tested.base_url, page_size=contract.bench_size[2]
    )
    if "warehouse" in contract.asset.required_resource_keys:
        resources.setdefault(
            "warehouse",
            WarehouseResource(data_dir=str(work / "warehouse"), page_size=contract.bench_size[2]),
        )
    return resources


def records_of(meta) -> int:
    """What the run synced: rows loaded for a CRM source (its searchable documents are a part
    of them), documents for the others."""
    if "run_records" in meta:
        return int(meta["run_records"].value)
    return int(meta["run_documents_written"].value)


def loading_of(meta) -> str:
    """A CRM run's time in dlt and how much of it came after the last page was read (what
    loading while reading did not hide)."""
    if "run_load_seconds" not in meta:
        return ""
    return (
        f"  dlt {meta['run_load_seconds'].value:.1f} s in {meta['run_loads'].value} loads, "
        f"{meta['run_load_seconds_after_reading'].value:.1f} s after the last page"
    )


def enforce_limits(contract: SourceContract, knobs: Knobs) -> None:
    rates = contract.rate_budgets
    knobs.rate_limits = {r: int(rate * 60) for r, rate in rates.items() if r != "*"}
    if "*" in rates:
        knobs.default_rate_limit = int(rates["*"] * 60)


def ideal_seconds(contract: SourceContract, knobs: Knobs) -> float:
    """Least time the served calls need at the documented rates (budgets run in parallel)."""
    rates = contract.rate_budgets
    spent: dict[str, int] = {}
    for route, count in knobs.calls.items():
        budget = route if route in rates else "*"
        spent[budget] = spent.get(budget, 0) + count - knobs.count_429[route]
    return max(count / rates[budget] for budget, count in spent.items())


def run_source(contract: SourceContract, company: Company, days: int, work: Path) -> str:
    with Sandbox(company=company) as sandbox, instance_for_test() as instance:
        os.environ["BENCH_SECRET"] = contract.good_secret
        os.environ.update(contract.extra_env)
        registry = work / f"{contract.name}.yaml"
        registry.write_text(
            "connections:\n" + contract.registry_entry(sandbox, "acme", "BENCH_SECRET")
        )
        instance.add_dynamic_partitions(connections_partitions_name(contract.name), ["acme"])
        resources = {
            "connections": ConnectionRegistry(path=str(registry)),
            "documents": DocumentStore(root=str(work / "documents")),
            **production_resources(contract, sandbox, work),
        }
        today = clock.today()
        first = today - timedelta(days=days - 1)
        enforce_limits(contract, sandbox.knobs)
        started = time.monotonic()
        result = materialize(
            [contract.asset],
            instance=instance,
            resources=resources,
            tags={
                "dagster/asset_partition_range_start": f"acme|{first}",
                "dagster/asset_partition_range_end": f"acme|{today}",
            },
        )
        elapsed = time.monotonic() - started
        meta = result.asset_materializations_for_node(contract.name)[-1].metadata
        records = records_of(meta)
        knobs = sandbox.knobs
        rejected = sum(knobs.count_429.values())
        served = sum(knobs.calls.values()) - rejected
        ceiling = records / ideal_seconds(contract, knobs)
        achieved = records / elapsed
        return (
            f"{contract.name:10s} {records:6d} records {served:5d} calls "
            f"(page size {contract.bench_size[2]}) "
            f"({served / max(records, 1):.2f}/record) {elapsed:7.1f} s "
            f"{achieved:8.2f} rec/s  ceiling {ceiling:8.2f} rec/s  ratio {achieved / ceiling:.2f}"
            f"  429s seen {rejected}{loading_of(meta)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one source")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every company size")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    contracts = {c.name: c for c in discover()}
    for name in names():
        contract = contracts.get(name)
        if contract is None:
            print(
                f"{name:10s} skipped: no contract in sandbox/sync_pipelines_sandbox/<source>/contract.py ",
                flush=True,
            )
        elif args.only in (None, name):
            messages, days, _ = contract.bench_size
            company = Company.generate(seed=7, messages=int(messages * args.scale), days=7)
            print(run_source(contract, company, days, work), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
