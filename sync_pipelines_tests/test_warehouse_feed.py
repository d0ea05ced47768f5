"""The CRM loader's page feed: pages are read ahead of the loader in order, at most `limit`
rows are held, the pages read before an error are handed over before the error itself, and
stopping closes the source's generator."""

from __future__ import annotations

import threading

import pytest

from sync_pipelines.warehouse.feed import PageFeed

WAIT_S = 10.0  # for events that must happen (only a broken feed waits this long)


def pages(table: str, count: int, size: int, seen: list | None = None):
    for n in range(count):
        if seen is not None:
            seen.append(n)
        yield [f"{table}-{n}-{i}" for i in range(size)]


def test_every_page_arrives_in_order_grouped_by_table():
    sources = [("a", pages("a", 3, 2)), ("b", pages("b", 2, 3))]
    taken = []
    with PageFeed(sources, limit=100) as feed:
        while (batch := feed.take(at_least=4)) is not None:
            taken.append(batch)
    rows = {t: [r for b in taken for p in b.get(t, []) for r in p] for t in ("a", "b")}
    assert rows["a"] == [f"a-{n}-{i}" for n in range(3) for i in range(2)]
    assert rows["b"] == [f"b-{n}-{i}" for n in range(2) for i in range(3)]


def test_the_reader_holds_at_most_limit_rows_ahead():
    fourth_asked = threading.Event()
    third_read = threading.Event()

    def source():
        for n in range(6):
            if n == 2:
                third_read.set()
            if n == 3:
                fourth_asked.set()
            yield [n] * 5

    with PageFeed([("t", source())], limit=10) as feed:
        assert third_read.wait(WAIT_S)
        # two pages (10 rows) held, the third waits to be put: the fourth is not read yet
        assert not fourth_asked.wait(0.3)
        first = feed.take(at_least=10)
        assert sum(len(p) for p in first["t"]) >= 10
        rest = []
        while (batch := feed.take(at_least=1)) is not None:
            rest.extend(batch["t"])
    assert [p[0] for p in first["t"] + rest] == list(range(6))


def test_pages_read_before_an_error_come_first_then_the_error_itself():
    class PageRefused(Exception):
        pass

    def failing():
        yield [1, 2]
        yield [3]
        raise PageRefused("401: token rejected")

    with PageFeed([("t", failing())], limit=100) as feed:
        batch = feed.take(at_least=1_000)  # the reading ended (failed) before 1,000 rows
        assert [r for p in batch["t"] for r in p] == [1, 2, 3]
        with pytest.raises(PageRefused, match="401"):
            feed.take(at_least=1)


def test_stopping_early_closes_the_sources_generator():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield ["row"]
        finally:
            closed.set()

    with PageFeed([("t", endless())], limit=3) as feed:
        assert feed.take(at_least=3)
    assert closed.wait(WAIT_S)


def test_a_limit_below_one_row_is_refused():
    with pytest.raises(ValueError, match="at least one row"):
        PageFeed([], limit=0)
