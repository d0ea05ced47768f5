from datetime import datetime, timezone

import pytest

from sync_pipelines.partitions import (
    PartitionKeyError,
    dimensions,
    partition_key,
    window_from_keys,
    windows_by_connection,
)


def test_window_covers_whole_days():
    window = window_from_keys([partition_key("2026-11-02", "acme"), partition_key("2026-11-01", "acme")])
    assert window.connection == "acme"
    assert window.start == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert window.end == datetime(2026, 11, 3, tzinfo=timezone.utc)
    assert window.days == ("2026-11-01", "2026-11-02")


def test_string_keys_are_connection_first():
    window = window_from_keys(["acme|2026-11-05"])
    assert (window.connection, window.days) == ("acme", ("2026-11-05",))


@pytest.mark.parametrize("keys, message", [
    ([], "pick a partition"),
    (["acme-2026-11-05"], "is not '<connection>|<YYYY-MM-DD>'"),
    (["acme|2026-13-05"], "is not YYYY-MM-DD"),
    (["a|2026-11-05", "b|2026-11-05"], "spans"),
])
def test_bad_keys_are_named(keys, message):
    with pytest.raises(PartitionKeyError, match=message):
        window_from_keys(keys)


def test_range_spanning_connections_is_split_per_connection():
    keys = [partition_key(d, c) for c in ("b", "a") for d in ("2026-11-01", "2026-11-02")]
    windows = windows_by_connection(keys)
    assert [(w.connection, w.days) for w in windows] == [
        ("a", ("2026-11-01", "2026-11-02")),
        ("b", ("2026-11-01", "2026-11-02")),
    ]


DAY = window_from_keys(["acme|2026-11-18"])
START, END = DAY.start_epoch, DAY.end_epoch


@pytest.mark.parametrize(
    ("mark", "overlap", "now", "expected"),
    [
        # No mark: the whole day up to now, a full read.
        (None, 120, START + 3600, (START, START + 3600, None)),
        # A mark inside the day: from the mark minus the overlap, incremental.
        (START + 7200, 120, START + 9000, (START + 7080, START + 9000, START + 7200)),
        # The overlap never reaches before the day's start.
        (START + 60, 120, START + 9000, (START, START + 9000, START + 60)),
        # A closed day is read to its end, not to now.
        (None, 0, END + 86400, (START, END, None)),
        # A mark at or past the day's end (the day was read whole): read it whole again.
        (END, 120, END + 10, (START, END, None)),
    ],
)
def test_bounds_are_the_one_window_preamble(mark, overlap, now, expected):
    bounds = DAY.bounds(mark, overlap, now)
    assert (bounds.lower, bounds.upper, bounds.mark) == expected
    assert bounds.mode == ("incremental" if expected[2] is not None else "full")
    assert bounds.empty is (expected[1] <= expected[0])


def test_bounds_default_to_the_clock(monkeypatch):
    from sync_pipelines import clock

    monkeypatch.setattr(clock, "now_epoch", lambda: START + 42)
    assert DAY.bounds(None).upper == START + 42


def test_partition_keys_are_taken_apart_in_one_place():
    assert dimensions("acme|2026-11-18") == {"connection": "acme", "date": "2026-11-18"}
    assert dimensions(partition_key("2026-11-18", "acme")) == {
        "connection": "acme",
        "date": "2026-11-18",
    }
    with pytest.raises(PartitionKeyError, match="is not '<connection>|<YYYY-MM-DD>'"):
        dimensions("acme-2026-11-18")
    with pytest.raises(PartitionKeyError, match="partition date '2026-13-01' is not YYYY-MM-DD"):
        window_from_keys(["acme|2026-13-01"])
    assert [w.connection for w in windows_by_connection(["b|2026-11-18", "a|2026-11-18"])] == [
        "a",
        "b",
    ]
