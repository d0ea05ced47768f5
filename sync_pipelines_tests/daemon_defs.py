"""The code location the daemon test serves: the real assets, resources, connections sensor
and dead-run reaper, with the real schedule factory ticking every minute so a test sees a tick
soon."""

from dataclasses import replace

from dagster import Definitions

from sync_pipelines.dead_runs import dead_run_reaper
from sync_pipelines.definitions import (
    SOURCE_NAMES,
    build_resources,
    slack_asset,
    source_sync_job,
    vector_index,
)
from sync_pipelines.schedules import build_source_schedule
from sync_pipelines.sensors import build_connections_sensor
from sync_pipelines.sources.declaration import Cadence
from sync_pipelines.sources.registry import declaration

EVERY_MINUTE = replace(declaration("slack"), schedule=Cadence(1, 0, 30))

defs = Definitions(
    assets=[slack_asset, vector_index],
    schedules=[build_source_schedule(EVERY_MINUTE, source_sync_job(EVERY_MINUTE, slack_asset))],
    sensors=[build_connections_sensor(SOURCE_NAMES), dead_run_reaper],
    resources=build_resources(),
)
