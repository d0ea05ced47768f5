"""Slack's place in the source contract."""

from datetime import datetime, time, timedelta, timezone

from sync_pipelines import clock
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines.sources.slack.client import DEFAULT_TIER_LIMITS, METHOD_TIERS, SlackResource
from sync_pipelines.sources.slack.sync import SKIPPED_SUBTYPES
from sync_pipelines_sandbox.contract import SourceContract


def expected_ids(company, start, end):
    ids = set()
    for channel in readable_channels(company):
        for msg in company.channel_messages(channel.id):
            if start.timestamp() <= float(msg.ts) < end.timestamp():
                for m in [msg, *company.thread_replies(channel.id, msg.ts)]:
                    if (m.text or "").strip() and m.subtype not in SKIPPED_SUBTYPES:
                        ids.add(f"slack:acme:{channel.id}:{m.ts}")
    return ids


def readable_channels(company):
    return [c for c in company.chat_channels() if not c.is_archived and company.bot_can_read(c)]


def delete_record(sandbox) -> str:
    """Deletes a top-level message without replies from a past day of `data_days` (it leaves
    history with no trace, so only the day's full re-read can show it); answers its doc_id."""
    company = sandbox.company
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), timezone.utc)
    start, end = (midnight + timedelta(days=first)).timestamp(), midnight.timestamp()
    for channel in readable_channels(company):
        for msg in company.channel_messages(channel.id):
            if (
                start <= float(msg.ts) < end
                and (msg.text or "").strip()
                and msg.subtype not in SKIPPED_SUBTYPES
                and not company.thread_replies(channel.id, msg.ts)
            ):
                sandbox.slack.delete_message(channel.id, msg.ts)
                return f"slack:acme:{channel.id}:{msg.ts}"
    raise LookupError("no message without replies on a past day of the contract's data")


CONTRACT = SourceContract(
    name="slack",
    asset=source_asset("slack"),
    resources=lambda sandbox: {
        "slack": SlackResource(
            base_url=sandbox.urls["slack"], tier_limits_per_minute={}, page_size=50, timeout_s=5
        )
    },
    registry_entry=lambda sandbox, conn_id, env: (
        f"  - id: {conn_id}\n    source: slack\n    base_url: {sandbox.urls['slack']}\n"
        f"    credentials: {{token: {env}}}\n"
    ),
    good_secret=SANDBOX_SLACK_TOKEN,
    list_route="conversations.history",
    expected_ids=expected_ids,
    # Per method, at its tier's rate.
    rate_budgets={m: DEFAULT_TIER_LIMITS[t] / 60 for m, t in METHOD_TIERS.items()},
    bench_size=(3000, 2, 999),
    delete_record=delete_record,
    # The day's full re-read lists every message of its channels; a tombstone also shows.
    deletion_seen_by="sync",
    reconcile_route="conversations.history",
)
