"""What the asset pages say besides the data: owners, definition metadata, and why a source's
Partitions tab may be empty.

All of it is computed when the code location loads. Only a wrong SYNC_ASSET_OWNERS fails the
load (Dagster would reject the owner anyway, less clearly); the connection registry can never
fail it, and its content is never echoed (a pasted token would show on every asset page).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from dagster import AssetsDefinition, MetadataValue

from sync_pipelines.connections import (
    DEFAULT_REGISTRY_PATH,
    REGISTRY_PATH_ENV,
    Registry,
    load_registry,
    standard_env,
)

if TYPE_CHECKING:
    from sync_pipelines.sources.declaration import SourceDeclaration

OWNERS_ENV = "SYNC_ASSET_OWNERS"
DEFAULT_OWNERS = ("team:data-platform",)
_TEAM = re.compile(r"team:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}")  # Dagster's own shape
_SEE_REGISTRY = f"see {DEFAULT_REGISTRY_PATH} ({REGISTRY_PATH_ENV})"


def asset_owners(environ: Mapping[str, str] | None = None) -> list[str]:
    """The owners of every asset: `$SYNC_ASSET_OWNERS` (comma-separated 'team:<name>' or
    email addresses), else the default team."""
    raw = (os.environ if environ is None else environ).get(OWNERS_ENV, "")
    owners = [o.strip() for o in raw.split(",") if o.strip()]
    bad = [o for o in owners if not (_TEAM.fullmatch(o) or _EMAIL.fullmatch(o))]
    if bad:
        raise ValueError(
            f"{OWNERS_ENV} has invalid owner(s) {bad}: each must be 'team:<name>' (letters, "
            "digits, '.', '_', '-') or an email address, comma-separated, e.g. "
            "'team:data-platform,ana@acme.test'"
        )
    return owners or list(DEFAULT_OWNERS)


def source_metadata(row: SourceDeclaration) -> dict:
    """Definition metadata of a source asset, from its declaration."""
    source = row.name
    return {
        "api_docs": MetadataValue.url(row.docs_url),
        "cadence": f"{row.cadence}, by {source}_schedule (job {source}_sync)",
        "cron": f"{row.cron} (UTC)",
        "freshness_limit": f"{row.freshness_minutes} min",
        "pool": row.pool,
        "group": row.group,
        "status": source_status(row),
    }


def source_status(row: SourceDeclaration) -> str:
    """'on', or 'off: <reason>' for a source switched off (SYNC_DISABLED_SOURCES or its
    ENABLE_<NAME> gate): the asset still shows, saying why it does not run."""
    reason = row.disabled_reason()
    return f"off: {reason}" if reason else "on"


def index_metadata(embedder, vector_store) -> dict:
    """Definition metadata of vector_index from its configured resources: what embeds (the
    model too, for OpenAI) and where the vectors go."""
    model = f" ({embedder.openai_model})" if embedder.kind == "openai" else ""
    return {"embedder": f"{embedder.kind}{model}", "vector_store": vector_store.kind}


def connection_hint(registry: Registry, source: str) -> str:
    """The active connections of `source`, or why it has none (so no partition exists)."""
    active = [c.id for c in registry.active(source)]
    if active:
        return f"{len(active)} active at load: {', '.join(active)}"
    if not registry.from_file:
        first_env = next(iter(standard_env()[source][0].values()))
        return f"none active: no registry file and {first_env} is not set; {_SEE_REGISTRY}"
    invalid = [p for p in registry.problems if p.source in (None, source)]
    n = len(invalid)
    problems = f", {n} invalid entr{'y' if n == 1 else 'ies'} (the connections_sensor says which)"
    return f"none active in {registry.origin}{problems if invalid else ''}; {_SEE_REGISTRY}"


def connection_hints(
    sources: Sequence[str], load: Callable[[], Registry] = load_registry
) -> dict[str, str]:
    """`connection_hint` of each source from one registry read that never raises."""
    try:
        registry = load()
    except Exception as exc:  # noqa: BLE001 - an unusable registry must not fail the load
        hint = (
            f"unknown: the connection registry cannot be used ({type(exc).__name__}; the "
            f"connections_sensor says why); {_SEE_REGISTRY}"
        )
        return {source: hint for source in sources}
    return {source: connection_hint(registry, source) for source in sources}


def with_metadata(asset: AssetsDefinition, metadata: Mapping[str, object]) -> AssetsDefinition:
    """`asset` with `metadata` added to its definition metadata (what only the load knows)."""
    return asset.map_asset_specs(lambda spec: spec.merge_attributes(metadata=metadata))
