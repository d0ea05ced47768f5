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
from sync_pipelines.index.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS
from sync_pipelines.index.embedders import EMBEDDER_KINDS
from sync_pipelines.index.resources import EmbedderResource, VectorStoreResource
from sync_pipelines.insights.asset import build_call_insights
from sync_pipelines.insights.model import MODEL_ENV, ChatModelResource
from sync_pipelines.insights.table import InsightsStore
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
from sync_pipelines.warehouse.destination import WarehouseResource

_ASSET_SUFFIX = "_asset"


def __getattr__(name: str):
    """`<source>_asset`: a source's asset as loaded here (`from ... import <source>_asset`)."""
    source = name.removesuffix(_ASSET_SUFFIX)
    if name.endswith(_ASSET_SUFFIX) and source in SOURCE_NAMES:
        return SOURCE_ASSETS[SOURCE_NAMES.index(source)]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


CHUNK_TOKENS_ENV = "SYNC_CHUNK_TOKENS"
CHUNK_OVERLAP_ENV = "SYNC_CHUNK_OVERLAP"
MAX_CHUNK_TOKENS = 8191  # the longest input OpenAI's embedding models take


def _whole_number(name: str, low: int, high: int, meaning: str) -> int | None:
    """The variable as an int within [low, high], None when unset, else a clear error."""
    text = _env(name)
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValueError(
            f"{name} must be a whole number from {low} to {high} ({meaning}), got {text!r}"
        )
    return value


def embedder_resource() -> EmbedderResource:
    kind = _env("SYNC_EMBEDDER", "wordllama")
    if kind not in EMBEDDER_KINDS:
        raise ValueError(f"SYNC_EMBEDDER must be one of {', '.join(EMBEDDER_KINDS)}, got {kind!r}")
    dimension = _env("SYNC_EMBEDDING_DIMENSIONS")
    options = {"kind": kind, "dimension": int(dimension) if dimension else None}
    tokens = _whole_number(CHUNK_TOKENS_ENV, 8, MAX_CHUNK_TOKENS, "tokens per chunk")
    if tokens is not None:
        options["chunk_tokens"] = tokens
    chunk_tokens = options.get("chunk_tokens", DEFAULT_CHUNK_TOKENS)
    overlap = _whole_number(
        CHUNK_OVERLAP_ENV,
        0,
        chunk_tokens // 2,
        f"tokens shared by consecutive chunks, at most half of {chunk_tokens} tokens per chunk",
    )
    if overlap is not None:
        options["chunk_overlap_tokens"] = overlap
    elif tokens is not None:
        options["chunk_overlap_tokens"] = min(DEFAULT_CHUNK_OVERLAP, tokens // 8)
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


def chat_model_resource() -> ChatModelResource:
    """The chat model of call_insights: off until `SYNC_INSIGHTS_MODEL` names one; its key is
    `SYNC_INSIGHTS_API_KEY` when set, else `OPENAI_API_KEY`, its server
    `SYNC_INSIGHTS_BASE_URL`, else `OPENAI_BASE_URL`, else OpenAI."""
    model = _env(MODEL_ENV)
    if not model:
        return ChatModelResource()
    options: dict = {
        "model": model,
        "api_key": EnvVar(
            "SYNC_INSIGHTS_API_KEY" if _env("SYNC_INSIGHTS_API_KEY") else "OPENAI_API_KEY"
        ),
        "base_url": _env("SYNC_INSIGHTS_BASE_URL") or _env("OPENAI_BASE_URL"),
    }
    numbers = {
        "context_tokens": ("SYNC_INSIGHTS_CONTEXT_TOKENS", int),
        "max_output_tokens": ("SYNC_INSIGHTS_MAX_OUTPUT_TOKENS", int),
        "price_in_per_1m": ("SYNC_INSIGHTS_PRICE_IN_PER_1M", float),
        "price_out_per_1m": ("SYNC_INSIGHTS_PRICE_OUT_PER_1M", float),
    }
    for field, (name, kind) in numbers.items():
        if _env(name):
            try:
                options[field] = kind(_env(name))
            except ValueError:
                raise ValueError(f"{name} must be a number, got {_env(name)!r}") from None
    return ChatModelResource(**options)


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
        "chat_model": chat_model_resource(),
        "insights_store": InsightsStore(),
        "alerts": AlertsResource.from_env(),
        # CRM tables' destination (SYNC_WAREHOUSE_URL, else DuckDB files under the data dir).
        "warehouse": WarehouseResource(),
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
    # Insights of every source whose documents are recorded calls, indexed like a source.
    transcripts = [a for d, a in zip(sources, assets) if d.transcripts]
    insights = [build_call_insights(transcripts)] if transcripts else []
    vector_index = with_metadata(
        build_vector_index([*assets, *reconciliations.values(), *insights]),
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
    insights_automation = [
        AutomationConditionSensorDefinition(
            "call_insights_automation",
            target=AssetSelection.assets(a),
            default_status=DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=30,
        )
        for a in insights
    ]
    return Definitions(
        assets=[*assets, vector_index, *reconciliations.values(), *insights],
        jobs=[
            *sync_jobs,
            *reconcile_jobs,
            define_asset_job("vector_index_update", selection=AssetSelection.assets(vector_index)),
            *(
                define_asset_job("call_insights_update", selection=AssetSelection.assets(a))
                for a in insights
            ),
        ],
        schedules=[
            *(build_source_schedule(d, j) for d, j in zip(sources, sync_jobs)),
            *(build_reconcile_schedule(d, j) for d, j in zip(reconciling, reconcile_jobs)),
        ],
        sensors=[
            build_connections_sensor(names()),
            vector_index_automation,
            *insights_automation,
            build_alerts_sensor(
                names(),
                other_assets=[
                    a.key.to_user_string() for a in [*reconciliations.values(), *insights]
                ],
            ),
            dead_run_reaper,
        ],
        resources=resources,
    )


defs = build_definitions()
SOURCE_NAMES = names()
SOURCE_ASSETS = list(defs.assets[: len(SOURCE_NAMES)])
vector_index = defs.assets[len(SOURCE_NAMES)]
call_insights = next((a for a in defs.assets if a.key.to_user_string() == "call_insights"), None)
resources = defs.resources
