"""The sources of the code location: every subpackage of `sync_pipelines.sources` whose
`__init__.py` exports a `SOURCE` declaration.

Discovery walks the package's search path (`sync_pipelines.sources.__path__`), so a source
is added by adding its folder. The order is the schedules' (cadence, then start minute, then
name): deterministic, and the order the UI and the demo list the sources in.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from dagster import AssetsDefinition

import sync_pipelines.sources as sources_package
from sync_pipelines.sources.base import build_source_asset
from sync_pipelines.sources.declaration import SourceDeclaration
from sync_pipelines.sources.reconcile import build_reconcile_asset

DECLARATION_ATTR = "SOURCE"


@functools.cache
def declarations() -> tuple[SourceDeclaration, ...]:
    found = []
    for info in pkgutil.iter_modules(sources_package.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{sources_package.__name__}.{info.name}")
        declared = getattr(module, DECLARATION_ATTR, None)
        if not isinstance(declared, SourceDeclaration):
            continue
        if declared.name != info.name:
            raise ValueError(
                f"sources/{info.name} declares a source named {declared.name!r}: the folder "
                "and the source must have the same name"
            )
        found.append(declared)
    return tuple(sorted(found, key=lambda d: (d.cadence_minutes, d.offset_minutes, d.name)))


def names() -> list[str]:
    return [d.name for d in declarations()]


def declaration(name: str) -> SourceDeclaration:
    for declared in declarations():
        if declared.name == name:
            return declared
    raise KeyError(f"source {name!r} is not declared; sources: {', '.join(names())}")


@functools.cache
def source_assets() -> dict[str, AssetsDefinition]:
    """Each source's asset, built once from its declaration by the shared factory."""
    return {d.name: build_source_asset(d) for d in declarations()}


def source_asset(name: str) -> AssetsDefinition:
    return source_assets()[declaration(name).name]


@functools.cache
def reconcile_assets() -> dict[str, AssetsDefinition]:
    """The `<source>_reconcile` asset of each source that declares a reconciliation."""
    return {d.name: build_reconcile_asset(d) for d in declarations() if d.reconcile is not None}


def reconcile_asset(name: str) -> AssetsDefinition:
    return reconcile_assets()[declaration(name).name]


def refresh() -> None:
    """Forget what was discovered (after a folder was added to the search path)."""
    declarations.cache_clear()
    source_assets.cache_clear()
    reconcile_assets.cache_clear()
