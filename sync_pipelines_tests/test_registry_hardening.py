"""Issue 9, items 2-5: the connection registry never leaks a secret, never wipes partitions,
and never lets one bad entry stop the other connections."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import build_sensor_context, instance_for_test, materialize

from sync_pipelines.alerts import AlertsResource
from sync_pipelines.connections import (
    REGISTRY_PATH_ENV,
    Connection,
    CredentialError,
    RegistryError,
    load_registry,
    printable_env_name,
)
from sync_pipelines.partitions import connections_partitions_name, partition_key
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines.sensors import build_connections_sensor
from sync_pipelines.sources.slack.client import SlackResource
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN
from sync_pipelines_tests.conftest import day, write_registry

PASTED_TOKEN = "xoxb-FAKE4242-REGISTRY-LEAK"
# An inline secret that satisfies the registry's UPPER_SNAKE_CASE rule for env-var names.
NAME_LIKE_SECRET = "ATATT3REVIEWSECRET0042XYZ"
UNTERMINATED = (
    f'connections:\n  - id: acme\n    source: slack\n    credentials: {{token: "{PASTED_TOKEN}}}\n'
)
SENSOR = build_connections_sensor(["slack", "jira"])


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


def stored_text(instance) -> str:
    """Everything the instance wrote: run and event storage, compute logs."""
    return "\n".join(
        p.read_bytes().decode("latin-1")
        for p in Path(instance.root_directory).rglob("*")
        if p.is_file()
    )


def run_slack(instance, registry: Path, tmp_path: Path):
    """A Slack run of connection `acme` that fails before any request (no sandbox needed)."""
    from sync_pipelines.definitions import slack_asset

    instance.add_dynamic_partitions(connections_partitions_name("slack"), ["acme"])
    return materialize(
        [slack_asset],
        partition_key=partition_key(day(-1), "acme"),
        instance=instance,
        resources={
            "connections": ConnectionRegistry(path=str(registry)),
            "documents": DocumentStore(root=str(tmp_path / "docs")),
            "slack": SlackResource(),
        },
        raise_on_error=False,
    )


def failure_message(result) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.error.message


class Ticker:
    """Evaluates the connections sensor as the daemon does: applies its partition requests and
    carries its cursor."""

    def __init__(self, instance, path: str | None = None, alerts: AlertsResource | None = None):
        self.instance = instance
        self.path = path
        self.alerts = alerts or AlertsResource()
        self.cursor = None

    def __call__(self) -> str:
        registry = ConnectionRegistry() if self.path is None else ConnectionRegistry(path=self.path)
        context = build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"connections": registry, "alerts": self.alerts},
        )
        data = SENSOR.evaluate_tick(context)
        for request in data.dynamic_partitions_requests:
            if type(request).__name__ == "AddDynamicPartitionsRequest":
                self.instance.add_dynamic_partitions(
                    request.partitions_def_name, request.partition_keys
                )
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        self.cursor = data.cursor
        return data.skip_message

    def partitions(self, source: str = "slack") -> list[str]:
        return sorted(self.instance.get_dynamic_partitions(connections_partitions_name(source)))


# -- 2. A malformed registry never copies its content into errors ------------------------------


def test_yaml_error_gives_place_and_kind_but_no_content(tmp_path):
    path = tmp_path / "connections.yaml"
    path.write_text(UNTERMINATED)
    with pytest.raises(RegistryError) as raised:
        load_registry(path)
    message = str(raised.value)
    assert PASTED_TOKEN not in message and "credentials" not in message
    assert str(path) in message and "found unexpected end of stream" in message
    assert "line 5, column 1" in message and "line 4, column 26" in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_quoted_file_content_in_a_yaml_error_is_masked(tmp_path):
    path = tmp_path / "connections.yaml"
    path.write_text(f"connections: *{NAME_LIKE_SECRET}\n")
    with pytest.raises(RegistryError, match="found undefined alias") as raised:
        load_registry(path)
    assert NAME_LIKE_SECRET not in str(raised.value)


def test_malformed_registry_leaks_nothing_into_run_storage_or_the_sensor(tmp_path, instance):
    registry = tmp_path / "connections.yaml"
    registry.write_text(UNTERMINATED)
    result = run_slack(instance, registry, tmp_path)
    skip = Ticker(instance, str(registry))()
    assert PASTED_TOKEN not in stored_text(instance) and PASTED_TOKEN not in skip
    assert not result.success
    assert "not valid YAML at line 5, column 1" in failure_message(result)
    assert "registry unusable" in skip


# -- 3. An inline secret shaped like an env-var name is never echoed --------------------------


@pytest.mark.parametrize(
    "name, printable",
    [
        ("SLACK_BOT_TOKEN", True),
        ("TEST_SLACK_TOKEN_ACME", True),
        ("K8S_TOKEN", True),
        ("JIRA_TOKEN_ACME2", True),
        (NAME_LIKE_SECRET, False),
        ("AKIAIOSFODNN7EXAMPLE", False),
        ("JBSWY3DPEHPK3PXP", False),
        ("_".join(["TOKEN"] * 12), False),  # too long
    ],
)
def test_printable_env_name(name, printable):
    assert printable_env_name(name) is printable


def test_missing_variable_named_by_a_secret_is_not_echoed(monkeypatch):
    monkeypatch.delenv(NAME_LIKE_SECRET, raising=False)
    conn = Connection("acme", "jira", credentials={"api_token": NAME_LIKE_SECRET})
    with pytest.raises(CredentialError) as raised:
        conn.secret("api_token")
    assert NAME_LIKE_SECRET not in str(raised.value)
    assert "the credential field 'api_token' names no set environment variable" in str(raised.value)
    assert NAME_LIKE_SECRET not in repr(conn)


def test_name_like_secret_stays_out_of_the_run(tmp_path, instance, monkeypatch):
    monkeypatch.delenv(NAME_LIKE_SECRET, raising=False)
    registry = tmp_path / "connections.yaml"
    registry.write_text(
        f"connections:\n  - {{id: acme, source: slack, credentials: {{token: {NAME_LIKE_SECRET}}}}}\n"
    )
    result = run_slack(instance, registry, tmp_path)
    assert NAME_LIKE_SECRET not in stored_text(instance)
    assert not result.success
    assert "credential field 'token' names no set environment variable" in failure_message(result)


# -- 4. A registry that is empty, missing or unreadable removes no partition -------------------


@pytest.fixture
def synced(instance):
    """An instance whose Slack connections acme and globex have partitions."""
    instance.add_dynamic_partitions(connections_partitions_name("slack"), ["acme", "globex"])
    return instance


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "connections:\n", "connections: []\n"])
def test_empty_registry_removes_nothing(tmp_path, synced, text):
    registry = tmp_path / "connections.yaml"
    registry.write_text(text)
    ticker = Ticker(synced, str(registry))
    skip = ticker()
    assert ticker.partitions() == ["acme", "globex"]
    assert "lists no connections" in skip


def test_missing_explicit_registry_removes_nothing(tmp_path, synced):
    ticker = Ticker(synced, str(tmp_path / "gone.yaml"))
    assert "does not exist" in ticker()
    assert ticker.partitions() == ["acme", "globex"]


def test_unreadable_registry_removes_nothing(tmp_path, synced):
    ticker = Ticker(synced, str(tmp_path))  # a folder
    assert "cannot read the connection registry" in ticker()
    assert ticker.partitions() == ["acme", "globex"]


def test_empty_registry_variable_is_an_error_not_a_crash(tmp_path, synced, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(REGISTRY_PATH_ENV, "")
    ticker = Ticker(synced)
    assert f"is {REGISTRY_PATH_ENV} set to ''?" in ticker()
    assert ticker.partitions() == ["acme", "globex"]


def test_daemon_without_a_registry_file_only_adds(tmp_path, synced, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(REGISTRY_PATH_ENV, raising=False)
    monkeypatch.delenv("JIRA_API_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-default")
    ticker = Ticker(synced)
    skip = ticker()
    assert ticker.partitions() == ["acme", "default", "globex"]
    assert "partitions are only added" in skip
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    ticker()
    assert ticker.partitions() == ["acme", "default", "globex"]


def test_invalid_entries_keep_their_partitions(tmp_path, synced):
    registry = tmp_path / "connections.yaml"
    synced.add_dynamic_partitions(connections_partitions_name("slack"), ["initech", "umbrella"])
    registry.write_text(
        "connections:\n"
        "  - {id: acme, source: slack, active: maybe}\n"  # invalid: kept
        "  - {id: globex, source: slak}\n"  # unknown source: may be slack's globex, kept
        "  - {id: hooli, source: slack}\n"  # new: added
        "  - {id: initech, source: slack, active: false}\n"  # inactive: removed
    )  # umbrella is absent: removed
    ticker = Ticker(synced, str(registry))
    skip = ticker()
    assert ticker.partitions() == ["acme", "globex", "hooli"]
    assert "2 invalid registry entries" in skip and "active must be true or false" in skip


def test_registry_whose_entries_are_all_invalid_removes_nothing(tmp_path, synced):
    registry = tmp_path / "connections.yaml"
    registry.write_text("connections:\n  - {id: initech, source: teams}\n")
    ticker = Ticker(synced, str(registry))
    assert "unknown source 'teams'" in ticker()
    assert ticker.partitions() == ["acme", "globex"]


# -- 5. One bad entry stops nothing else -------------------------------------------------------

BAD_ENTRIES = "  - {id: acme, source: teams}\n  - {id: paused, source: slack, active: maybe}\n"


def test_bad_entries_do_not_stop_a_good_run_and_fail_their_own(harness):
    write_registry(harness.registry, harness.sandbox, extra=BAD_ENTRIES)
    harness.instance.add_dynamic_partitions(connections_partitions_name("slack"), ["paused"])
    assert harness.sync_slack([day(-1)]).success
    result = harness.sync_slack([day(-1)], connection="paused", raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "no valid slack connection 'paused'" in message
    assert "active must be true or false" in message


def test_bad_entries_are_reported_and_alerted_once_until_fixed(harness):
    write_registry(harness.registry, harness.sandbox, extra=BAD_ENTRIES)
    alerts = AlertsResource(
        slack_token=SANDBOX_SLACK_TOKEN, slack_base_url=harness.sandbox.urls["slack"]
    )
    ticker = Ticker(harness.instance, str(harness.registry), alerts)
    skip = ticker()
    assert "unknown source 'teams'" in skip and "active must be true or false" in skip
    (alert,) = [m["text"] for m in harness.sandbox.slack.posted]
    assert "2 new problem(s)" in alert and "unknown source 'teams'" in alert
    assert "connections[2] (acme)" in alert and "connections[3] (paused)" in alert

    ticker()
    assert len(harness.sandbox.slack.posted) == 1  # still broken: quiet

    write_registry(harness.registry, harness.sandbox, extra=BAD_ENTRIES.splitlines(True)[0])
    ticker()
    assert len(harness.sandbox.slack.posted) == 1  # one fixed: nothing new to say

    write_registry(harness.registry, harness.sandbox, extra=BAD_ENTRIES)
    ticker()
    assert len(harness.sandbox.slack.posted) == 2  # broken again: alerted again
    assert "1 new problem(s)" in harness.sandbox.slack.posted[1]["text"]


def test_unusable_registry_alerts_once_slack_takes_it(harness):
    harness.registry.write_text("")
    alerts = {"slack_base_url": harness.sandbox.urls["slack"]}
    ticker = Ticker(
        harness.instance, str(harness.registry), AlertsResource(slack_token="xoxb-wrong", **alerts)
    )
    ticker()
    assert harness.sandbox.slack.posted == []  # refused: tried again next tick
    ticker.alerts = AlertsResource(slack_token=SANDBOX_SLACK_TOKEN, **alerts)
    ticker()
    ticker()
    (alert,) = [m["text"] for m in harness.sandbox.slack.posted]
    assert "lists no connections" in alert
