"""The one source of "now" for the code location, the sandbox and the tests.

Everything that decides by the current time (sync windows, high-water marks, the synthetic
company's data span, emulator timestamps) asks this module, so a test can pin the instant in one
place (tests use time-machine, which moves this clock together with Dagster's own) and the suite
behaves the same at 00:05 UTC, at 23:55 UTC and on the first of a month.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone


def now_epoch() -> float:
    """Seconds since the epoch (UTC)."""
    return time.time()


def now() -> datetime:
    """The current instant as an aware UTC datetime."""
    return datetime.fromtimestamp(now_epoch(), tz=timezone.utc)


def today() -> date:
    """Today's UTC date."""
    return now().date()
