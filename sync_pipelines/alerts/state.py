"""Alert dedupe state, kept in the sensor's cursor (Dagster's storage, no table of our own).

A subject (source/connection, vector_index, or a source's freshness) is *open* from its first
not-ok signal until its next ok signal: the first posts an alert, the second a recovery, and
everything in between stays quiet. State changes only after Slack accepted the message, so a
failed post is retried on the next tick and a sent one is never repeated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from sync_pipelines.alerts.signals import Signal


@dataclass
class Problem:
    """The signal that opened an alert: shown again in the recovery message."""

    run_id: str
    at: float


@dataclass
class Waiting:
    """A failed run whose retry decision is pending, and the subjects it failed."""

    at: float
    keys: list[str]


@dataclass
class AlertState:
    after: int | None = None  # last run-status event storage id fully handled
    open: dict[str, Problem] = field(default_factory=dict)
    waiting: dict[str, Waiting] = field(default_factory=dict)  # by run id

    @classmethod
    def from_cursor(cls, cursor: str | None) -> AlertState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(
            after=data.get("after"),
            open={_current_key(k): Problem(**v) for k, v in data.get("open", {}).items()},
            waiting={k: Waiting(**v) for k, v in data.get("waiting", {}).items()},
        )

    def to_cursor(self) -> str:
        return json.dumps(
            {
                "after": self.after,
                "open": {k: asdict(v) for k, v in sorted(self.open.items())},
                "waiting": {k: asdict(v) for k, v in sorted(self.waiting.items())},
            },
            sort_keys=True,
        )

    def feed(self, signal: Signal, deliver: Callable[[Signal, Problem | None], None]) -> bool:
        """Deliver the alert or recovery `signal` causes, if any; True when one was sent.

        `deliver(signal, problem)` posts the message (`problem` is the opening one for a
        recovery, None for an alert) and raises if it could not; the state is then unchanged.
        """
        problem = self.open.get(signal.key)
        if signal.ok:
            self._superseded(signal.key)
            if problem is None:
                return False
            deliver(signal, problem)
            del self.open[signal.key]
            return True
        if problem is not None:
            return False
        deliver(signal, None)
        self.open[signal.key] = Problem(run_id=signal.run_id, at=signal.at)
        return True

    def _superseded(self, key: str) -> None:
        """A later success makes a pending retry decision about `key` moot."""
        for run_id, waiting in list(self.waiting.items()):
            if key in waiting.keys:
                waiting.keys.remove(key)
                if not waiting.keys:
                    del self.waiting[run_id]


def _current_key(key: str) -> str:
    """Freshness alerts were keyed 'freshness:<asset>:<check>' while they read freshness
    checks; now 'freshness:<asset>'. Renaming keeps an alert open across the upgrade, so it
    gets its recovery instead of a second alert."""
    parts = key.split(":")
    return ":".join(parts[:2]) if parts[0] == "freshness" and len(parts) == 3 else key
