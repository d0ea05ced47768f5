"""The contract every source passes against its emulator (see test_source_contract.py).

Each declared source has an entry: `sync_pipelines_sandbox/<source>/contract.py` defining
`CONTRACT = SourceContract(...)`, beside the source's emulator. The contract test runs for every
source the registry declares, so a source gets the checks with no list to edit, and a source
without an entry fails it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from dagster import AssetsDefinition, ConfigurableResource

from sync_pipelines.sources import registry
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.server import Sandbox


@dataclass(frozen=True)
class SourceContract:
    """How the contract test drives one source.

    name: the source (and asset) name, e.g. "acme".
    asset: the source's partitioned asset.
    resources: (sandbox) -> {resource key: resource} the asset needs beyond connections and
        documents, configured for the sandbox with no client-side pacing.
    registry_entry: (sandbox, connection_id, secret_env) -> one YAML list item (text, starting
        with "  - id: ...") of connections.yaml whose main secret is read from `secret_env`.
    good_secret: the value of that secret the emulator accepts.
    list_route: the knob route of the paginated listing call (faults are injected there and
        its call count proves paging).
    expected_ids: (company, start, end) -> every doc_id a full sync of [start, end) yields.
    extra_env: other environment variables the registry entry names (e.g. an account email).
    data_days: (first, last) day offsets from today that hold data, for the range run.
    rate_budgets: knob route (or "*" = every other route) -> the vendor's documented
        requests/s on it, which bench/source_throughput.py enforces in the emulator.
    bench_size: (company size in chat messages, days synced in one range run, page size)
        of the throughput bench: many more calls than the client's initial burst, within a
        few minutes at the vendor's rate (a smaller page size makes more calls).
    delete_record: (sandbox) -> doc_id: deletes (or trashes) in the emulator one record that
        a sync of `data_days` yields, as the vendor's own UI would, and answers its doc_id.
    deletion_seen_by: "sync" when a re-run of the record's day shows the deletion (a
        signal or the day's complete listing), "reconcile" when only the source's
        reconciliation does.
    reconcile_route: the knob route of the reconciliation's listing call (faults are
        injected there to show a failed listing deletes nothing); None without one.
    not_ready: (sandbox) -> (doc_id, make_ready): makes one record of a past day of
        `data_days` not ready yet at the vendor (a transcript still processing), as the
        vendor serves it, and answers its doc_id and a function that finishes it; None for
        sources whose records are always complete.

    CRM sources (group "crm", loaded into warehouse tables; test_crm_contract.py) also say:
    expected_rows: (company, start, end) -> {table: the primary keys (tuples of the record's
        own key values, without the connection) a sync of [start, end) loads into it}, for
        every table the checks compare; archived records included (their rows carry
        `_deleted_at`).
    edit_record: (sandbox) -> (table, key): edits one record of `data_days` in the emulator,
        as a user would (its updated time becomes now, today), and answers where its row is.
    delete_crm_record: (sandbox) -> (table, key): archives (deletes) one record of
        `data_days` in the emulator, as the vendor's UI would, and answers where its row is.
        A table whose record feeds a document must tombstone it.
    """

    name: str
    asset: AssetsDefinition
    resources: Callable[[Sandbox], dict[str, ConfigurableResource]]
    registry_entry: Callable[[Sandbox, str, str], str]
    good_secret: str
    list_route: str
    expected_ids: Callable[[Company, datetime, datetime], set[str]]
    extra_env: dict[str, str] = field(default_factory=dict)
    data_days: tuple[int, int] = (-3, 0)
    rate_budgets: dict[str, float] = field(default_factory=dict)
    bench_size: tuple[int, int, int] = (3000, 2, 100)
    delete_record: Callable[[Sandbox], str] | None = None
    deletion_seen_by: str = "reconcile"
    reconcile_route: str | None = None
    not_ready: Callable[[Sandbox], tuple[str, Callable[[], None]]] | None = None
    # CRM sources (see above)
    expected_rows: Callable[[Company, datetime, datetime], dict[str, set[tuple]]] | None = None
    edit_record: Callable[[Sandbox], tuple[str, tuple]] | None = None
    delete_crm_record: Callable[[Sandbox], tuple[str, tuple]] | None = None


class MissingContract(LookupError):
    """A declared source has no contract entry beside its emulator."""


def contract_for(source: str) -> SourceContract:
    """The contract entry of a declared source; MissingContract naming the file to add."""
    module_name = f"sync_pipelines_sandbox.{source}.contract"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in {module_name, f"sync_pipelines_sandbox.{source}"}:
            raise
        module = None
    contract = getattr(module, "CONTRACT", None)
    if not isinstance(contract, SourceContract) or contract.name != source:
        raise MissingContract(
            f"source {source!r} has no contract entry: add "
            f"sandbox/sync_pipelines_sandbox/{source}/contract.py defining "
            f"CONTRACT = SourceContract(name={source!r}, ...) (docs/adding-a-source.md)"
        )
    return contract


def discover() -> list[SourceContract]:
    """The contract of every declared source (MissingContract if one has none)."""
    return [contract_for(name) for name in registry.names()]
