"""The Genius client against the sandbox's MariaDB behind its proxy: keyset paging (also
across many rows sharing one updated_at), window bounds, time zones, the error mapping
(reset retried, 1040 waited, 1045 fast, 1064/1054 permanent naming the table) and flat
memory while streaming a large table."""

import math
import tracemalloc

import pymysql
import pytest
from sqlalchemy.exc import OperationalError
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.genius.api import serve
from sync_pipelines_sandbox.genius.db import SANDBOX_GENIUS_PASSWORD, GeniusDatabase
from sync_pipelines_sandbox.knobs import Knobs

from sync_pipelines import resilience
from sync_pipelines.connections import Connection
from sync_pipelines.errors import (
    MalformedResponseError,
    RateLimited,
    SourceAuthError,
    SourcePermanentError,
    TransientError,
)
from sync_pipelines.sources.genius.client import GeniusResource
from sync_pipelines.sources.genius.schema import SPECS, TableSpec
from sync_pipelines.sources.genius.sql_errors import translate

pytestmark = pytest.mark.integration
SPEC = {s.name: s for s in SPECS}
ENV = "TEST_GENIUS_PASSWORD"


@pytest.fixture
def waits(monkeypatch):
    """The retry layer's sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(resilience, "_sleep", slept.append)
    return slept


def client_for(url, monkeypatch, password=SANDBOX_GENIUS_PASSWORD, **options):
    monkeypatch.setenv(ENV, password)
    connection = Connection(
        "acme", "genius", credentials={"password": ENV}, options={"url": url, **options}
    )
    return GeniusResource(rate_per_s=0, timeout_s=5, max_attempts=4).client_for(connection)


@pytest.fixture
def client(sandbox, monkeypatch):
    c = client_for(sandbox.urls["genius"], monkeypatch)
    yield c
    c.close()


def ids(pages) -> list[int]:
    return [row["id"] for page in pages for row in page]


def test_keyset_paging_across_equal_timestamps_reads_every_row_once(sandbox, client):
    db = sandbox.genius
    # 47 appointments share one second: pages of 7 must split inside that second.
    db.execute("UPDATE appointments SET updated_at = '2026-01-01 00:00:00' WHERE id <= 47")
    pages = list(client.pages(SPEC["appointments"], None, None, page_size=7))
    (total,) = db.query("SELECT COUNT(*) FROM appointments")[0]
    got = ids(pages)
    assert len(got) == len(set(got)) == total
    assert len(pages) == math.ceil(total / 7)
    keys = [(r["updated_at"], r["id"]) for p in pages for r in p]
    assert keys == sorted(keys)
    assert [r["id"] for r in pages[0]] == list(range(1, 8))  # same second: by id
    assert sandbox.knobs.calls["appointments"] == len(pages) + (total % 7 == 0)


def test_window_bounds_select_the_rows_updated_in_it(sandbox, client):
    world = CrmWorld.of(sandbox.company)
    start, end = world.start + 3600 * 5, world.start + 3600 * 40
    got = ids(client.pages(SPEC["notes"], start, end, page_size=5))
    truth = [r.i + 1 for r in world.updated_between("notes", start, end)]
    assert got == truth and len(truth) > 5
    row = next(iter(client.pages(SPEC["notes"], start, end, page_size=5)))[0]
    assert row["updated_at"].utcoffset().total_seconds() == 0  # UTC-aware
    assert start <= row["updated_at"].timestamp() < end


def test_full_refresh_pages_by_id(sandbox, client):
    pages = list(client.pages(SPEC["payments"], None, None, page_size=2))
    (total,) = sandbox.genius.query("SELECT COUNT(*) FROM payments")[0]
    assert ids(pages) == sorted(ids(pages)) and len(ids(pages)) == total


def test_datetimes_are_read_in_the_connections_time_zone(company, monkeypatch):
    db = GeniusDatabase(company, timezone="America/Chicago")
    served = serve(db, Knobs(), 0)
    try:
        local = client_for(served.url, monkeypatch, timezone="America/Chicago")
        as_utc = client_for(served.url, monkeypatch)
        world = CrmWorld.of(company)
        truth = {r.i + 1: int(r.updated) for r in world.all("deals")}
        rows = [r for p in local.pages(SPEC["jobs"], None, None, 50) for r in p]
        assert {r["id"]: r["updated_at"].timestamp() for r in rows} == truth
        shifted = [r for p in as_utc.pages(SPEC["jobs"], None, None, 50) for r in p]
        offsets = {truth[r["id"]] - r["updated_at"].timestamp() for r in shifted}
        assert offsets <= {5 * 3600, 6 * 3600} and offsets  # Chicago wall times misread as UTC
        local.close()
        as_utc.close()
    finally:
        served.stop()


def test_a_reset_connection_is_retried_on_a_new_one(sandbox, client, waits):
    sandbox.knobs.inject("appointments", "500", count=1, after=1)
    sandbox.knobs.inject("appointments", "503", count=1)
    got = ids(client.pages(SPEC["appointments"], None, None, page_size=20))
    assert got == sorted(set(got)) and len(got) == 90
    assert client.stats.retries == 2 and client.stats.rate_limited == 0
    assert len(waits) == 2


def test_too_many_connections_1040_is_waited_out_as_a_rate_limit(sandbox, client, waits):
    sandbox.knobs.inject("appointments", "429", count=2)
    got = ids(client.pages(SPEC["appointments"], None, None, page_size=50))
    assert len(got) == 90
    assert client.stats.rate_limited == 2
    assert waits[0] >= 1.0 and waits[1] >= 2.0  # no Retry-After in MySQL: backoff + jitter


def test_rejected_password_1045_fails_fast_naming_the_connection(sandbox, monkeypatch, waits):
    with pytest.raises(SourceAuthError) as info:
        client_for(sandbox.urls["genius"], monkeypatch, password="not-the-password")
    message = str(info.value)
    assert "genius connection 'acme'" in message and "1045" in message
    assert "not-the-password" not in message
    assert waits == [] and sum(sandbox.knobs.calls.values()) == 0


def test_sql_error_1064_is_permanent_and_names_the_table(sandbox, client, waits):
    sandbox.knobs.inject("jobs", "400", count=5)
    with pytest.raises(SourcePermanentError, match="table 'jobs'.*1064"):
        list(client.pages(SPEC["jobs"], None, None, page_size=10))
    assert sandbox.knobs.calls["jobs"] == 1 and waits == []


def test_unknown_column_1054_is_permanent_and_names_the_table(sandbox, client, waits):
    wrong = TableSpec("customers", updated="modified_on")
    with pytest.raises(SourcePermanentError, match="table 'customers'.*1054"):
        list(client.pages(wrong, 0, 2e9, page_size=10))
    assert waits == []


def _driver_error(code: int, message: str = "x") -> OperationalError:
    return OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, message))


@pytest.mark.parametrize(
    "code, kind",
    [
        (1045, SourceAuthError),
        (1142, SourceAuthError),
        (1040, RateLimited),
        (1205, TransientError),
        (1213, TransientError),
        (2006, TransientError),
        (2013, TransientError),
        (2014, MalformedResponseError),
        (1064, SourcePermanentError),
        (1054, SourcePermanentError),
        (1146, SourcePermanentError),
    ],
)
def test_error_numbers_map_to_the_projects_verdicts(code, kind):
    error = translate(_driver_error(code), "genius connection 'acme'", "notes")
    assert type(error) is kind
    if kind is not RateLimited:
        assert "genius connection 'acme'" in str(error) and "'notes'" in str(error)


def test_lock_wait_timeout_1205_is_retried(sandbox, client, waits, monkeypatch):
    real = client.engine.connect
    failures = iter([_driver_error(1205, "Lock wait timeout exceeded")])

    def flaky():
        error = next(failures, None)
        if error is not None:
            raise error
        return real()

    client._drop()
    monkeypatch.setattr(client.engine, "connect", flaky)
    assert len(ids(client.pages(SPEC["customers"], None, None, page_size=100))) == 18
    assert client.stats.retries == 1 and len(waits) == 1


def test_the_session_is_read_only(sandbox, client):
    rows = client._run(None, "SELECT @@session.tx_read_only AS ro", {})
    assert rows == [{"ro": 1}]


def test_memory_stays_flat_while_streaming_a_large_table(company, monkeypatch):
    CrmWorld.sized(company, contacts=10_000)  # 10,000 appointments
    db = GeniusDatabase(company)
    served = serve(db, Knobs(), 0)
    try:
        client = client_for(served.url, monkeypatch)
        world = CrmWorld.of(company)
        small_end = world.start + (world.end - world.start) / 10  # ~1,000 rows

        def peak(upper: float) -> tuple[int, int]:
            tracemalloc.start()
            count = sum(len(p) for p in client.pages(SPEC["appointments"], None, upper, 200))
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return count, top

        few, few_peak = peak(small_end)
        many, many_peak = peak(world.end + 1)
        assert many == 10_000 and many >= 8 * few
        assert many_peak < 1.5 * few_peak + 512 * 1024  # not 10x: one page at a time
        client.close()
    finally:
        served.stop()
