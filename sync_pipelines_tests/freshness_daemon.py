"""Dagster's freshness evaluation, run in-process exactly as dagster-daemon's FRESHNESS_DAEMON
runs it on the code location (it writes the FRESHNESS_STATE_CHANGE events the alert sensor
reads), and materializations stored at a chosen past instant, so staleness needs no waiting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    EventLogEntry,
)
from dagster._core.events import StepMaterializationData
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import make_new_run_id
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon


@contextmanager
def freshness_daemon(
    instance: DagsterInstance, module: str = "sync_pipelines.definitions"
) -> Iterator[Callable[[], None]]:
    """A function running one iteration of the freshness daemon over `module`'s `defs`."""
    target = InProcessWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name=module, attribute="defs"),
            location_name="sync_pipelines",
        )
    )
    with create_test_daemon_workspace_context(target, instance) as workspace:
        daemon = FreshnessDaemon()
        yield lambda: list(daemon.run_iteration(workspace))


def store_materialization(
    instance: DagsterInstance, asset: str, partition: str, at: float
) -> None:
    """A materialization of `asset`'s `partition` recorded as having happened at `at`."""
    instance.store_event(
        EventLogEntry(
            error_info=None,
            user_message="",
            level="debug",
            run_id=make_new_run_id(),
            timestamp=at,
            dagster_event=DagsterEvent(
                DagsterEventType.ASSET_MATERIALIZATION.value,
                "test",
                event_specific_data=StepMaterializationData(
                    materialization=AssetMaterialization(asset_key=asset, partition=partition)
                ),
            ),
        )
    )


def freshness_state(instance: DagsterInstance, asset: str) -> str | None:
    record = instance.get_freshness_state_records([AssetKey(asset)]).get(AssetKey(asset))
    return record.freshness_state.value if record is not None else None
