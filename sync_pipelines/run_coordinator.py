"""The queued run coordinator that tags every CRM run, whatever launched it.

dagster.yaml caps CRM runs at 2 at once with a tag limit on `sync/group=crm`. Job and schedule
tags reach only the runs those launch: a materialization from the UI, an asset backfill or an
automation run carries none. This coordinator adds `sync/group` (and `sync/source`) to a run
whose assets include a CRM source asset (or its reconcile asset) when the run is submitted,
before it is queued: the queue daemon reads the tags of queued and running runs from run
storage (QueuedRunCoordinatorDaemon, TagConcurrencyLimitsCounter), so the limit then holds for
every CRM run. A source's group comes from its asset's definition metadata (`group`,
catalog.source_metadata), read through the workspace's asset graph, so the coordinator needs
no import of the code location.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from dagster import AssetKey
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

GROUP_TAG = "sync/group"
SOURCE_TAG = "sync/source"
GROUP_METADATA = "group"  # on every source asset (catalog.source_metadata)
CRM = "crm"
_IMPLICIT_JOB = "__ASSET_JOB"

logger = logging.getLogger(__name__)


def _text(value) -> str | None:
    if value is None:
        return None
    inner = getattr(value, "value", getattr(value, "text", value))
    return inner if isinstance(inner, str) else None


def run_asset_keys(run: DagsterRun, asset_graph) -> set[AssetKey]:
    """The assets a run materializes: its selection, else every asset of its job."""
    if run.asset_selection:
        return set(run.asset_selection)
    if not run.job_name or run.job_name.startswith(_IMPLICIT_JOB):
        return set()
    return {node.key for node in asset_graph.asset_nodes if run.job_name in node.job_names}


def crm_sources(keys: Iterable[AssetKey], asset_graph) -> list[str]:
    """The CRM sources among the assets: each asset tagged `sync/source=<name>` (a source
    asset or its reconcile asset) whose source asset says group `crm`."""
    found = set()
    for key in keys:
        if not asset_graph.has(key):
            continue
        source = asset_graph.get(key).tags.get(SOURCE_TAG)
        if not source or not asset_graph.has(AssetKey([source])):
            continue
        metadata = asset_graph.get(AssetKey([source])).metadata
        if _text(metadata.get(GROUP_METADATA)) == CRM:
            found.add(source)
    return sorted(found)


def crm_tags(run: DagsterRun, asset_graph) -> dict[str, str]:
    """The tags a run must carry (empty for a run of no CRM asset)."""
    sources = crm_sources(run_asset_keys(run, asset_graph), asset_graph)
    if not sources:
        return {}
    tags = {GROUP_TAG: CRM}
    if len(sources) == 1 and SOURCE_TAG not in run.tags:
        tags[SOURCE_TAG] = sources[0]
    return tags


def missing(run_tags: Mapping[str, str], tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if run_tags.get(k) != v}


class CrmTaggingRunCoordinator(QueuedRunCoordinator):
    """QueuedRunCoordinator that tags CRM runs before queuing them (see module docstring)."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        try:
            tags = missing(run.tags, crm_tags(run, context.workspace.asset_graph))
        except Exception:  # never refuse a run because its assets are unknown
            logger.exception(f"could not read the assets of run {run.run_id}; queued untagged")
            tags = {}
        if tags:
            self._instance.add_run_tags(run.run_id, tags)
            run = self._instance.get_run_by_id(run.run_id) or run.with_tags({**run.tags, **tags})
            context = SubmitRunContext(run, context.workspace)
        return super().submit_run(context)
