"""CallRail (API v3): calls with their transcriptions, form submissions and text messages,
loaded as warehouse tables; the searchable text also becomes documents."""

from sync_pipelines.sources.callrail.client import SOURCE as NAME
from sync_pipelines.sources.callrail.client import CallRailResource
from sync_pipelines.sources.callrail.reconcile import list_ids
from sync_pipelines.sources.callrail.tables import CallRailOptions, tables
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.warehouse.crm import crm_sync

SOURCE = SourceDeclaration(
    name=NAME,
    resource=CallRailResource,
    sync=crm_sync(tables),
    options=CallRailOptions,
    description=(
        "CallRail calls (with transcription, note, tags, lead status, customer, duration, "
        "source), form submissions and text-message conversations, loaded as the tables "
        "callrail.calls, callrail.form_submissions and callrail.text_messages (merged on id) "
        "by the day they happened; CallRail has no updated-time filter, so each run re-reads "
        "the last 24 h (option lookback_hours) for late notes, tags and transcriptions. "
        "Documents: calls with a note or transcription, form submissions, conversations "
        "(access: all, or the option access). Records no longer listed (marked spam) leave "
        "the index through a daily 30-day listing. Token auth and an account id; paced at "
        "1,000 requests an hour (10,000 a day)."
    ),
    schedule=Cadence(every_minutes=60, at_minute=27, stale_after_minutes=120),
    reconcile=Reconciliation(list_ids, days=30, at_hour=4, at_minute=27),
    credentials_env={"api_key": "CALLRAIL_API_KEY", "account_id": "CALLRAIL_ACCOUNT_ID"},
    docs_url="https://apidocs.callrail.com/",
    group="crm",
)
