"""The code location: every source asset, vector_index, their resources, sensors and jobs.

Resources are picked from environment variables (see the README's configuration table), so
the same code runs on the sandbox, on a laptop and in production. Nothing here needs a
credential to load: an unconfigured source shows in the UI, says on its asset page that it
has no active connection (read once at load, see catalog.py), and fails its runs with a
message saying what to set.
"""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    define_asset_job,
)

from sync_pipelines.alerts import AlertsResource, build_alerts_sensor
from sync_pipelines.catalog import connection_hints, index_metadata, with_metadata
from sync_pipelines.dead_runs import dead_run_reaper
from sync_pipelines.index.asset import build_vector_index
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines.schedules import build_source_schedule
from sync_pipelines.sensors import build_connections_sensor
from sync_pipelines.source_table import SourceEntry, entry
from sync_pipelines.sources.fireflies.asset import fireflies_asset
from sync_pipelines.sources.fireflies.client import DEFAULT_BASE_URL as FIREFLIES_DEFAULT_BASE_URL
from sync_pipelines.sources.fireflies.client import FirefliesResource
from sync_pipelines.sources.jira.asset import jira_asset
from sync_pipelines.sources.jira.client import JiraResource
from sync_pipelines.sources.notion.asset import notion_asset
from sync_pipelines.sources.notion.client import DEFAULT_BASE_URL as NOTION_DEFAULT_BASE_URL
from sync_pipelines.sources.notion.client import NotionResource
from sync_pipelines.sources.slack.asset import slack_asset
from sync_pipelines.sources.slack.client import DEFAULT_BASE_URL as SLACK_DEFAULT_BASE_URL
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines.sources.tempo.asset import tempo_asset
from sync_pipelines.sources.tempo.client import TempoResource

_BUILT = {
    a.key.to_user_string(): a
    for a in [slack_asset, jira_asset, notion_asset, fireflies_asset, tempo_asset]
}
SOURCE_NAMES = list(_BUILT)
# As loaded: each source's page says whether the registry had an active connection for it.
_HINTS = connection_hints(SOURCE_NAMES)
SOURCE_ASSETS = [with_metadata(a, {"connections": _HINTS[name]}) for name, a in _BUILT.items()]
slack_asset, jira_asset, notion_asset, fireflies_asset, tempo_asset = SOURCE_ASSETS


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def embedder_resource() -> EmbedderResource:
    kind = _env("SYNC_EMBEDDER", "hashing")
    dimension = _env("SYNC_EMBEDDING_DIMENSIONS")
    options = {"kind": kind, "dimension": int(dimension) if dimension else None}
    if kind == "openai":
        options.update(
            openai_api_key=EnvVar("OPENAI_API_KEY"),
            openai_base_url=_env("OPENAI_BASE_URL"),
            openai_model=_env("SYNC_EMBEDDING_MODEL", "text-embedding-3-small"),
        )
    return EmbedderResource(**options)


def vector_store_resource() -> VectorStoreResource:
    kind = _env("SYNC_VECTOR_STORE", "lance")
    options = {"kind": kind, "ledger_url": _env("SYNC_LEDGER_URL")}
    if _env("SYNC_LANCE_PATH"):
        options["lance_path"] = _env("SYNC_LANCE_PATH")
    if kind == "pinecone":
        options.update(
            pinecone_api_key=EnvVar("PINECONE_API_KEY"),
            pinecone_host=_env("PINECONE_HOST"),
            pinecone_namespace=_env("PINECONE_NAMESPACE", ""),
        )
    return VectorStoreResource(**options)


def alerts_resource() -> AlertsResource:
    options = {
        "channel": _env("SYNC_ALERT_CHANNEL", "#alerts"),
        "slack_base_url": _env("SYNC_ALERT_SLACK_BASE_URL", "https://slack.com/api/"),
        "webserver_base_url": _env("DAGSTER_WEBSERVER_URL", "http://localhost:3000"),
    }
    if _env("SYNC_ALERT_SLACK_TOKEN"):
        options["slack_token"] = EnvVar("SYNC_ALERT_SLACK_TOKEN")
    return AlertsResource(**options)


def _paced(name: str) -> dict:
    """`<SOURCE>_RATE_PER_S` overrides a source's documented pacing (plans differ; 0 = off)."""
    value = _env(f"{name.upper()}_RATE_PER_S")
    return {"rate_per_s": float(value)} if value is not None else {}


def source_resources() -> dict:
    return {
        "slack": SlackResource(base_url=_env("SLACK_BASE_URL", SLACK_DEFAULT_BASE_URL)),
        "jira": JiraResource(base_url=_env("JIRA_BASE_URL"), **_paced("jira")),
        "tempo": TempoResource(base_url=_env("TEMPO_BASE_URL"), **_paced("tempo")),
        "notion": NotionResource(
            base_url=_env("NOTION_BASE_URL", NOTION_DEFAULT_BASE_URL), **_paced("notion")
        ),
        "fireflies": FirefliesResource(
            base_url=_env("FIREFLIES_BASE_URL", FIREFLIES_DEFAULT_BASE_URL), **_paced("fireflies")
        ),
    }


def build_resources() -> dict:
    return {
        "connections": ConnectionRegistry(),
        "documents": DocumentStore(),
        **source_resources(),
        "embedder": embedder_resource(),
        "vector_store": vector_store_resource(),
        "alerts": alerts_resource(),
    }


def source_sync_job(row: SourceEntry, asset):
    """`<source>_sync`: what the source's schedule launches, so the runs list names a target."""
    return define_asset_job(
        f"{row.name}_sync",
        selection=AssetSelection.assets(asset),
        description=f"Sync {row.name} for the chosen partitions (day range × connection).",
        tags={"sync/source": row.name, "sync/group": row.group},
    )


resources = build_resources()
vector_index = with_metadata(
    build_vector_index(SOURCE_ASSETS),
    index_metadata(resources["embedder"], resources["vector_store"]),
)
source_sync_jobs = [source_sync_job(entry(n), a) for n, a in zip(SOURCE_NAMES, SOURCE_ASSETS)]
vector_index_job = define_asset_job(
    "vector_index_update", selection=AssetSelection.assets(vector_index)
)

vector_index_automation = AutomationConditionSensorDefinition(
    "vector_index_automation",
    target=AssetSelection.assets(vector_index),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)

defs = Definitions(
    assets=[*SOURCE_ASSETS, vector_index],
    jobs=[*source_sync_jobs, vector_index_job],
    schedules=[build_source_schedule(entry(n), j) for n, j in zip(SOURCE_NAMES, source_sync_jobs)],
    sensors=[
        build_connections_sensor(SOURCE_NAMES),
        vector_index_automation,
        build_alerts_sensor(SOURCE_NAMES),
        dead_run_reaper,
    ],
    resources=resources,
)
