"""The code location the CRM concurrency test serves to a real `dagster-daemon`: throw-away
CRM sources (folders the test wrote under $CRM_DAEMON_SOURCES, each a `group="crm"`
declaration whose sync takes a few seconds) with the real shared asset, resources and
connections. Nothing tags their runs but the run coordinator."""

import os

from dagster import Definitions

import sync_pipelines.sources as sources_package
from sync_pipelines.definitions import build_resources
from sync_pipelines.sources import registry
from sync_pipelines.sources.base import build_source_asset

FOLDER_ENV = "CRM_DAEMON_SOURCES"

if os.environ.get(FOLDER_ENV):
    sources_package.__path__.append(os.environ[FOLDER_ENV])
    registry.refresh()
CRM = [d for d in registry.declarations() if d.group == "crm" and d.name.startswith("crmq")]

_SHARED = build_resources()

defs = Definitions(
    assets=[build_source_asset(d) for d in CRM],
    resources={
        **{k: _SHARED[k] for k in ("connections", "documents", "warehouse")},
        **{d.name: d.resource_from_env() for d in CRM},
    },
)
