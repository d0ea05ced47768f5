"""CallRail's place in the source contract."""

import tempfile
from datetime import UTC, datetime, time, timedelta

from sync_pipelines import clock
from sync_pipelines.sources.callrail.client import DOCUMENTED_RATE_PER_S, CallRailResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.callrail.data import (
    SANDBOX_ACCOUNT_ID,
    SANDBOX_CALLRAIL_KEY,
    CallRailData,
    Item,
)
from sync_pipelines_sandbox.contract import SourceContract

KINDS = ("calls", "form_submissions", "text_messages")


def searchable(item: Item) -> bool:
    """Whether a record yields a document: a call needs a note or a transcription."""
    if item.kind != "calls":
        return True
    return bool(item.fields.get("note") or item.fields.get("transcription"))


def truth(company, start: float, end: float, kinds=KINDS) -> list[Item]:
    """Every listed record whose own time lies in [start, end) (up to now)."""
    upper = min(end, clock.now_epoch())
    data = CallRailData.of(company)
    return [item for kind in kinds for item in data.between(kind, start, upper)]


def expected_ids(company, start, end):
    return {
        f"callrail:acme:{item.kind}/{item.id}"
        for item in truth(company, start.timestamp(), end.timestamp())
        if searchable(item)
    }


def _past_calls(sandbox) -> list[Item]:
    """The calls with a document on the past days of `data_days` (not today's)."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), UTC)
    start = (midnight + timedelta(days=first)).timestamp()
    calls = [i for i in truth(sandbox.company, start, midnight.timestamp(), ("calls",))]
    calls = [i for i in calls if searchable(i)]
    if not calls:
        raise LookupError("no call with a document on a past day of the contract's data")
    return calls


def delete_record(sandbox) -> str:
    """Marks the newest documented call of a past day as spam: CallRail then leaves it out
    of every listing (its API shows no deletion otherwise); answers its doc_id."""
    call = _past_calls(sandbox)[-1]
    CallRailData.of(sandbox.company).hide_call(call.id)
    return f"callrail:acme:calls/{call.id}"


def expected_rows(company, start, end) -> dict[str, set[tuple]]:
    """Each table's ids a sync of [start, end) loads (calls marked as spam are not listed)."""
    items = truth(company, start.timestamp(), end.timestamp())
    return {kind: {(i.id,) for i in items if i.kind == kind} for kind in KINDS}


def edit_record(sandbox) -> tuple[str, tuple]:
    """A user adds a note to the newest call (CallRail keeps its start time: the hourly run
    of today re-reads it through its lookback); answers its table and key."""
    now = clock.now_epoch()
    newest = truth(sandbox.company, now - 86_400, now, ("calls",))[-1]
    CallRailData.of(sandbox.company).edit_call(newest.id, note="Edited: call back on Monday")
    return "calls", (newest.id,)


def delete_crm_record(sandbox) -> tuple[str, tuple]:
    """Marks a documented call of a past day as spam (absent from every listing from then
    on); answers its table and key."""
    call = _past_calls(sandbox)[0]
    CallRailData.of(sandbox.company).hide_call(call.id)
    return "calls", (call.id,)


def registry_entry(sandbox, conn_id, env):
    return (
        f"  - id: {conn_id}\n    source: callrail\n    base_url: {sandbox.urls['callrail']}\n"
        f"    credentials: {{api_key: {env}}}\n"
        f"    options: {{account_id: {SANDBOX_ACCOUNT_ID}}}\n"
    )


CONTRACT = SourceContract(
    name="callrail",
    asset=source_asset("callrail"),
    # Each sandbox's runs count against a daily ledger of their own (not the data dir's,
    # which would carry one test session's requests into the next).
    resources=lambda sandbox: {
        "callrail": CallRailResource(
            rate_per_s=0,
            page_size=20,
            timeout_s=10,
            max_attempts=4,
            budget_dir=tempfile.mkdtemp(prefix="callrail-budget-"),
        )
    },
    registry_entry=registry_entry,
    good_secret=SANDBOX_CALLRAIL_KEY,
    list_route="calls",
    expected_ids=expected_ids,
    rate_budgets={"*": DOCUMENTED_RATE_PER_S},  # 1,000 an hour per account, every route
    # 1,100 calls, forms and conversations over 7 days; 2 days synced at 25 a page: ~15
    # requests, about a minute at 1,000 an hour.
    bench_size=(12000, 2, 25),
    delete_record=delete_record,
    deletion_seen_by="reconcile",
    reconcile_route="calls",
    expected_rows=expected_rows,
    edit_record=edit_record,
    delete_crm_record=delete_crm_record,
)
