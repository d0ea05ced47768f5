"""Slack's place in the source contract."""

from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines.sources.slack.client import DEFAULT_TIER_LIMITS, METHOD_TIERS, SlackResource
from sync_pipelines.sources.slack.sync import SKIPPED_SUBTYPES
from sync_pipelines_sandbox.contract import SourceContract


def expected_ids(company, start, end):
    ids = set()
    for channel in company.chat_channels():
        if channel.is_archived or not company.bot_can_read(channel):
            continue
        for msg in company.channel_messages(channel.id):
            if start.timestamp() <= float(msg.ts) < end.timestamp():
                for m in [msg, *company.thread_replies(channel.id, msg.ts)]:
                    if (m.text or "").strip() and m.subtype not in SKIPPED_SUBTYPES:
                        ids.add(f"slack:acme:{channel.id}:{m.ts}")
    return ids


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
)
