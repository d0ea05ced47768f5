"""Freshness policies from the source declarations: a source is stale when it has not
materialized for its declared limit.

Dagster's own freshness evaluation (the daemon's FRESHNESS_DAEMON, every 30 s) turns the
policy into the asset's freshness state (PASS / FAIL, UNKNOWN before the first
materialization), shown on the asset page, and records every change as a
FRESHNESS_STATE_CHANGE event; the `failure_alerts` sensor reads those states and posts an
alert. The policy is per asset: any connection's materialization counts.
"""

from datetime import timedelta

from dagster import FreshnessPolicy


def freshness_policy(limit_minutes: int) -> FreshnessPolicy:
    """FAIL once the source has not materialized for `limit_minutes`. No warn window: with a
    15-min cadence, a warning before a 30-min limit would flicker on every ordinary run."""
    return FreshnessPolicy.time_window(fail_window=timedelta(minutes=limit_minutes))
