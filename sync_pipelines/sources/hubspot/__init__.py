"""HubSpot (CRM v3): contacts, companies, deals, tickets, owners and engagements as tables."""

from typing import Literal

from pydantic import field_validator

from sync_pipelines.sources.base import SourceRun, SyncOutcome
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.hubspot import associations
from sync_pipelines.sources.hubspot.client import SOURCE as NAME
from sync_pipelines.sources.hubspot.client import HubspotResource
from sync_pipelines.sources.hubspot.tables import ALL_TABLES, tables
from sync_pipelines.warehouse.crm import RESOURCE_KEY, CrmOptions, crm_sync
from sync_pipelines.warehouse.loader import column_name, load

TABLE_NAMES = tuple(t.name for t in ALL_TABLES)


class HubspotOptions(CrmOptions):
    """A HubSpot connection's options (page_size and batch_size from CrmOptions)."""

    access: Literal["all", "owner"] = "all"  # "owner": documents readable by their owner only
    objects: tuple[str, ...] = ()  # tables to load; empty: all of them
    portal_id: int | None = None  # the account's id, for links to records in HubSpot

    @field_validator("objects")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(TABLE_NAMES))
        if unknown:
            raise ValueError(f"unknown objects {unknown}; known: {', '.join(TABLE_NAMES)}")
        return value


_load_objects = crm_sync(tables)


def sync(run: SourceRun) -> SyncOutcome:
    """The objects through the shared CRM loader, then the links their readers spooled
    (a second load of `hubspot.associations`) and the removal of links no longer read."""
    client = run.client
    try:
        outcome = _load_objects(run)
        if getattr(client, "spool", None) is None or client.run is None:
            return outcome  # an empty window: nothing read
        crm, warehouse = client.run, getattr(run.context.resources, RESOURCE_KEY)
        batch = getattr(run.options, "batch_size", None) or warehouse.batch_size
        links = associations.table(client.spool)
        tee = load(NAME, crm, [links], warehouse, batch, run.context.run_id)
        pruned = associations.prune(warehouse, crm, client.reads)
    finally:
        if getattr(client, "spool", None) is not None:
            client.spool.close()
            client.spool = None
    outcome.metadata.update({
        "rows_associations": tee.rows[links.name],
        "rows_deleted_associations": pruned,
        "pages_associations": tee.pages[links.name],
        "key_associations": ",".join(column_name(k) for k in links.primary_key),
    })  # fmt: skip
    return outcome


sync.crm_tables = tables  # for the contract checks and the docs

SOURCE = SourceDeclaration(
    name=NAME,
    resource=HubspotResource,
    sync=sync,
    options=HubspotOptions,
    description=(
        "HubSpot CRM v3 into warehouse tables (hubspot.<object>, merged on id): owners, "
        "companies, contacts, deals, tickets, notes, calls, emails, meetings, tasks, with every "
        "property (custom ones included, from the properties API); their associations once "
        "each in hubspot.associations (both ends answerable, removed links soft-deleted) and "
        "as associated_<object> columns. Incremental through the search API on the modified date "
        "(windows over 10,000 results are split); archived records (list API, archived=true) "
        "become soft deletes and tombstones. Notes, emails, calls and meetings are also "
        "documents (access: all; option access: owner narrows to the owner). Private-app "
        "token; 100 requests/10 s (HUBSPOT_RATE_PER_S) and 5 searches/s."
    ),
    schedule=Cadence(every_minutes=60, at_minute=13, stale_after_minutes=120),
    credentials_env={"access_token": "HUBSPOT_ACCESS_TOKEN"},
    docs_url="https://developers.hubspot.com/docs/api-reference/crm-search-v3/guide",
    group="crm",
)
