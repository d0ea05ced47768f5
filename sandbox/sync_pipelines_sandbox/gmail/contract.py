"""Gmail's place in the source contract: the sandbox mailbox of the refresh token's owner."""

from datetime import UTC, datetime, time, timedelta

from sync_pipelines import clock
from sync_pipelines.sources.gmail.client import GmailResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract
from sync_pipelines_sandbox.gmail.api import (
    SANDBOX_GMAIL_CLIENT_ID,
    SANDBOX_GMAIL_CLIENT_SECRET,
    SANDBOX_GMAIL_REFRESH_TOKEN,
)
from sync_pipelines_sandbox.gmail.data import GmailData

CLIENT_ID_ENV, CLIENT_SECRET_ENV = "CONTRACT_GMAIL_CLIENT_ID", "CONTRACT_GMAIL_CLIENT_SECRET"


def expected_ids(company, start, end):
    data = GmailData.of(company)
    mails = data.expected(data.owner, start.timestamp(), end.timestamp())
    return {f"gmail:acme:{m.id}" for m in mails}


def registry_entry(sandbox, conn_id: str, env: str) -> str:
    url = sandbox.urls["gmail"]
    return (
        f"  - id: {conn_id}\n    source: gmail\n    base_url: {url}\n"
        f"    credentials: {{refresh_token: {env}, client_id: {CLIENT_ID_ENV}, "
        f"client_secret: {CLIENT_SECRET_ENV}}}\n"
        f"    options: {{token_uri: '{url}/token'}}\n"
    )


def delete_record(sandbox) -> str:
    """Deletes for good the newest message of a past day of `data_days` (messagesDeleted in
    the history; a re-run of the day no longer lists it); answers its doc_id."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), UTC)
    start, end = (midnight + timedelta(days=first)).timestamp(), midnight.timestamp()
    data = sandbox.gmail.data
    mails = data.expected(data.owner, start, end)
    if not mails:
        raise LookupError("no message on a past day of the contract's data")
    data.delete_message(data.owner, mails[-1].id)
    return f"gmail:acme:{mails[-1].id}"


CONTRACT = SourceContract(
    name="gmail",
    asset=source_asset("gmail"),
    resources=lambda sandbox: {
        "gmail": GmailResource(
            base_url=sandbox.urls["gmail"], rate_per_s=0, page_size=20, timeout_s=10
        )
    },
    registry_entry=registry_entry,
    good_secret=SANDBOX_GMAIL_REFRESH_TOKEN,
    extra_env={
        CLIENT_ID_ENV: SANDBOX_GMAIL_CLIENT_ID,
        CLIENT_SECRET_ENV: SANDBOX_GMAIL_CLIENT_SECRET,
    },
    list_route="messages.list",
    expected_ids=expected_ids,
    # Requests/s per method at Gmail's 250 quota units/s per user (units per call: 5, 5, 5,
    # 2, 1, 1); the token endpoint is not Gmail's quota.
    rate_budgets={
        "messages.list": 50.0,
        "messages.get": 50.0,
        "messages.attachments.get": 50.0,
        "history.list": 125.0,
        "*": 250.0,
    },
    bench_size=(12000, 2, 100),
    delete_record=delete_record,
    deletion_seen_by="sync",
    reconcile_route="messages.list",
    not_ready=None,
)
