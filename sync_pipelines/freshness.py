"""Freshness policies from the source table: a source is stale when it has not materialized
for its limit (Slack 30 min, Jira 60, the rest 120).

Dagster's own freshness evaluation (the daemon's FRESHNESS_DAEMON, every 30 s) turns the
policy into the asset's freshness state (PASS / FAIL, UNKNOWN before the first
materialization), shown on the asset page, and records every change as a
FRESHNESS_STATE_CHANGE event; the `failure_alerts` sensor reads those states and posts to
Slack. The policy is per asset: any connection's materialization counts.
"""

from datetime import timedelta

from dagster import FreshnessPolicy

from sync_pipelines.source_table import entry


def freshness_policy(source: str) -> FreshnessPolicy:
    """FAIL once `source` has not materialized for its table limit. No warn window: with a
    15-min cadence, a warning before the 30-min limit would flicker on every ordinary run."""
    return FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=entry(source).freshness_minutes)
    )
