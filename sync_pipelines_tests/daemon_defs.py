"""The code location the daemon test serves: the real assets, resources and connections
sensor, with the real schedule factory ticking every minute so a test sees a tick soon."""

from dagster import Definitions

from sync_pipelines.definitions import SOURCE_NAMES, build_resources, slack_asset, vector_index
from sync_pipelines.schedules import build_source_schedule
from sync_pipelines.sensors import build_connections_sensor
from sync_pipelines.source_table import SourceEntry

defs = Definitions(
    assets=[slack_asset, vector_index],
    schedules=[
        build_source_schedule(
            SourceEntry("slack", cadence_minutes=1, offset_minutes=0, freshness_minutes=30),
            slack_asset,
        )
    ],
    sensors=[build_connections_sensor(SOURCE_NAMES)],
    resources=build_resources(),
)
