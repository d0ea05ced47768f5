"""Which source materializations vector_index still has to apply.

The event log is the queue, read by storage id. On PostgreSQL, storage ids are handed out
when a row is inserted but become visible when its transaction commits, so an event can
appear *behind* the cursor (a slow commit overtaken by a faster one). The cursor therefore
also re-reads a grace window of recent events and remembers which of their files it already
applied: a late event is picked up on the next run, an applied one is never applied twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

LATE_COMMIT_GRACE_S = 600.0


@dataclass(frozen=True)
class SourceEvent:
    storage_id: int
    timestamp: float
    files: tuple[str, ...]


@dataclass(frozen=True)
class EventCursor:
    storage_id: int = 0
    timestamp: float = 0.0
    recent: dict[str, float] = field(default_factory=dict)  # applied file -> event time

    @property
    def read_after_timestamp(self) -> float | None:
        """Fetch events newer than this (None: from the beginning)."""
        return self.timestamp - LATE_COMMIT_GRACE_S if self.timestamp else None

    def to_json(self) -> str:
        return json.dumps(
            {"storage_id": self.storage_id, "timestamp": self.timestamp, "recent": self.recent}
        )

    @classmethod
    def from_json(cls, text: str | None) -> "EventCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(int(data["storage_id"]), float(data["timestamp"]), dict(data["recent"]))


def select_pending(
    events: list[SourceEvent], cursor: EventCursor
) -> tuple[list[str], EventCursor]:
    """Files to apply (oldest event first, each once) and the cursor to store after them."""
    events = sorted(events, key=lambda e: e.storage_id)
    pending: dict[str, float] = {}
    for event in events:
        for path in event.files:
            if path not in cursor.recent:
                pending.setdefault(path, event.timestamp)
    if not events:
        return [], cursor
    newest = max(cursor.timestamp, max(e.timestamp for e in events))
    applied = {**cursor.recent, **pending}
    recent = {p: t for p, t in applied.items() if t >= newest - LATE_COMMIT_GRACE_S}
    storage_id = max(cursor.storage_id, events[-1].storage_id)
    return list(pending), EventCursor(storage_id, newest, recent)
