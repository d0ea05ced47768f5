"""What a source is, in one value: the declaration its folder's `__init__.py` exports.

Everything the code location builds per source (asset, `<source>_sync` job, schedule,
freshness policy, pool, resource from the environment, the connection registry's known
sources and their standard environment variables, asset-page metadata) is derived from the
declarations the registry discovers (registry.py), so adding a source edits nothing outside
its folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dagster import ConfigurableResource

from sync_pipelines.connections import Connection
from sync_pipelines.documents import Document, Listing
from sync_pipelines.sources.base import SourceRun, SyncOutcome, SyncResult
from sync_pipelines.sources.figures import document_time
from sync_pipelines.sources.options import OptionsModel
from sync_pipelines.sources.resource import SourceResourceBase

DISABLED_ENV = "SYNC_DISABLED_SOURCES"
GROUPS = ("knowledge", "crm")  # "crm" sources share a global run limit
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class SyncEntry(Protocol):
    """One connection's sync over a window. The shared asset builds the run's client with
    the source's `client_for(connection)` (and closes it after), parses the options and reads
    the previous mark and pending items; the entry answers with its SyncResult (turned into
    metadata with the client's call counts) or, when it needs to add to them, a SyncOutcome."""

    def __call__(self, run: SourceRun) -> SyncResult | SyncOutcome: ...


@dataclass(frozen=True)
class Cadence:
    """When a source's schedule runs and when its asset counts as stale: every
    `every_minutes` (dividing 60, or whole hours dividing 24) from minute `at_minute` of the
    hour, stale when not materialized for `stale_after_minutes`."""

    every_minutes: int
    at_minute: int
    stale_after_minutes: int


class ListEntry(Protocol):
    """A reconciliation's listing of one connection over the run's window (see
    Reconciliation)."""

    def __call__(self, run: SourceRun) -> list[Listing]: ...


@dataclass(frozen=True)
class Reconciliation:
    """How a source proves what still exists, for deletions its API shows only by absence.

    `list_ids(run)` lists, with the cheapest call the API offers (ids and times only), every
    record of the connection whose partition time lies in `run.window` (the last `days` UTC
    days, today included) and answers Listings (documents.Listing: scope, range, ids, the
    time the listing began). It must raise on any failed, malformed or truncated page: a
    listing is only ever emitted complete, so an error deletes nothing. It runs on its own
    schedule (daily at `at_hour`:`at_minute` UTC, staggered by source) and pool
    (`<source>_reconcile`), never holding the sync's pool."""

    list_ids: ListEntry
    days: int = 30
    at_hour: int = 3
    at_minute: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 3660:
            raise ValueError(f"reconciliation days {self.days} must be between 1 and 3660")
        if not (0 <= self.at_hour < 24 and 0 <= self.at_minute < 60):
            raise ValueError(f"reconciliation time {self.at_hour}:{self.at_minute} is no time")

    @property
    def cron(self) -> str:
        return f"{self.at_minute} {self.at_hour} * * *"


def _loads_warehouse(sync: Any) -> bool:
    """The sync entry is `crm_sync(...)` (it carries its tables)."""
    return getattr(sync, "crm_tables", None) is not None


@dataclass(frozen=True)
class SourceDeclaration:
    """One source. `credentials_env` maps each credential field to its standard environment
    variable (the first must be set for the implicit `default` connection to exist);
    `<NAME>_BASE_URL` and `<NAME>_RATE_PER_S` set the API URL and the pacing of connections
    that do not set their own (resource.py has the precedence)."""

    name: str
    resource: type[SourceResourceBase]  # its client_for(connection) builds the run's client
    sync: SyncEntry
    description: str
    schedule: Cadence
    credentials_env: Mapping[str, str]
    docs_url: str  # the vendor API reference the sync is written against
    options: type[OptionsModel] | None = None
    group: str = "knowledge"
    kinds: frozenset[str] = frozenset()  # besides the source's own name, shown in the UI
    # Resources the sync reads besides its own (e.g. a source resolving ids through another).
    extra_resource_keys: frozenset[str] = frozenset()
    # The time that puts a document in its partition day (default: its timestamp).
    partition_time: Callable[[Document], float] = document_time
    # Connection options of the demo's sandbox connection (e.g. no client-side pacing).
    demo_options: Mapping[str, Any] = field(default_factory=dict)
    # The periodic listing that finds records deleted without a signal (None: the sync's own
    # signals are all there is).
    reconcile: Reconciliation | None = None
    # Its documents are recorded conversations (calls, meetings): call_insights extracts
    # features, pain points and action items from each one's text.
    transcripts: bool = False
    # False: off unless ENABLE_<NAME>=true (a source not ready for every deployment).
    enabled_by_default: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"source name {self.name!r} must be lower-case letters, digits, '_'")
        if self.group not in GROUPS:
            raise ValueError(f"{self.name}: group {self.group!r} must be one of {GROUPS}")
        if _loads_warehouse(self.sync) and "warehouse" not in self.extra_resource_keys:
            # A CRM sync (warehouse/crm.py's crm_sync) loads into the warehouse: the asset
            # requires the resource, so no source has to list it.
            keys = self.extra_resource_keys | {"warehouse"}
            object.__setattr__(self, "extra_resource_keys", frozenset(keys))
        if not self.credentials_env:
            raise ValueError(f"{self.name}: credentials_env must name at least one credential")
        self.cron  # noqa: B018 - a cadence that fits no cron fails the declaration
        if not issubclass(self.resource, SourceResourceBase):
            raise ValueError(
                f"{self.name}: {self.resource.__name__} must extend SourceResourceBase "
                "(sources/resource.py)"
            )
        if self.resource.ENV_PREFIX != self.name.upper():
            raise ValueError(
                f"{self.name}: {self.resource.__name__}.ENV_PREFIX is "
                f"{self.resource.ENV_PREFIX!r}, not {self.name.upper()!r}"
            )

    @property
    def cadence_minutes(self) -> int:
        return self.schedule.every_minutes

    @property
    def offset_minutes(self) -> int:
        """Minute of the hour (within the cadence) the schedule starts at."""
        return self.schedule.at_minute

    @property
    def freshness_minutes(self) -> int:
        return self.schedule.stale_after_minutes

    @property
    def pool(self) -> str:
        """Concurrency pool of this source's API (one per API, see dagster.yaml/README)."""
        return f"{self.name}_api"

    @property
    def reconcile_pool(self) -> str:
        """Reconciliations list the same API but never wait behind (or block) the syncs."""
        return f"{self.name}_reconcile"

    @property
    def base_url_env(self) -> str:
        return self.resource.base_url_env()

    @property
    def rate_env(self) -> str:
        return self.resource.rate_env()

    @property
    def first_credential_env(self) -> str:
        return next(iter(self.credentials_env.values()))

    @property
    def cadence(self) -> str:
        """'every 15 min', 'hourly', 'every 2 h': as the UI and the docs say it."""
        if self.cadence_minutes < 60:
            return f"every {self.cadence_minutes} min"
        hours = self.cadence_minutes // 60
        return "hourly" if hours == 1 else f"every {hours} h"

    @property
    def cron(self) -> str:
        if self.cadence_minutes < 60:
            if self.cadence_minutes < 1 or 60 % self.cadence_minutes:
                raise ValueError(f"{self.name}: cadence {self.cadence_minutes} must divide 60")
            minutes = range(self.offset_minutes % self.cadence_minutes, 60, self.cadence_minutes)
            return f"{','.join(str(m) for m in minutes)} * * * *"
        hours = self.cadence_minutes // 60
        if self.cadence_minutes % 60 or 24 % hours:
            raise ValueError(f"{self.name}: cadence {self.cadence_minutes} must be whole hours")
        return f"{self.offset_minutes % 60} {'*' if hours == 1 else f'*/{hours}'} * * *"

    @property
    def enable_env(self) -> str:
        """`ENABLE_<NAME>`: true turns on a source off by default, false turns any off."""
        return f"ENABLE_{self.name.upper()}"

    def disabled_reason(self) -> str | None:
        """Why this source is switched off by configuration, or None when it is on. An
        `ENABLE_<NAME>` that is no boolean is an error naming the variable."""
        disabled = {
            s.strip().lower() for s in os.environ.get(DISABLED_ENV, "").split(",") if s.strip()
        }
        if self.name in disabled:
            return f"{self.name} is disabled by {DISABLED_ENV}={os.environ[DISABLED_ENV]}"
        switch = os.environ.get(self.enable_env, "").strip()
        if switch:
            value = _BOOLEANS.get(switch.lower())
            if value is None:
                raise ValueError(
                    f"{self.enable_env} must be true or false (or 1/0, yes/no), got {switch!r}"
                )
            if not value:
                return f"{self.name} is disabled by {self.enable_env}={switch}"
            return None
        if not self.enabled_by_default:
            return f"{self.name} is off by default: set {self.enable_env}=true to turn it on"
        return None

    def parse_options(self, connection: Connection) -> OptionsModel | None:
        if self.options is None:
            return None
        return self.options.from_connection(connection.options, self.name)

    def resource_from_env(self) -> ConfigurableResource:
        """The resource with its defaults: it reads `base_url_env` and `rate_env` itself when
        it builds a client, so a run's config for one field keeps what the environment set."""
        return self.resource()
