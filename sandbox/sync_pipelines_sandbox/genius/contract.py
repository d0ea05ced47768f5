"""Genius's place in the source contract: a SQL source behind the MySQL proxy.

The contract's HTTP words map onto the proxy (proxy.py): list_route is the table whose
listing spans pages (appointments: the most rows), "429" is MariaDB error 1040 (waited out
with backoff: no Retry-After exists in MySQL, the first wait is 1 s), "500"/"503" reset the
connection, "400" is error 1064. The connection names the database by its `url` option (the
registry's base_url must be http(s)) and its password by the `password` credential.
"""

from datetime import UTC, datetime, time, timedelta

from sync_pipelines import clock
from sync_pipelines.sources.genius.client import QUERIES_PER_S, GeniusResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.genius.data import KIND_OF, Rows, expected_doc_ids
from sync_pipelines_sandbox.genius.db import SANDBOX_GENIUS_PASSWORD

PAGE_SIZE = 20


def expected_ids(company, start, end):
    return expected_doc_ids(CrmWorld.of(company), "acme", start.timestamp(), end.timestamp())


def registry_entry(sandbox, conn_id, env):
    return (
        f"  - id: {conn_id}\n    source: genius\n"
        f"    credentials: {{password: {env}}}\n"
        f"    options: {{url: '{sandbox.urls['genius']}', page_size: {PAGE_SIZE}}}\n"
    )


def expected_rows(company, start, end):
    """The ids each table holds after a sync of [start, end): the rows updated then (deleted
    ones included, flagged), and every payment (a full refresh reads the whole table)."""
    world = CrmWorld.of(company)
    rows = {
        table: {(r.i + 1,) for r in world.updated_between(kind, start.timestamp(), end.timestamp())}
        for table, kind in KIND_OF.items()
    }
    rows["payments"] = {(p["id"],) for p in Rows(world).all("payments")}
    return rows


def _past(sandbox, table: str):
    """The rows of `table` updated on a past day of `data_days` (not today), oldest first."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), UTC)
    start = (midnight + timedelta(days=first)).timestamp()
    world = CrmWorld.of(sandbox.company)
    found = [r for r in world.updated_between(KIND_OF[table], start, midnight.timestamp())]
    found = [r for r in found if not r.archived]
    if not found:
        raise LookupError(f"no {table} row on a past day of the contract's data")
    return found


def delete_record(sandbox) -> str:
    """Soft-deletes (is_deleted = 1) the newest note of a past day of `data_days`, as the
    application does; answers its doc_id."""
    note = _past(sandbox, "notes")[-1]
    sandbox.genius.delete("notes", note.i)
    return f"genius:acme:notes/{note.i + 1}"


def edit_record(sandbox):
    """A user rewrites a note's body (its updated_at becomes now)."""
    note = _past(sandbox, "notes")[0]
    sandbox.genius.edit("notes", note.i, body=note.fields["body"] + " Follow-up booked.")
    return "notes", (note.i + 1,)


def delete_crm_record(sandbox):
    """The application cancels an appointment: deleted_at (and updated_at) become now."""
    records = _past(sandbox, "appointments")
    appointment = records[len(records) // 2]
    sandbox.genius.delete("appointments", appointment.i)
    return "appointments", (appointment.i + 1,)


CONTRACT = SourceContract(
    name="genius",
    asset=source_asset("genius"),
    resources=lambda sandbox: {"genius": GeniusResource(rate_per_s=0, timeout_s=5, max_attempts=4)},
    registry_entry=registry_entry,
    good_secret=SANDBOX_GENIUS_PASSWORD,
    list_route="appointments",
    expected_ids=expected_ids,
    # Genius documents no rate: our own budget on its live database, on every table's queries.
    rate_budgets={"*": QUERIES_PER_S},
    bench_size=(40000, 7, PAGE_SIZE),
    delete_record=delete_record,
    deletion_seen_by="sync",  # the row's updated_at moves to now: a re-run of today sees it
    expected_rows=expected_rows,
    edit_record=edit_record,
    delete_crm_record=delete_crm_record,
)
