"""HubSpot's warehouse tables: how each object's pages are read for a run's window.

An object's pages: its properties (all, custom included) from the properties API, then the
records modified in [lower, upper) through search (client.py splits windows over 10,000),
grouped into batches of up to 1,000 records whose associations are read with one v4 batch
call per associated object, then the records archived in the window from the list API
(`archived=true`), which become soft deletes and tombstones. The links read with each batch
are spooled for the `associations` table (associations.py). Every table of a run is read
ahead in its own thread (readers.py), so the search pace (5/s) and the general pace (10/s)
are spent in parallel rather than one after the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial

from sync_pipelines.sources.hubspot.associations import Spool, pair
from sync_pipelines.sources.hubspot.client import MAX_ASSOCIATION_INPUTS
from sync_pipelines.sources.hubspot.objects import (
    BY_NAME,
    OBJECTS,
    HubObject,
    as_row,
    document,
    epoch,
)
from sync_pipelines.sources.hubspot.readers import RunReaders, ahead
from sync_pipelines.warehouse.tables import CrmRun, Record, Table


def _ms_bounds(crm: CrmRun) -> tuple[int, int]:
    return math.floor(crm.lower * 1000), math.ceil(crm.upper * 1000)


def _in_window(value, crm: CrmRun) -> bool:
    when = epoch(value)
    return when is not None and crm.lower <= when < crm.upper


def object_pages(obj: HubObject, crm: CrmRun) -> Iterator[list[Record]]:
    client = crm.client
    names = client.property_names(obj.name)
    lower, upper = _ms_bounds(crm)
    live = client.search(obj.name, obj.modified, lower, upper, names, crm.page_size)
    batch: list[dict] = []
    for page in ahead(live, lambda: not client.closed):
        batch.extend(page)
        if len(batch) >= MAX_ASSOCIATION_INPUTS:
            yield _rows(obj, crm, batch)
            batch = []
    if batch:
        yield _rows(obj, crm, batch)
    for page in client.archived(obj.name, names, crm.page_size):
        gone = [r for r in page if _in_window(r.get("archivedAt") or r.get("updatedAt"), crm)]
        if gone:
            yield [as_row(r, obj, {}) for r in gone]


def _rows(obj: HubObject, crm: CrmRun, records: list[dict]) -> list[Record]:
    ids = [str(r["id"]) for r in records]
    linked = {t: crm.client.associations(obj.name, t, ids) for t in obj.associations}
    spool = getattr(crm.client, "spool", None)
    if spool is not None:
        spool.write(
            pair(obj.name, rid, target, tid)
            for target, found in linked.items()
            for rid, tids in found.items()
            for tid in tids
        )
    return [as_row(r, obj, linked) for r in records]


def owner_pages(crm: CrmRun) -> Iterator[list[Record]]:
    """Owners updated in the window, live and archived (owners have no search)."""
    for archived in (False, True):
        for page in crm.client.owners(archived):
            rows = [_owner_row(o) for o in page if _in_window(o.get("updatedAt"), crm)]
            if rows:
                yield rows


def _owner_row(owner: dict) -> Record:
    teams = [t.get("name") or str(t.get("id")) for t in owner.get("teams") or []]
    return {
        "id": str(owner["id"]),
        "email": owner.get("email"),
        "first_name": owner.get("firstName"),
        "last_name": owner.get("lastName"),
        "user_id": owner.get("userId"),
        "created_at": owner.get("createdAt"),
        "updated_at": owner.get("updatedAt"),
        "archived": bool(owner.get("archived")),
        "teams": ";".join(teams) or None,
    }


def _archived(row: Record) -> bool:
    return bool(row.get("archived"))


def _updated(row: Record) -> float | None:
    return epoch(row.get("archived_at") or row.get("updated_at"))


def _read(name: str, crm: CrmRun) -> Iterator[list[Record]]:
    """The table's pages from its background reader (started with every other table of the
    run), or read here when the run planned no readers."""
    readers = getattr(crm.client, "readers", None)
    if readers is None or name not in readers.readers:
        yield from DIRECT[name](crm)
        return
    yield from readers.pages(name)


def object_table(obj: HubObject) -> Table:
    return Table(
        name=obj.name,
        primary_key=("id",),
        pages=partial(_read, obj.name),
        document=partial(_document, obj=obj) if obj.searchable else None,
        is_deleted=_archived,
        updated_at=_updated,
    )


def _document(row: Record, crm: CrmRun, obj: HubObject):
    return document(row, crm, obj)


DIRECT: dict[str, Callable[[CrmRun], Iterator[list[Record]]]] = {
    "owners": owner_pages,
    **{o.name: partial(object_pages, o) for o in OBJECTS},
}
OWNERS = Table(
    name="owners",
    primary_key=("id",),
    pages=partial(_read, "owners"),
    is_deleted=_archived,
    updated_at=_updated,
)
ALL_TABLES = (OWNERS, *(object_table(o) for o in OBJECTS))


def tables(crm: CrmRun) -> list[Table]:
    """Every table, or the ones the connection's `objects` option names; plans the run's
    readers (threads start when the loader asks for the first page)."""
    wanted = getattr(crm.options, "objects", None)
    chosen = [t for t in ALL_TABLES if not wanted or t.name in wanted]
    client = crm.client
    if client is not None and hasattr(client, "readers"):
        sources = {t.name: partial(DIRECT[t.name], crm) for t in chosen}
        client.readers = RunReaders(sources, lambda: not client.closed, client.owner_emails)
        warehouse = getattr(crm.run.context.resources, "warehouse", None)
        if warehouse is not None:  # the links, loaded after the objects (associations.py)
            name = f"hubspot-{crm.run.context.run_id}-{crm.connection_id}.jsonl"
            client.spool = Spool(warehouse.root() / "spool" / name)
            client.run = crm
            client.reads = {t.name: BY_NAME[t.name].associations for t in chosen
                            if t.name in BY_NAME and BY_NAME[t.name].associations}  # fmt: skip
    return chosen
