"""CallRail's daily request cap, budgeted across every run of an account.

CallRail allows each account 1,000 API requests an hour and 10,000 a day, and says so only
with a 429 (no Retry-After, no remaining-quota header). The client paces itself at the hourly
rate, which alone would spend a day's cap in ten hours of backfill, and every Dagster run is
its own process. So each request of an account is counted in a small ledger file under the
data dir (requests per minute over the last 24 hours, rewritten under a file lock) and checked
before it goes out. A rolling 24 hours is the safe reading of "a day": it never lets a
calendar day (CallRail does not say which it counts) exceed the cap either. When the ledger
holds the cap, the request waits if a slot frees within `max_wait_s`, else the run fails at
once with an error saying when the budget frees: a later run (the schedule's next tick)
resumes from the partition's mark, with no 429 storm that would lock the account meanwhile.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from sync_pipelines import clock
from sync_pipelines.errors import SourcePermanentError

DAILY_LIMIT = 10_000  # requests per account per day (CallRail's documented cap)
WINDOW_S = 86_400
BUCKET_S = 60  # the ledger counts requests per minute


class DailyCapReached(SourcePermanentError):
    """The account's last 24 hours hold its daily cap; retrying within minutes cannot help."""


@dataclass
class DailyBudget:
    """The rolling 24-hour request budget of one account, shared through `path` by every
    process that calls CallRail for it."""

    path: Path
    limit: int = DAILY_LIMIT
    max_wait_s: float = 120.0
    label: str = "callrail"
    now: Callable[[], float] = clock.now_epoch
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def take(self) -> float:
        """Count one request, waiting for a slot that frees within `max_wait_s`; answers
        the seconds waited. Raises DailyCapReached when the next slot frees later."""
        waited = 0.0
        while True:
            with self._ledger() as counts:
                now = self.now()
                minute = int(now // BUCKET_S)
                used = sum(counts.values())
                if used < self.limit:
                    counts[minute] = counts.get(minute, 0) + 1
                    return waited
                # The oldest minute's requests leave the window when that minute is 24 h old.
                frees_at = (min(counts) + 1) * BUCKET_S + WINDOW_S
            wait = max(0.0, frees_at - now)
            if wait > self.max_wait_s:
                when = datetime.fromtimestamp(frees_at, UTC).isoformat(timespec="minutes")
                raise DailyCapReached(
                    f"{self.label}: the account made {used} requests in the last 24 hours, "
                    f"CallRail's daily cap ({self.limit}); the next one is allowed at {when} "
                    f"(in {wait / 3600:.1f} h). Not sent, to keep the account usable; the "
                    "next scheduled run resumes from this partition's mark."
                )
            self.sleep(wait)
            waited += wait

    def used(self) -> int:
        """Requests counted in the last 24 hours (for metadata and tests)."""
        with self._ledger() as counts:
            return sum(counts.values())

    def _ledger(self) -> _Ledger:
        return _Ledger(self.path, self.now)


class _Ledger:
    """The ledger file opened and locked: {minute: count} of the last 24 h, written back on
    exit (a missing or unreadable file counts as empty: it only ever makes us stricter)."""

    def __init__(self, path: Path, now: Callable[[], float]):
        self.path, self.now = path, now

    def __enter__(self) -> dict[int, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+", encoding="utf-8")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        self.handle.seek(0)
        try:
            raw = json.loads(self.handle.read() or "{}")
        except ValueError:
            raw = {}
        oldest = int((self.now() - WINDOW_S) // BUCKET_S)
        self.counts = {int(k): int(v) for k, v in raw.items() if int(k) > oldest}
        return self.counts

    def __exit__(self, *exc: object) -> None:
        try:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.write(json.dumps({str(k): v for k, v in sorted(self.counts.items())}))
            self.handle.flush()
        finally:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


class BudgetedTransport(httpx.BaseTransport):
    """Counts every request that goes out (retries included) against the daily budget."""

    def __init__(self, budget: DailyBudget, inner: httpx.BaseTransport | None = None):
        self.budget = budget
        self.inner = inner or httpx.HTTPTransport()
        self.waited_s = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.waited_s += self.budget.take()
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
