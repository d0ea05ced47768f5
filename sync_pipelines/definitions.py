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
from sync_pipelines.sources.declaration import SourceDeclaration
from sync_pipelines.sources.reconcile import build_reconcile_job, build_reconcile_schedule
from sync_pipelines.sources.registry import (
    declarations,
    names,
    reconcile_assets,
    source_assets,
)

_ASSET_SUFFIX = "_asset"


def __getattr__(name: str):
    """`<source>_asset`: a source's asset as loaded here (`from ... import <source>_asset`)."""
    source = name.removesuffix(_ASSET_SUFFIX)
    if name.endswith(_ASSET_SUFFIX) and source in SOURCE_NAMES:
        return SOURCE_ASSETS[SOURCE_NAMES.index(source)]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


MAX_DELETE_SHARE_ENV = "SYNC_LISTING_MAX_DELETE_SHARE"


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{MAX_DELETE_SHARE_ENV} must be a number from 0 to 1, got {text!r}")
    return value


def vector_store_resource() -> VectorStoreResource:
    kind = _env("SYNC_VECTOR_STORE", "lance")
    options = {"kind": kind, "ledger_url": _env("SYNC_LEDGER_URL")}
    share = _env(MAX_DELETE_SHARE_ENV)
    if share:
        options["max_absent_share"] = _share(share)
    if _env("SYNC_LANCE_PATH"):
        options["lance_path"] = _env("SYNC_LANCE_PATH")
    if kind == "pinecone":
        options.update(
            pinecone_api_key=EnvVar("PINECONE_API_KEY"),
            pinecone_host=_env("PINECONE_HOST"),
            pinecone_namespace=_env("PINECONE_NAMESPACE", ""),
        )
    return VectorStoreResource(**options)


def source_resources() -> dict:
    """Each source's resource under its name, configured from the environment."""
    return {d.name: d.resource_from_env() for d in declarations()}


def build_resources() -> dict:
    return {
        "connections": ConnectionRegistry(),
        "documents": DocumentStore(),
        **source_resources(),
        "embedder": embedder_resource(),
        "vector_store": vector_store_resource(),
        "alerts": AlertsResource.from_env(),
    }


def source_sync_job(row: SourceDeclaration, asset):
    """`<source>_sync`: what the source's schedule launches, so the runs list names a target."""
    return define_asset_job(
        f"{row.name}_sync",
        selection=AssetSelection.assets(asset),
        description=f"Sync {row.name} for the chosen partitions (day range × connection).",
        tags={"sync/source": row.name, "sync/group": row.group},
    )


def build_definitions() -> Definitions:
    """Everything the declared sources imply, plus vector_index and the sensors."""
    sources = declarations()
    # As loaded: each source's page says whether the registry had an active connection for it.
    hints = connection_hints(names())
    assets = [with_metadata(a, {"connections": hints[n]}) for n, a in source_assets().items()]
    reconciliations = reconcile_assets()
    resources = build_resources()
    vector_index = with_metadata(
        build_vector_index([*assets, *reconciliations.values()]),
        index_metadata(resources["embedder"], resources["vector_store"]),
    )
    sync_jobs = [source_sync_job(d, a) for d, a in zip(sources, assets)]
    reconciling = [d for d in sources if d.name in reconciliations]
    reconcile_jobs = [build_reconcile_job(d, reconciliations[d.name]) for d in reconciling]
    vector_index_automation = AutomationConditionSensorDefinition(
        "vector_index_automation",
        target=AssetSelection.assets(vector_index),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
    )
    return Definitions(
        assets=[*assets, vector_index, *reconciliations.values()],
        jobs=[
            *sync_jobs,
            *reconcile_jobs,
            define_asset_job("vector_index_update", selection=AssetSelection.assets(vector_index)),
        ],
        schedules=[
            *(build_source_schedule(d, j) for d, j in zip(sources, sync_jobs)),
            *(build_reconcile_schedule(d, j) for d, j in zip(reconciling, reconcile_jobs)),
        ],
        sensors=[
            build_connections_sensor(names()),
            vector_index_automation,
            build_alerts_sensor(
                names(), other_assets=[a.key.to_user_string() for a in reconciliations.values()]
            ),
            dead_run_reaper,
        ],
        resources=resources,
    )


defs = build_definitions()
SOURCE_NAMES = names()
SOURCE_ASSETS = list(defs.assets[: len(SOURCE_NAMES)])
vector_index = defs.assets[len(SOURCE_NAMES)]
resources = defs.resources
