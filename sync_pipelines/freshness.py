"""Freshness checks from the source table: a source is stale when it has not materialized
for its limit (Slack 30 min, Jira 60, the rest 120). Evaluated by a running sensor; failures
show on the asset in the UI and feed the alert sensor."""

from datetime import timedelta
from typing import Sequence

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    DefaultSensorStatus,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
)

from sync_pipelines.source_table import entry


def build_freshness_checks(assets: Sequence[AssetsDefinition]) -> list[AssetChecksDefinition]:
    checks: list[AssetChecksDefinition] = []
    for asset in assets:
        limit = entry(asset.key.to_user_string()).freshness_minutes
        checks.extend(
            build_last_update_freshness_checks(
                assets=[asset], lower_bound_delta=timedelta(minutes=limit)
            )
        )
    return checks


def build_freshness_sensor(checks: Sequence[AssetChecksDefinition]):
    return build_sensor_for_freshness_checks(
        freshness_checks=checks,
        name="freshness_checks_sensor",
        minimum_interval_seconds=120,
        default_status=DefaultSensorStatus.RUNNING,
    )
