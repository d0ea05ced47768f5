"""ENABLE_<SOURCE> gates: a source off by default runs only when its variable says true, any
source is switched off by false, anything else is an error naming the variable; a gated
source still shows (its asset exists and says why it is off) and its schedule's ticks skip
with the reason. CRM syncs get the `warehouse` resource without listing it."""

from dataclasses import replace

import pytest
from dagster import instance_for_test

from sync_pipelines import clock
from sync_pipelines.catalog import source_metadata
from sync_pipelines.schedules import build_source_schedule
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset
from sync_pipelines.sources.declaration import SourceDeclaration
from sync_pipelines.sources.registry import declaration
from sync_pipelines_tests.test_operations import tick


@pytest.fixture
def gated() -> SourceDeclaration:
    """Slack as if it were a source off by default (ENABLE_SLACK)."""
    return replace(declaration("slack"), enabled_by_default=False)


def test_a_source_off_by_default_needs_its_switch(gated, monkeypatch):
    monkeypatch.delenv("ENABLE_SLACK", raising=False)
    assert "set ENABLE_SLACK=true" in gated.disabled_reason()
    for value in ("true", "TRUE", "1", "yes"):
        monkeypatch.setenv("ENABLE_SLACK", value)
        assert gated.disabled_reason() is None
    monkeypatch.setenv("ENABLE_SLACK", "false")
    assert gated.disabled_reason() == "slack is disabled by ENABLE_SLACK=false"


def test_false_switches_any_source_off_and_nonsense_is_an_error(monkeypatch):
    source = declaration("slack")
    assert source.enabled_by_default and source.enable_env == "ENABLE_SLACK"
    for value in ("false", "0", "No"):
        monkeypatch.setenv("ENABLE_SLACK", value)
        assert f"disabled by ENABLE_SLACK={value}" in source.disabled_reason()
    monkeypatch.setenv("ENABLE_SLACK", "maybe")
    with pytest.raises(ValueError, match="ENABLE_SLACK must be true or false.*'maybe'"):
        source.disabled_reason()
    monkeypatch.setenv("ENABLE_SLACK", "")
    assert source.disabled_reason() is None  # empty: as if unset


def test_a_gated_source_shows_why_and_its_ticks_skip(gated, tmp_path, monkeypatch):
    from sync_pipelines.definitions import source_sync_job

    monkeypatch.delenv("ENABLE_SLACK", raising=False)
    asset = build_source_asset(gated)  # the asset exists
    status = asset.specs_by_key[asset.key].metadata["status"]
    assert status == "off: slack is off by default: set ENABLE_SLACK=true to turn it on"
    assert source_metadata(declaration("slack"))["status"] == "on"

    registry = tmp_path / "connections.yaml"
    registry.write_text("connections:\n  - {id: acme, source: slack}\n")
    schedule = build_source_schedule(gated, source_sync_job(gated, asset))
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("slack_connections", ["acme"])
        requests, skip = tick(schedule, instance, registry, clock.now())
        assert not requests and "set ENABLE_SLACK=true" in skip
        monkeypatch.setenv("ENABLE_SLACK", "true")
        requests, _ = tick(schedule, instance, registry, clock.now())
        assert [r.tags["sync/group"] for r in requests] == ["knowledge"]


def test_crm_syncs_get_the_warehouse_resource():
    from sync_pipelines.warehouse.crm import crm_sync
    from sync_pipelines.warehouse.tables import Table

    slack = declaration("slack")
    crm = replace(slack, group="crm", sync=crm_sync([Table("things", ("id",), lambda run: [])]))
    assert "warehouse" in crm.extra_resource_keys
    assert "warehouse" not in slack.extra_resource_keys
    assert "warehouse" not in replace(slack, group="crm").extra_resource_keys  # loads nothing
    assert "warehouse" in build_source_asset(crm).required_resource_keys
    crm_sources = [d for d in registry.declarations() if d.group == "crm"]
    assert all("warehouse" in d.extra_resource_keys for d in crm_sources)
