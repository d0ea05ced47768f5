"""One table of sources: cadence, stagger, pool, freshness limit, API docs and on/off switch.

Jobs, schedules, freshness policies, concurrency pools and the asset pages' definition
metadata are generated from it, so adding a source is one row here plus its module. Cadences follow the design (Slack 15 min, Jira 30, the other
knowledge sources hourly); offsets stagger the starts so sources don't hit the machine, the
database and their APIs at the same minute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DISABLED_ENV = "SYNC_DISABLED_SOURCES"


@dataclass(frozen=True)
class SourceEntry:
    name: str
    cadence_minutes: int  # divides 60, or a multiple of 60 up to 1440
    offset_minutes: int  # minute of the hour (within the cadence) the schedule starts at
    freshness_minutes: int  # stale when not materialized for this long
    group: str = "knowledge"  # "crm" sources share a global run limit
    docs_url: str = ""  # the vendor API reference the sync is written against

    @property
    def pool(self) -> str:
        """Concurrency pool of this source's API (one per API, see dagster.yaml/README)."""
        return f"{self.name}_api"

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
            if 60 % self.cadence_minutes:
                raise ValueError(f"{self.name}: cadence {self.cadence_minutes} must divide 60")
            minutes = range(self.offset_minutes % self.cadence_minutes, 60, self.cadence_minutes)
            return f"{','.join(str(m) for m in minutes)} * * * *"
        hours = self.cadence_minutes // 60
        if self.cadence_minutes % 60 or 24 % hours:
            raise ValueError(f"{self.name}: cadence {self.cadence_minutes} must be whole hours")
        return f"{self.offset_minutes % 60} {'*' if hours == 1 else f'*/{hours}'} * * *"

    def disabled_reason(self) -> str | None:
        """Why this source is switched off by configuration, or None when it is on."""
        disabled = {
            s.strip().lower() for s in os.environ.get(DISABLED_ENV, "").split(",") if s.strip()
        }
        if self.name in disabled:
            return f"{self.name} is disabled by {DISABLED_ENV}={os.environ[DISABLED_ENV]}"
        return None


SOURCE_TABLE: tuple[SourceEntry, ...] = (
    SourceEntry(
        "slack", cadence_minutes=15, offset_minutes=1, freshness_minutes=30,
        docs_url="https://api.slack.com/methods/conversations.history",
    ),
    SourceEntry(
        "jira", cadence_minutes=30, offset_minutes=5, freshness_minutes=60,
        docs_url="https://developer.atlassian.com/cloud/jira/platform/rest/v3/",
    ),
    SourceEntry(
        "notion", cadence_minutes=60, offset_minutes=11, freshness_minutes=120,
        docs_url="https://developers.notion.com/reference/intro",
    ),
    SourceEntry(
        "fireflies", cadence_minutes=60, offset_minutes=23, freshness_minutes=120,
        docs_url="https://docs.fireflies.ai/",
    ),
    SourceEntry(
        "tempo", cadence_minutes=60, offset_minutes=41, freshness_minutes=120,
        docs_url="https://apidocs.tempo.io/",
    ),
)


def entry(name: str) -> SourceEntry:
    for row in SOURCE_TABLE:
        if row.name == name:
            return row
    raise KeyError(f"source {name!r} is not in the source table")
