"""Google Sheets: listed spreadsheets' tabs as warehouse tables, chosen tabs' rows as documents.

Credentials (environment variable names in the registry; sync_pipelines/google_auth.py): a
service account's JSON key, `credentials: {service_account_json: GOOGLE_SHEETS_SA_KEY}`,
with each spreadsheet shared with the account's email (or, with domain-wide delegation,
`options: {subject: user@example.com}`); an OAuth refresh token (`refresh_token`,
`client_id`, `client_secret`) also works. Options (sync.py): `spreadsheets: [{id, ranges:
[...], prefix}]` (no ranges: every tab), `index_tabs`, `key_columns`, `access`,
`value_render`, `date_time_render`, `page_size`, `batch_size`.
"""

from functools import partial

from sync_pipelines.sources.base import SourceRun, SyncOutcome
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.google_sheets.client import SOURCE as NAME
from sync_pipelines.sources.google_sheets.client import GoogleSheetsResource
from sync_pipelines.sources.google_sheets.sync import GoogleSheetsOptions, SheetsPlan, stored_tabs
from sync_pipelines.warehouse.crm import RESOURCE_KEY, crm_sync


def sync(run: SourceRun) -> SyncOutcome:
    # The plan reads the last modifiedTimes from the partition's cursor and records the new
    # ones; the cursor is stored only when the load succeeded (crm_sync raises otherwise).
    plan = SheetsPlan(run.client, run.options, run.connection.id, run.cursor)
    bounds = run.window.bounds(run.mark)
    warehouse = getattr(run.context.resources, RESOURCE_KEY)
    stored = partial(stored_tabs, warehouse, run.connection.id)  # asked only when needed
    if not plan.prepare(run.window.end_epoch, bounds.now, stored):  # nothing to read or delete
        figures = {"mode": bounds.mode, **plan.figures()}
        return SyncOutcome([], bounds.upper, run.client.stats, figures, cursor=plan.cursor())
    outcome = crm_sync(plan.tables)(run)
    outcome.cursor = plan.cursor()
    outcome.metadata.update(plan.figures())
    return outcome


def crm_tables(crm):
    """The tables a run of `crm` loads (for the contract checks and the docs)."""
    plan = SheetsPlan(crm.client, crm.options, crm.connection_id, None)
    plan.prepare(crm.run.window.end_epoch, crm.now)
    return plan.tables(crm)


sync.crm_tables = crm_tables

SOURCE = SourceDeclaration(
    name=NAME,
    resource=GoogleSheetsResource,
    sync=sync,
    options=GoogleSheetsOptions,
    description=(
        "Google Sheets: each tab of the spreadsheets a connection lists is a table "
        "(google_sheets.<tab>, header row as column names in lower snake case, typed values), "
        "fully refreshed on today's partition with a hash per row: unchanged rows cost "
        "nothing, rows removed from the sheet are soft-deleted (_deleted_at), a spreadsheet "
        "whose Drive modifiedTime did not change since the last run is not read at all; the "
        "rows of a deleted tab or spreadsheet are soft-deleted. Rows "
        "of the tabs named in index_tabs become documents (header: value lines)."
    ),
    schedule=Cadence(every_minutes=60, at_minute=43, stale_after_minutes=120),
    credentials_env={"service_account_json": "GOOGLE_SHEETS_SERVICE_ACCOUNT_JSON"},
    docs_url="https://developers.google.com/workspace/sheets/api/reference/rest",
    group="crm",
    # The sandbox's spreadsheets (`make sandbox` / the demo): the Leads and Pipeline tabs indexed.
    demo_options={
        "spreadsheets": [
            {"id": "1SbxSa1esPipe1ine0000000000000000000000000A"},
            {"id": "1SbxLegacyAccountsImport00000000000000000B"},
        ],
        "index_tabs": ["Leads", "Pipeline"],
        "key_columns": {"leads": ["lead_id"], "pipeline": ["deal_id"]},
    },
)
