"""The code location loads with no credentials and no warnings, its asset pages say who owns
them, how they run and why a source may have no partitions, its sensors keep partitions in
step, and vector_index is requested once after a source partition lands."""

import contextlib
import json
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

from sync_pipelines.catalog import asset_owners, connection_hints
from sync_pipelines.connections import load_registry
from sync_pipelines.partitions import connections_partitions_name
from sync_pipelines.resources import ConnectionRegistry
from sync_pipelines.sources.registry import declaration

ROOT = Path(__file__).resolve().parents[1]
CREDENTIAL_VARS = [
    "SLACK_BOT_TOKEN",
    "OPENAI_API_KEY",
    "PINECONE_API_KEY",
    "SYNC_CONNECTIONS_FILE",
    "SYNC_EMBEDDER",
    "SYNC_VECTOR_STORE",
    "SYNC_ASSET_OWNERS",
]
# Loads the code location in a fresh process (warnings on) and prints what the asset pages show.
DESCRIBE_ASSETS = """
import json, warnings
warnings.simplefilter("always")
from sync_pipelines.definitions import defs
pages = {}
for key in defs.resolve_all_asset_keys():
    spec = defs.get_assets_def(key).get_asset_spec(key)
    pages[key.to_user_string()] = {
        "owners": list(spec.owners), "connections": spec.metadata.get("connections")
    }
print(json.dumps(pages))
"""


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


def load_in_fresh_process(tmp_path, **env) -> tuple[dict, str]:
    result = subprocess.run(
        [sys.executable, "-c", DESCRIBE_ASSETS],
        cwd=tmp_path,
        env={**clean_env(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


def test_load_without_a_registry_warns_nothing_and_says_why_partitions_are_empty(tmp_path):
    pages, stderr = load_in_fresh_process(tmp_path)
    assert "SupersessionWarning" not in stderr
    assert pages["slack"]["connections"].startswith(
        "none active: no registry file and SLACK_BOT_TOKEN is not set; "
        "see connections.yaml (SYNC_CONNECTIONS_FILE)"
    )
    assert pages["vector_index"]["connections"] is None
    assert all(page["owners"] == ["team:data-platform"] for page in pages.values())


def test_load_shows_configured_owners_and_active_connections(tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "connections:\n  - {id: acme, source: slack}\n"
        "  - {id: old, source: jira, active: false}\n"
    )
    pages, _ = load_in_fresh_process(
        tmp_path,
        SYNC_ASSET_OWNERS=" team:search, ana@acme.test ",
        SYNC_CONNECTIONS_FILE=str(registry),
    )
    assert pages["slack"]["connections"] == "1 active at load: acme"
    assert pages["jira"]["connections"].startswith(f"none active in {registry};")
    assert all(page["owners"] == ["team:search", "ana@acme.test"] for page in pages.values())


def test_asset_pages_carry_definition_metadata():
    from sync_pipelines.definitions import SOURCE_NAMES, defs, resources

    for name in SOURCE_NAMES:
        row = declaration(name)
        metadata = defs.get_assets_def(name).get_asset_spec().metadata
        assert metadata["api_docs"].url == row.docs_url and row.docs_url.startswith("https://")
        assert metadata["cadence"].startswith(row.cadence) and row.cron in metadata["cron"]
        assert metadata["freshness_limit"] == f"{row.freshness_minutes} min"
        assert metadata["pool"] == row.pool
        assert "connections" in metadata
    index = defs.get_assets_def("vector_index").get_asset_spec().metadata
    assert index["embedder"] == resources["embedder"].kind
    assert index["vector_store"] == resources["vector_store"].kind


def test_an_unusable_registry_gives_a_hint_not_a_load_failure(tmp_path):
    registry = tmp_path / "connections.yaml"
    registry.write_text("connections: [{id: acme, source: slack, token: xoxb-SECRET-42\n")
    (hint,) = connection_hints(["slack"], lambda: load_registry(registry)).values()
    assert hint.startswith("unknown: the connection registry cannot be used (RegistryError;")
    assert "SECRET" not in hint and "xoxb" not in hint

    registry.write_text(
        "connections:\n  - {id: Bad Id, source: slack}\n  - {id: acme, source: jira}\n"
    )
    hints = connection_hints(["slack", "jira"], lambda: load_registry(registry))
    assert hints["slack"] == (
        f"none active in {registry}, 1 invalid entry (the connections_sensor says which); "
        "see connections.yaml (SYNC_CONNECTIONS_FILE)"
    )
    assert hints["jira"] == "1 active at load: acme"


@pytest.mark.parametrize(
    "value, owners",
    [
        ("", ["team:data-platform"]),
        ("team:search", ["team:search"]),
        ("team:data-platform, ana.ruiz@acme.test,", ["team:data-platform", "ana.ruiz@acme.test"]),
    ],
)
def test_owners_come_from_the_environment(value, owners):
    assert asset_owners({"SYNC_ASSET_OWNERS": value}) == owners


@pytest.mark.parametrize("value", ["data-platform", "team:", "team:data platform", "ana@acme"])
def test_invalid_owners_name_the_variable_and_the_expected_shape(value):
    with pytest.raises(ValueError, match="SYNC_ASSET_OWNERS has invalid owner") as error:
        asset_owners({"SYNC_ASSET_OWNERS": f"team:ok,{value}"})
    assert "'team:<name>'" in str(error.value) and "email address" in str(error.value)


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
