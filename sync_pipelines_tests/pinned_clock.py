"""The instant the suite runs at: pinned, never the wall clock.

`SYNC_TEST_NOW` (ISO 8601, UTC) chooses it; the default is an ordinary afternoon. `make test`
runs the time-sensitive tests again at 00:05, at 23:55 and on the first of a month (see the
Makefile), so a test that only passes at some hours cannot land. The clock is pinned again at
the start of every test module and then runs forward at real speed (time-machine, tick=True),
so timeouts and sleeps behave and a module's tests (and its module-scoped sandboxes) see time
move on from where the last one left it. Re-pinning per module keeps the edge instants edges:
a process pinned once at 23:55 crossed midnight after a few minutes of a slow suite, so its
later modules ran on the next day instead (`run_at_edges.py` keeps each module on one worker).

Tests marked `wall_clock` run on the real clock: they drive other processes (the Dagster
daemon) that the pin cannot reach, and must derive what they expect from those processes'
own records (e.g. a schedule tick's timestamp), never from `time.time()`.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import time_machine

NOW_ENV = "SYNC_TEST_NOW"
DEFAULT_NOW = "2026-11-18T14:30:00+00:00"
EDGE_INSTANTS = (
    "2026-11-18T00:05:00+00:00",  # first hour after midnight: schedules also request yesterday
    "2026-11-30T23:55:00+00:00",  # five minutes before a new day and a new month
    "2026-12-01T00:05:00+00:00",  # the first of a month: "yesterday" is in the previous month
)


def pinned_instant() -> datetime:
    raw = os.environ.get(NOW_ENV) or DEFAULT_NOW
    instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"{NOW_ENV}={raw!r} needs a UTC offset, e.g. 2026-11-18T00:05:00Z")
    return instant.astimezone(timezone.utc)


class PinnedClock:
    """Travels to the pinned instant; can step aside for a wall-clock test and come back
    as if it had kept running."""

    def __init__(self, instant: datetime):
        self.instant = instant
        self._started = time.monotonic()
        self._travel: time_machine.travel | None = None

    def restart(self) -> None:
        """Back to the instant itself (a new test module starts there)."""
        self.release()
        self._started = time.monotonic()
        self.pin()

    def pin(self) -> None:
        elapsed = timedelta(seconds=time.monotonic() - self._started)
        self._travel = time_machine.travel(self.instant + elapsed, tick=True)
        self._travel.start()

    def release(self) -> None:
        if self._travel is not None:
            self._travel.stop()
            self._travel = None
