"""The vector_index cursor over source events: each file applied once, late commits caught."""

from sync_pipelines.index.event_cursor import (
    LATE_COMMIT_GRACE_S,
    EventCursor,
    SourceEvent,
    select_pending,
)


def ev(storage_id, timestamp, *files):
    return SourceEvent(storage_id, timestamp, tuple(files))


def test_first_run_applies_every_file_once_in_event_order():
    events = [ev(12, 1012.0, "b"), ev(10, 1010.0, "a"), ev(11, 1010.0, "a")]  # a range run
    files, cursor = select_pending(events, EventCursor())
    assert files == ["a", "b"]
    assert (cursor.storage_id, cursor.timestamp) == (12, 1012.0)
    assert set(cursor.recent) == {"a", "b"}


def test_nothing_new_means_nothing_pending_and_the_same_cursor():
    _, cursor = select_pending([ev(10, 1000.0, "a")], EventCursor())
    # The grace window re-reads the same event: it is recognised as applied.
    files, again = select_pending([ev(10, 1000.0, "a")], cursor)
    assert files == [] and again == cursor
    assert select_pending([], cursor) == ([], cursor)


def test_an_event_committed_late_behind_the_cursor_is_still_applied():
    _, cursor = select_pending([ev(10, 1000.0, "a"), ev(12, 1002.0, "c")], EventCursor())
    # Event 11 was inserted before 12 but committed after the last run read the log.
    files, cursor = select_pending(
        [ev(10, 1000.0, "a"), ev(11, 1001.0, "b"), ev(12, 1002.0, "c")], cursor
    )
    assert files == ["b"] and cursor.storage_id == 12


def test_applied_files_are_forgotten_once_outside_the_grace_window():
    _, cursor = select_pending([ev(1, 1000.0, "old")], EventCursor())
    later = 1000.0 + LATE_COMMIT_GRACE_S + 1
    files, cursor = select_pending([ev(2, later, "new")], cursor)
    assert files == ["new"] and set(cursor.recent) == {"new"}
    assert cursor.read_after_timestamp == later - LATE_COMMIT_GRACE_S


def test_cursor_survives_metadata_round_trip():
    _, cursor = select_pending([ev(7, 1234.5, "x", "y")], EventCursor())
    assert EventCursor.from_json(cursor.to_json()) == cursor
    assert EventCursor.from_json(None) == EventCursor()
    assert EventCursor().read_after_timestamp is None
