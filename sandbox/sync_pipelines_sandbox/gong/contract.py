"""Gong's place in the source contract."""

from datetime import UTC, datetime, time, timedelta

from sync_pipelines import clock
from sync_pipelines.sources.gong.client import DOCUMENTED_RATE_PER_S, GongResource
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract
from sync_pipelines_sandbox.gong.data import (
    SANDBOX_GONG_ACCESS_KEY,
    SANDBOX_GONG_ACCESS_KEY_SECRET,
    GongData,
)

gong_asset = source_asset("gong")
SECRET_ENV = "CONTRACT_GONG_ACCESS_KEY_SECRET"  # the key's secret; the key is the main secret


def expected_ids(company, start, end):
    upper = min(end.timestamp(), clock.now_epoch())
    return {f"gong:acme:{c.id}" for c in GongData.of(company).expected(start.timestamp(), upper)}


def _past_days(sandbox):
    """The calls of the past days of `data_days` (not today's), oldest first."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), UTC)
    start = (midnight + timedelta(days=first)).timestamp()
    calls = GongData.of(sandbox.company).expected(start, midnight.timestamp())
    if not calls:
        raise LookupError("no call on a past day of the contract's data")
    return calls


def delete_record(sandbox) -> str:
    """Deletes the newest call of a past day of `data_days` (Gong keeps no trace, so only the
    day's listing shows it); answers its doc_id."""
    call = _past_days(sandbox)[-1]
    sandbox.gong.delete_call(call.id)
    return f"gong:acme:{call.id}"


def not_ready(sandbox):
    """Makes the oldest call of a past day not transcribed yet; answers its doc_id and a
    function that finishes its transcript."""
    call = _past_days(sandbox)[0]
    data = GongData.of(sandbox.company)
    data.set_ready_at(call.id, clock.now_epoch() + 30 * 86_400)
    return f"gong:acme:{call.id}", lambda: data.set_ready_at(call.id, None)


def registry_entry(sandbox, conn_id, env):
    return (
        f"  - id: {conn_id}\n    source: gong\n    base_url: {sandbox.urls['gong']}\n"
        f"    credentials: {{access_key: {env}, access_key_secret: {SECRET_ENV}}}\n"
    )


CONTRACT = SourceContract(
    name="gong",
    asset=gong_asset,
    resources=lambda sandbox: {
        "gong": GongResource(rate_per_s=0, page_size=20, timeout_s=10, max_attempts=4)
    },
    registry_entry=registry_entry,
    good_secret=SANDBOX_GONG_ACCESS_KEY,
    list_route="extensive",
    expected_ids=expected_ids,
    extra_env={SECRET_ENV: SANDBOX_GONG_ACCESS_KEY_SECRET},
    rate_budgets={"*": DOCUMENTED_RATE_PER_S},  # per company, every route alike
    # 2,400 calls over 7 days; 2 days synced, transcripts fetched 5 call ids at a time.
    bench_size=(12000, 2, 5),
    delete_record=delete_record,
    # A re-run of the day lists it without the call; the daily reconciliation lists the
    # same range with `GET /v2/calls`.
    deletion_seen_by="sync",
    reconcile_route="calls",
    not_ready=not_ready,
)
