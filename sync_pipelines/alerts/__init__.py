"""Failure and freshness alerts to Slack, deduped per source/connection with Dagster's storage.

Wire it with `build_alerts_sensor(source_names)` and an `AlertsResource` under the "alerts"
resource key. See sensor.py for the tick loop and state.py for the dedupe rule.
"""

from sync_pipelines.alerts.resource import (
    ALERTS_RESOURCE_KEY,
    TOKEN_ENV,
    AlertDeliveryError,
    AlertsResource,
)
from sync_pipelines.alerts.scrub import scrub_secrets
from sync_pipelines.alerts.sensor import build_alerts_sensor
from sync_pipelines.alerts.signals import Signal, freshness_signals
from sync_pipelines.alerts.state import AlertState

__all__ = [
    "ALERTS_RESOURCE_KEY",
    "TOKEN_ENV",
    "AlertDeliveryError",
    "AlertState",
    "AlertsResource",
    "Signal",
    "build_alerts_sensor",
    "freshness_signals",
    "scrub_secrets",
]
