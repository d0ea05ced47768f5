"""Gmail: one connection per mailbox, one document per message (quoted replies trimmed).

Credentials (environment variable names in the registry; auth.py):
- OAuth for one user: `credentials: {refresh_token: GMAIL_REFRESH_TOKEN, client_id:
  GMAIL_CLIENT_ID, client_secret: GMAIL_CLIENT_SECRET}` (the standard variables make the
  `default` connection);
- a service account with domain-wide delegation: `credentials: {service_account_json:
  GMAIL_SA_KEY}` and `options: {mailbox: ana@example.com}`, one connection per mailbox.
Options (sync.py): `labels` (allow-list of label names), `access` (owner |
owner_and_internal), `internal_domains`, `attachment_max_bytes`, `token_uri`.
"""

from sync_pipelines.sources.base import SourceRun
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.gmail.client import SOURCE as NAME
from sync_pipelines.sources.gmail.client import GmailResource
from sync_pipelines.sources.gmail.reconcile import list_ids
from sync_pipelines.sources.gmail.sync import GmailOptions, GmailSync, GmailSyncResult


def sync(run: SourceRun) -> GmailSyncResult:
    reader = GmailSync(run.client, run.options, run.connection.id)
    return reader.run(run.window, run.mark, run.cursor)


SOURCE = SourceDeclaration(
    name=NAME,
    resource=GmailResource,
    sync=sync,
    options=GmailOptions,
    description=(
        "Gmail messages of one mailbox per connection, one document per message on the day "
        "Gmail received it (internalDate), quoted replies trimmed, grouped by thread; text "
        "and PDF attachments extracted. A day's first run lists it; later runs follow the "
        "mailbox history (historyId), so deletions and moves to spam or trash leave the "
        "index; a daily reconciliation lists the last 30 days. Spam and trash are never "
        "indexed; access is the mailbox owner (optionally internal recipients too)."
    ),
    schedule=Cadence(every_minutes=15, at_minute=9, stale_after_minutes=30),
    credentials_env={
        "refresh_token": "GMAIL_REFRESH_TOKEN",
        "client_id": "GMAIL_CLIENT_ID",
        "client_secret": "GMAIL_CLIENT_SECRET",
    },
    docs_url="https://developers.google.com/workspace/gmail/api/reference/rest",
    group="knowledge",
    # Daily at 03:45 UTC: ids of the last 30 days.
    reconcile=Reconciliation(list_ids, days=30, at_hour=3, at_minute=45),
)
