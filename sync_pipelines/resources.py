"""Resources shared by every source: where the connection registry and the documents live."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines.connections import (
    DEFAULT_REGISTRY_PATH,
    REGISTRY_PATH_ENV,
    Connection,
    Registry,
    load_registry,
)
from sync_pipelines.documents import DocumentFiles

DATA_DIR_ENV = "SYNC_DATA_DIR"


def default_data_dir() -> str:
    """`$SYNC_DATA_DIR`, else `$DAGSTER_HOME/sync_data`, else `./.sync_data` (absolute)."""
    if os.environ.get(DATA_DIR_ENV):
        return str(Path(os.environ[DATA_DIR_ENV]).resolve())
    if os.environ.get("DAGSTER_HOME"):
        return str(Path(os.environ["DAGSTER_HOME"]).resolve() / "sync_data")
    return str(Path(".sync_data").resolve())


class ConnectionRegistry(ConfigurableResource):
    """The YAML connection registry (re-read on every use, so edits apply without a reload).

    Invalid entries do not stop valid ones: `active` and `get` see the valid connections, and
    `get` of an invalid entry fails naming the problem. `load` gives both, for the sensor."""

    path: str = Field(
        default_factory=lambda: os.environ.get(REGISTRY_PATH_ENV, DEFAULT_REGISTRY_PATH),
        description="Registry file; without it, `default` connections come from standard env vars.",
    )

    def load(self) -> Registry:
        return load_registry(self.path)

    def active(self, source: str) -> list[Connection]:
        return self.load().active(source)

    def get(self, source: str, connection_id: str) -> Connection:
        return self.load().get(source, connection_id)


class DocumentStore(ConfigurableResource):
    """Where source runs leave their documents for vector_index (Parquet, one file per run)."""

    root: str = Field(
        default_factory=lambda: str(Path(default_data_dir()) / "documents"),
        description="Folder of document files.",
    )

    def files(self) -> DocumentFiles:
        return DocumentFiles(self.root)
