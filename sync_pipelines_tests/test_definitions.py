"""The code location loads with no credentials, its sensors keep partitions in step, and
vector_index is requested once after a source partition lands."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagster import (
    instance_for_test,
    Definitions,
    SensorResult,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)

from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.resources import ConnectionRegistry

ROOT = Path(__file__).resolve().parents[1]
CREDENTIAL_VARS = [
    "SLACK_BOT_TOKEN",
    "OPENAI_API_KEY",
    "PINECONE_API_KEY",
    "SYNC_CONNECTIONS_FILE",
    "SYNC_EMBEDDER",
    "SYNC_VECTOR_STORE",
]


@pytest.fixture
def stack():
    with contextlib.ExitStack() as exit_stack:
        yield exit_stack


def clean_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env["DAGSTER_HOME"] = str(tmp_path)
    return env


def test_definitions_load_and_validate():
    from sync_pipelines.definitions import defs

    Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"slack", "vector_index"} <= keys


def test_cli_validate_with_no_credentials(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unconfigured_source_fails_its_run_with_a_clear_message(tmp_path, monkeypatch, stack):
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    from sync_pipelines.definitions import slack_asset
    from sync_pipelines.resources import DocumentStore
    from sync_pipelines.sources.slack.client import SlackResource

    instance = stack.enter_context(instance_for_test())
    instance.add_dynamic_partitions(connections_partitions_name("slack"), ["default"])
    result = materialize(
        [slack_asset],
        partition_key="default|2026-11-01",
        instance=instance,
        resources={
            "connections": ConnectionRegistry(),
            "documents": DocumentStore(root=str(tmp_path / "docs")),
            "slack": SlackResource(),
        },
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "no slack connection 'default'" in message and "SLACK_BOT_TOKEN" in message


def test_connections_sensor_tracks_active_connections(tmp_path, stack):
    from sync_pipelines.alerts import AlertsResource
    from sync_pipelines.definitions import defs

    registry = tmp_path / "connections.yaml"
    registry.write_text(
        "connections:\n  - {id: acme, source: slack}\n  - {id: globex, source: slack}\n"
    )
    sensor = defs.get_sensor_def("connections_sensor")
    instance = stack.enter_context(instance_for_test())
    resources = {"connections": ConnectionRegistry(path=str(registry)), "alerts": AlertsResource()}

    def tick():
        context = build_sensor_context(instance=instance, resources=resources)
        result = sensor(context)
        if isinstance(result, SensorResult):
            for request in result.dynamic_partitions_requests:
                if type(request).__name__ == "AddDynamicPartitionsRequest":
                    instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
                else:
                    for key in request.partition_keys:
                        instance.delete_dynamic_partition(request.partitions_def_name, key)
        return result

    assert isinstance(tick(), SensorResult)
    assert sorted(instance.get_dynamic_partitions("slack_connections")) == ["acme", "globex"]
    assert not tick().dynamic_partitions_requests  # nothing changed

    registry.write_text(
        "connections:\n  - {id: acme, source: slack}\n"
        "  - {id: globex, source: slack, active: false}\n"
    )
    tick()
    assert instance.get_dynamic_partitions("slack_connections") == ["acme"]

    registry.write_text("connections:\n  - {id: Bad Id, source: slack}\n")
    result = tick()
    assert "1 invalid registry entry" in result.skip_reason.skip_message
    assert instance.get_dynamic_partitions("slack_connections") == ["acme"]


def test_vector_index_requested_once_after_a_source_partition_lands(tmp_path, stack):
    from sync_pipelines.definitions import defs, slack_asset
    from dagster import AssetKey, AssetMaterialization

    instance = stack.enter_context(instance_for_test())
    instance.add_dynamic_partitions("slack_connections", ["acme"])
    result = evaluate_automation_conditions(defs=defs, instance=instance)
    cursor = result.cursor
    # A source partition lands (recorded as a materialization of one partition).
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key=slack_asset.key, partition="acme|2026-11-01")
    )
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    # Only vector_index carries an automation condition, so the one request is for it.
    assert result.total_requested == 1
    assert result.get_num_requested(AssetKey("vector_index")) == 1
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.total_requested == 0
