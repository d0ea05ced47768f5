from datetime import datetime, timezone

import pytest

from sync_pipelines.partitions import PartitionKeyError, partition_key, window_from_keys
from sync_pipelines.sources.base import group_by_connection


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
    windows = group_by_connection(keys)
    assert [(w.connection, w.days) for w in windows] == [
        ("a", ("2026-11-01", "2026-11-02")),
        ("b", ("2026-11-01", "2026-11-02")),
    ]
