"""Fireflies' place in the source contract."""

from datetime import datetime, time, timedelta, timezone

from sync_pipelines import clock
from sync_pipelines_sandbox.fireflies.api import SANDBOX_FIREFLIES_API_KEY
from sync_pipelines_sandbox.fireflies.data import FirefliesData
from sync_pipelines.sources.fireflies.client import DOCUMENTED_RATE_PER_S, FirefliesResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract

fireflies_asset = source_asset("fireflies")


def expected_ids(company, start, end):
    meetings = FirefliesData.of(company).expected(start.timestamp(), end.timestamp())
    return {f"fireflies:acme:{m.id}" for m in meetings}


def delete_record(sandbox) -> str:
    """Deletes the newest meeting of a past day of `data_days` (Fireflies keeps no trace, so
    only the day's listing shows it); answers its doc_id."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), timezone.utc)
    start, end = (midnight + timedelta(days=first)).timestamp(), midnight.timestamp()
    meetings = FirefliesData.of(sandbox.company).expected(start, end)
    if not meetings:
        raise LookupError("no meeting on a past day of the contract's data")
    sandbox.fireflies.delete_meeting(meetings[0].id)
    return f"fireflies:acme:{meetings[0].id}"


def not_ready(sandbox):
    """Puts the newest meeting of a past day of `data_days` back into processing until
    make_ready() is called; answers its doc_id."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), timezone.utc)
    start, end = (midnight + timedelta(days=first)).timestamp(), midnight.timestamp()
    data = FirefliesData.of(sandbox.company)
    meeting = data.expected(start, end)[0]
    data.set_ready_at(meeting.id, clock.now_epoch() + 86_400)
    return f"fireflies:acme:{meeting.id}", lambda: data.set_ready_at(meeting.id, None)


CONTRACT = SourceContract(
    name="fireflies",
    asset=fireflies_asset,
    resources=lambda sandbox: {
        "fireflies": FirefliesResource(
            base_url=sandbox.urls["fireflies"], rate_per_s=0, page_size=10, timeout_s=10
        )
    },
    registry_entry=lambda sandbox, conn_id, env: (
        f"  - id: {conn_id}\n    source: fireflies\n    base_url: {sandbox.urls['fireflies']}\n"
        f"    credentials: {{api_key: {env}}}\n"
    ),
    good_secret=SANDBOX_FIREFLIES_API_KEY,
    list_route="transcripts",
    expected_ids=expected_ids,
    rate_budgets={"*": DOCUMENTED_RATE_PER_S},
    bench_size=(30000, 3, 50),
    delete_record=delete_record,
    # A re-run of the day lists it without the meeting; the daily reconciliation lists the
    # same `transcripts` call, ids and dates only.
    deletion_seen_by="sync",
    reconcile_route="transcripts",
    not_ready=not_ready,
)
