"""HubSpot (CRM v3): contacts, companies, deals, tickets, owners and engagements as tables."""

from typing import Literal

from pydantic import field_validator

from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.hubspot.client import SOURCE as NAME
from sync_pipelines.sources.hubspot.client import HubspotResource
from sync_pipelines.sources.hubspot.tables import ALL_TABLES, tables
from sync_pipelines.warehouse.crm import CrmOptions, crm_sync

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


SOURCE = SourceDeclaration(
    name=NAME,
    resource=HubspotResource,
    sync=crm_sync(tables),
    options=HubspotOptions,
    description=(
        "HubSpot CRM v3 into warehouse tables (hubspot.<object>, merged on id): owners, "
        "companies, contacts, deals, tickets, notes, calls, emails, meetings, tasks, with every "
        "property (custom ones included, from the properties API) and their associations as "
        "associated_<object> columns. Incremental through the search API on the modified date "
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
