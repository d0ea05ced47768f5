"""One declaration per source: the registry finds every source folder, nothing outside a
source's folder (or its emulator's) names it, no product module outgrows 400 lines, the
README's table follows the declarations, and a new folder shows up everywhere with no edit
elsewhere."""

import importlib
import re
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from dagster import ConfigurableResource, instance_for_test, materialize

import sync_pipelines
import sync_pipelines.sources as sources_package
import sync_pipelines_sandbox
from sync_pipelines.connections import Connection, default_connections, load_registry
from sync_pipelines.partitions import connections_partitions_name, partition_key
from sync_pipelines.resources import ConnectionRegistry, DocumentStore
from sync_pipelines.sources import registry
from sync_pipelines.sources.declaration import Cadence
from sync_pipelines_tests.conftest import day

PACKAGE = Path(sync_pipelines.__file__).parent
SANDBOX = Path(sync_pipelines_sandbox.__file__).parent
README = PACKAGE.parent / "README.md"
MAX_MODULE_LINES = 400
# The alerts post to a Slack channel with their own slack_sdk client: a transport, not the
# slack source. The word is allowed there and nowhere else; their code imports no source.
TRANSPORT_MENTIONS = {"alerts": {"slack"}}
# The retrieval evaluation's ground truth (bench/retrieval_eval.py) asks what the company said
# where, so it reads several emulators' data by design; nothing in the product imports it.
CROSS_SOURCE_SANDBOX_MODULES = {"retrieval_truth.py"}


def test_discovers_every_source_folder_in_schedule_order():
    folders = sorted(p.parent.name for p in (PACKAGE / "sources").glob("*/__init__.py"))
    assert sorted(registry.names()) == folders
    timing = [(d.cadence_minutes, d.offset_minutes) for d in registry.declarations()]
    assert timing == sorted(timing)
    listed = ", ".join(registry.names())
    with pytest.raises(KeyError, match=f"'nope' is not declared; sources: {listed}"):
        registry.declaration("nope")


def _mentions(text: str, names: set[str]) -> set[str]:
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
    return {m.lower() for m in pattern.findall(text)}


def _outside_source_folders(root: Path, parent: Path) -> list[Path]:
    """The modules under `root` that are not inside a source's own folder `parent/<name>/`."""
    folders = [parent / name for name in registry.names()]
    return [p for p in sorted(root.rglob("*.py")) if not any(p.is_relative_to(f) for f in folders)]


def test_no_product_module_outside_a_source_folder_names_a_source():
    names = set(registry.names())
    offenders = {}
    for path in _outside_source_folders(PACKAGE, PACKAGE / "sources"):
        relative = path.relative_to(PACKAGE)
        allowed = TRANSPORT_MENTIONS.get(relative.parts[0], set())
        text = path.read_text(encoding="utf-8")
        named = _mentions(text, names) - allowed
        if named:
            offenders[str(relative)] = sorted(named)
        for name in allowed:
            assert f"sources.{name}" not in text, f"{relative} imports the {name} source"
    assert offenders == {}


def test_no_sandbox_module_outside_an_emulator_folder_names_a_source():
    """The sandbox's shared modules (server, company, knobs, the generic emulator...) serve
    every vendor alike; openai_api and pinecone_api are the index's services, not sources."""
    names = set(registry.names())
    modules = _outside_source_folders(SANDBOX, SANDBOX)
    assert {"server.py", "company.py", "openai_api.py"} <= {p.name for p in modules}
    offenders = {
        str(path.relative_to(SANDBOX)): sorted(named)
        for path in modules
        if path.name not in CROSS_SOURCE_SANDBOX_MODULES
        and (named := _mentions(path.read_text(encoding="utf-8"), names))
    }
    assert offenders == {}


def test_no_product_module_is_over_400_lines():
    lines = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    longest = max(lines, key=lines.__getitem__)
    over = {module: n for module, n in lines.items() if n > MAX_MODULE_LINES}
    assert over == {}, f"split them; the longest is {longest} ({lines[longest]} lines)"


def test_the_name_check_sees_identifiers_docstrings_and_any_case():
    module = '"""Posts to Jira."""\nfrom x import slack\nNOTION = 1'
    assert _mentions(module, {"slack", "jira", "notion"}) == {"slack", "jira", "notion"}
    assert _mentions("slackline jiras", {"slack", "jira"}) == set()


def readme_rows() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    header = "| source | cadence | starts at minute | stale after |\n|---|---|---|---|\n"
    table = text.split(header)[1]
    rows = []
    for line in table.splitlines():
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_readme_source_table_follows_the_declarations():
    expected = [
        [
            d.name,
            d.cadence.removeprefix("every "),
            ", ".join(d.cron.split()[0].split(",")),
            f"{d.freshness_minutes} min",
        ]
        for d in registry.declarations()
    ]
    assert readme_rows() == expected


THROWAWAY = '''
"""A throw-away source: declared in its folder, named nowhere else."""

from sync_pipelines.resilience import CallStats
from sync_pipelines.sources.base import SyncOutcome
from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.options import OptionsModel
from sync_pipelines.sources.resource import SourceResourceBase


class WidgetsResource(SourceResourceBase):
    ENV_PREFIX = "WIDGETS"
    DEFAULT_BASE_URL = "https://api.widgets.test"
    DOCUMENTED_RATE_PER_S = 2.0

    def client_for(self, connection):
        return self.http_client(connection)


class WidgetsOptions(OptionsModel):
    colour: str = "blue"


def sync(run):
    return SyncOutcome([], run.window.end_epoch, CallStats(), {"colour": run.options.colour})


SOURCE = SourceDeclaration(
    name="widgets",
    resource=WidgetsResource,
    sync=sync,
    options=WidgetsOptions,
    description="Widgets of a throw-away vendor.",
    schedule=Cadence(every_minutes=120, at_minute=17, stale_after_minutes=240),
    credentials_env={"token": "WIDGETS_TOKEN"},
    docs_url="https://docs.widgets.test/",
    group="crm",
)
'''


@pytest.fixture
def widgets(tmp_path, monkeypatch):
    """A `widgets` source folder in tmp_path, on the sources package's search path."""
    # The code location's module-level Definitions are built without it, whichever test
    # imports the module first.
    importlib.import_module("sync_pipelines.definitions")
    folder = tmp_path / "widgets"
    folder.mkdir()
    (folder / "__init__.py").write_text(textwrap.dedent(THROWAWAY))
    monkeypatch.setattr(sources_package, "__path__", [*sources_package.__path__, str(tmp_path)])
    registry.refresh()
    yield registry.declaration("widgets")
    sys.modules.pop("sync_pipelines.sources.widgets", None)
    monkeypatch.undo()
    registry.refresh()


def test_a_new_source_folder_appears_everywhere_with_no_edit_elsewhere(
    widgets, tmp_path, monkeypatch
):
    from sync_pipelines.definitions import build_definitions

    monkeypatch.setenv("WIDGETS_TOKEN", "secret")
    monkeypatch.setenv("WIDGETS_BASE_URL", "https://eu.widgets.test")
    monkeypatch.setenv("WIDGETS_RATE_PER_S", "0.5")
    monkeypatch.delenv("SYNC_CONNECTIONS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    defs = build_definitions()

    asset = defs.get_assets_def("widgets")
    spec = asset.get_asset_spec()
    assert spec.freshness_policy.fail_window.to_timedelta() == timedelta(minutes=240)
    assert asset.op.pool == "widgets_api" and spec.metadata["pool"] == "widgets_api"
    assert spec.metadata["connections"] == "1 active at load: default"
    schedule = defs.get_schedule_def("widgets_schedule")
    assert schedule.cron_schedule == "17 */2 * * *" and schedule.job_name == "widgets_sync"
    assert defs.resolve_job_def("widgets_sync").tags["sync/group"] == "crm"
    resource = defs.resources["widgets"]
    assert (resource.base_url_for(Connection("x", "widgets")), resource.pace()) == (
        "https://eu.widgets.test",
        0.5,
    )

    (default,) = [c for c in default_connections() if c.source == "widgets"]
    assert default.base_url == "https://eu.widgets.test"
    registry_file = tmp_path / "connections.yaml"
    registry_file.write_text(
        "connections:\n  - {id: acme, source: widgets, credentials: {token: WIDGETS_TOKEN}, "
        "options: {colour: red}}\n"
    )
    assert [c.id for c in load_registry(registry_file).active("widgets")] == ["acme"]

    with instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions_name("widgets"), ["acme"])
        result = materialize(
            [asset],
            instance=instance,
            partition_key=partition_key(day(-1), "acme"),
            resources={
                "connections": ConnectionRegistry(path=str(registry_file)),
                "documents": DocumentStore(root=str(tmp_path / "documents")),
                "widgets": resource,
            },
        )
    (event,) = result.asset_materializations_for_node("widgets")
    assert event.metadata["colour"].value == "red"  # options parsed by its declared model


def test_a_bad_declaration_is_refused_naming_what_is_wrong(widgets, monkeypatch):
    from dataclasses import replace

    monkeypatch.setenv("WIDGETS_RATE_PER_S", "fast")
    with pytest.raises(ValueError, match="WIDGETS_RATE_PER_S must be a number of requests"):
        widgets.resource_from_env().pace()
    with pytest.raises(ValueError, match="widgets: ConfigurableResource must extend SourceResou"):
        replace(widgets, resource=ConfigurableResource)
    with pytest.raises(ValueError, match="WidgetsResource.ENV_PREFIX is 'WIDGETS', not 'GADGETS'"):
        replace(widgets, name="gadgets")
    with pytest.raises(ValueError, match="widgets: group 'sales' must be one of"):
        replace(widgets, group="sales")
    with pytest.raises(ValueError, match="widgets: cadence 25 must divide 60"):
        replace(widgets, schedule=Cadence(25, 17, 240))
    with pytest.raises(ValueError, match="source name 'Wid gets'"):
        replace(widgets, name="Wid gets")


def test_the_code_location_loads_without_the_sandbox():
    """The sandbox and its web stack are for the demo and the tests, never the code location."""
    import subprocess

    probe = (
        "import sys, warnings; warnings.simplefilter('ignore'); "
        "import sync_pipelines.definitions; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sync_pipelines_sandbox', 'starlette', 'uvicorn', 'graphql', 'h11'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
