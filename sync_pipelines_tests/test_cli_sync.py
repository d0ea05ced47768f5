"""`sync-pipelines sync` in-process against the Slack emulator: a connection that has no
partition yet is registered and synced for a day or a range, in runs of at most 11 days."""

from __future__ import annotations

import re

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN

from sync_pipelines.cli import main
from sync_pipelines.partitions import connections_partitions_name, partition_key
from sync_pipelines.sources import registry
from sync_pipelines_tests.conftest import day

NO_PACING = "    options: {tier_limits_per_minute: {tier2: 0, tier3: 0, tier4: 0}}\n"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A DAGSTER_HOME with no partitions, a registry with `fresh` (good token), `revoked` (bad
    token) and `paused` (inactive), and a data folder: what a new deployment has."""
    home = tmp_path / "home"
    home.mkdir()
    registry = tmp_path / "connections.yaml"
    # Input checks stop before any call; `slack_home` points the registry at the emulator.
    registry.write_text(registry_text("http://127.0.0.1:9/api/"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SYNC_CONNECTIONS_FILE", str(registry))
    monkeypatch.setenv("SYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TEST_FRESH_TOKEN", SANDBOX_SLACK_TOKEN)
    monkeypatch.setenv("TEST_REVOKED_TOKEN", "xoxb-revoked")
    return home


def registry_text(slack_url: str) -> str:
    return "connections:\n" + "".join(
        f"  - id: {cid}\n    source: slack\n    base_url: {slack_url}\n"
        f"    credentials: {{token: {env}}}\n{NO_PACING}" + ("    active: false\n" if off else "")
        for cid, env, off in [
            ("fresh", "TEST_FRESH_TOKEN", False),
            ("revoked", "TEST_REVOKED_TOKEN", False),
            ("paused", "TEST_FRESH_TOKEN", True),
        ]
    )


@pytest.fixture
def slack_home(home, sandbox, tmp_path):
    (tmp_path / "connections.yaml").write_text(registry_text(sandbox.urls["slack"]))
    return home


def documents_by_partition(home, days: list[str], connection: str = "fresh") -> dict[str, int]:
    with DagsterInstance.from_config(str(home)) as instance:
        found = {}
        for d in days:
            records = instance.fetch_materializations(
                AssetRecordsFilter(
                    asset_key=AssetKey("slack"),
                    asset_partitions=[str(partition_key(d, connection))],
                ),
                limit=1,
            ).records
            if records:
                found[d] = records[0].asset_materialization.metadata["documents_written"].value
        return found


def written(out: str) -> list[int]:
    return [int(n) for n in re.findall(r"SUCCESS: (\d+) documents written", out)]


def test_sync_one_day_registers_the_connection_first(slack_home, capsys):
    with DagsterInstance.from_config(str(slack_home)) as instance:
        assert not instance.has_dynamic_partition(connections_partitions_name("slack"), "fresh")

    assert main(["sync", "slack", "--connection", "fresh", "--day", day(-1)]) == 0
    out = capsys.readouterr().out
    assert "registered slack connection 'fresh' as a partition" in out
    assert f"run 1/1: slack 'fresh' {day(-1)} (1 partition)" in out
    with DagsterInstance.from_config(str(slack_home)) as instance:
        assert instance.has_dynamic_partition(connections_partitions_name("slack"), "fresh")
    assert written(out) == [documents_by_partition(slack_home, [day(-1)])[day(-1)]]
    assert written(out)[0] > 0

    # Registered once: the next sync goes straight to its run.
    assert main(["sync", "slack", "--connection", "fresh", "--day", day(-1)]) == 0
    assert "registered" not in capsys.readouterr().out


def test_sync_a_range_runs_at_most_11_days_per_run(slack_home, capsys):
    days = [day(n) for n in range(-12, 0)]
    args = ["sync", "slack", "--connection", "fresh", "--from", days[0], "--to", days[-1]]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"run 1/2: slack 'fresh' {days[0]}..{days[10]} (11 partitions)" in out
    assert f"run 2/2: slack 'fresh' {days[11]} (1 partition)" in out
    per_day = documents_by_partition(slack_home, days)
    assert set(per_day) == set(days), "every day of the range materialized"
    assert sum(written(out)) == sum(per_day.values()) > 0


def test_a_failed_run_exits_non_zero_with_its_reason(slack_home, capsys):
    assert main(["sync", "slack", "--connection", "revoked", "--from", day(-13)]) == 1
    out = capsys.readouterr().out
    assert "FAILURE: 0 documents written" in out and "Slack rejected the credentials" in out
    assert "stopped: 1 run(s), 3 day(s) not synced" in out
    assert "xoxb-revoked" not in out


# Lambdas: the dates are read once the clock is pinned, not at collection.
@pytest.mark.parametrize(
    "case",
    [
        lambda: (["--day", "2026-13-01"], "--day '2026-13-01' is not a calendar date"),
        lambda: (["--day", "20261101"], "--day '20261101' is not a date in YYYY-MM-DD form"),
        lambda: (["--from", day(-1), "--to", day(-3)], f"--from {day(-1)} is after --to {day(-3)}"),
        lambda: (["--day", day(1)], f"{day(1)} is after today ({day(0)} UTC)"),
        lambda: (["--day", day(-1), "--from", day(-2)], "either --day or --from/--to, not both"),
        lambda: ([], "give --day YYYY-MM-DD, or --from YYYY-MM-DD [--to YYYY-MM-DD]"),
        lambda: (["--day", "1999-12-31"], "1999-12-31 is before the first partition ("),
    ],
    ids=["month-13", "no-dashes", "from-after-to", "tomorrow", "day-and-from", "none", "too-old"],
)
def test_sync_days_are_checked(home, capsys, case):
    args, message = case()
    assert main(["sync", "slack", "--connection", "fresh", *args]) == 2
    assert message in capsys.readouterr().err


def test_sync_names_what_is_wrong_with_source_connection_or_instance(home, capsys, monkeypatch):
    assert main(["sync", "nosuchsource", "--connection", "fresh", "--day", day(-1)]) == 2
    listed = ", ".join(registry.names())
    assert f"unknown source 'nosuchsource'; sources: {listed}" in capsys.readouterr().err
    assert main(["sync", "slack", "--connection", "acme", "--day", day(-1)]) == 2
    assert "known slack connections: ['fresh', 'paused', 'revoked']" in capsys.readouterr().err
    assert main(["sync", "slack", "--connection", "paused", "--day", day(-1)]) == 2
    assert "'paused' is inactive in the registry" in capsys.readouterr().err
    monkeypatch.delenv("DAGSTER_HOME")
    assert main(["sync", "slack", "--connection", "fresh", "--day", day(-1)]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err
