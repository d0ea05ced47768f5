"""The run coordinator tags a run of a CRM asset `sync/group=crm` (and `sync/source`) when it
is submitted, whatever launched it: a run from the UI (an asset selection, no job tags), a
run of a job (no selection), not a run of a knowledge source. The daemon test
(test_crm_concurrency.py) shows the queue then holds the limit."""

import sys
import textwrap

import pytest
from dagster import AssetKey, DagsterRunStatus, instance_for_test
from dagster._core.test_utils import create_run_for_test, in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from sync_pipelines.run_coordinator import CrmTaggingRunCoordinator
from sync_pipelines.sources import registry
from sync_pipelines_tests.test_crm_concurrency import SOURCE_TEXT

DEFS = """
import sync_pipelines.sources as sources_package
from dagster import Definitions, define_asset_job
from sync_pipelines.definitions import build_resources, slack_asset
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset

sources_package.__path__.append(FOLDER)
registry.refresh()
crm = build_source_asset(registry.declaration("crmq1"))
shared = build_resources()
defs = Definitions(
    assets=[crm, slack_asset],
    jobs=[define_asset_job("crm_job", selection=[crm])],
    resources={k: shared[k] for k in ("connections", "documents", "warehouse", "slack")}
    | {"crmq1": registry.declaration("crmq1").resource_from_env()},
)
"""


@pytest.fixture
def submit(tmp_path):
    """submit(job_name, asset_selection) -> the run as stored after submission."""
    import sync_pipelines.sources as sources_package

    folder = tmp_path / "sources"
    (folder / "crmq1").mkdir(parents=True)
    (folder / "crmq1" / "__init__.py").write_text(
        textwrap.dedent(SOURCE_TEXT.format(name="crmq1", upper="CRMQ1"))
    )
    (tmp_path / "defs.py").write_text(DEFS.replace("FOLDER", repr(str(folder))))
    overrides = {
        "run_coordinator": {
            "module": "sync_pipelines.run_coordinator",
            "class": "CrmTaggingRunCoordinator",
        }
    }
    origin = LoadableTargetOrigin(python_file=str(tmp_path / "defs.py"), attribute="defs")
    with (
        instance_for_test(overrides=overrides) as instance,
        in_process_test_workspace(instance, origin) as workspace,
    ):
        assert isinstance(instance.run_coordinator, CrmTaggingRunCoordinator)

        (entry,) = workspace.get_code_location_entries().values()
        (repository,) = entry.code_location.get_repositories().values()

        def run(job_name, selection=None):
            job = repository.get_full_job(job_name)
            created = create_run_for_test(
                instance,
                job_name=job_name,
                asset_selection=selection,
                status=DagsterRunStatus.NOT_STARTED,
                remote_job_origin=job.get_remote_origin(),
                job_code_origin=job.get_python_origin(),
            )
            instance.submit_run(created.run_id, workspace)
            return instance.get_run_by_id(created.run_id)

        yield run
    if str(folder) in sources_package.__path__:  # the defs file added it in this process
        sources_package.__path__.remove(str(folder))
    sys.modules.pop("sync_pipelines.sources.crmq1", None)
    registry.refresh()


def test_a_ui_run_of_a_crm_asset_is_tagged(submit):
    run = submit("__ASSET_JOB", {AssetKey("crmq1")})
    assert run.status == DagsterRunStatus.QUEUED
    assert (run.tags["sync/group"], run.tags["sync/source"]) == ("crm", "crmq1")


def test_a_job_run_without_a_selection_is_tagged_by_its_job(submit):
    assert submit("crm_job").tags["sync/group"] == "crm"


def test_a_knowledge_run_is_left_alone(submit):
    run = submit("__ASSET_JOB", {AssetKey("slack")})
    assert run.status == DagsterRunStatus.QUEUED and "sync/group" not in run.tags
