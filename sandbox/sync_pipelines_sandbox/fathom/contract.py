"""Fathom's place in the source contract."""

from datetime import UTC, datetime, time, timedelta

from sync_pipelines import clock
from sync_pipelines.sources.fathom.client import DOCUMENTED_RATE_PER_S, FathomResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract
from sync_pipelines_sandbox.fathom.data import SANDBOX_FATHOM_API_KEY, FathomData

fathom_asset = source_asset("fathom")


def expected_ids(company, start, end):
    meetings = FathomData.of(company).expected(start.timestamp(), end.timestamp())
    return {f"fathom:acme:{m.recording_id}" for m in meetings}


def _past_days(sandbox):
    """[start, end) of the contract's data days before today."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), UTC)
    return (midnight + timedelta(days=first)).timestamp(), midnight.timestamp()


def _newest_past(sandbox):
    meetings = FathomData.of(sandbox.company).expected(*_past_days(sandbox))
    if not meetings:
        raise LookupError("no meeting on a past day of the contract's data")
    return meetings[0]


def delete_record(sandbox) -> str:
    """Deletes the newest meeting of a past day of `data_days` (Fathom keeps no trace, so only
    the day's listing shows it); answers its doc_id."""
    meeting = _newest_past(sandbox)
    sandbox.fathom.delete_meeting(meeting.recording_id)
    return f"fathom:acme:{meeting.recording_id}"


def not_ready(sandbox):
    """Makes the newest meeting of a past day still processing (null transcript and summary,
    as Fathom serves it); answers its doc_id and the function that finishes it."""
    meeting = _newest_past(sandbox)
    data = FathomData.of(sandbox.company)
    data.set_ready_at(meeting.recording_id, clock.now_epoch() + 7 * 86_400 * 4)
    return f"fathom:acme:{meeting.recording_id}", lambda: data.set_ready_at(
        meeting.recording_id, None
    )


CONTRACT = SourceContract(
    name="fathom",
    asset=fathom_asset,
    resources=lambda sandbox: {
        "fathom": FathomResource(base_url=sandbox.urls["fathom"], rate_per_s=0, timeout_s=10)
    },
    registry_entry=lambda sandbox, conn_id, env: (
        f"  - id: {conn_id}\n    source: fathom\n    base_url: {sandbox.urls['fathom']}\n"
        f"    credentials: {{api_key: {env}}}\n"
    ),
    good_secret=SANDBOX_FATHOM_API_KEY,
    list_route="meetings",
    expected_ids=expected_ids,
    # "60 calls to the API in a 60 second window", every route of the key together.
    rate_budgets={"*": DOCUMENTED_RATE_PER_S},
    bench_size=(20000, 3, 10),
    delete_record=delete_record,
    # A re-run of the day lists it without the meeting; the daily reconciliation lists the
    # same route without content.
    deletion_seen_by="sync",
    reconcile_route="meetings",
    not_ready=not_ready,
)
