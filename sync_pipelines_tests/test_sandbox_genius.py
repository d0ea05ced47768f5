"""The Genius emulator: a MariaDB database seeded from the CRM world on first use, its
read-only user, the MySQL proxy applying the knobs (routes = tables, 1040/1064/1146/1045
error packets, resets), and the database dropped when the sandbox stops."""

import pymysql
import pytest
from sqlalchemy.engine import make_url
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.genius.data import TABLES, Rows
from sync_pipelines_sandbox.genius.db import SANDBOX_GENIUS_PASSWORD, GeniusDatabase
from sync_pipelines_sandbox.genius.proxy import route_of
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.text import CUSTOMERS

pytestmark = pytest.mark.integration


def connect(sandbox, password=SANDBOX_GENIUS_PASSWORD) -> pymysql.Connection:
    url = make_url(sandbox.urls["genius"])
    return pymysql.connect(
        host=url.host, port=url.port, user=url.username, password=password,
        database=url.database, autocommit=True,
    )  # fmt: skip


def exists(db: GeniusDatabase) -> tuple[bool, bool]:
    conn = db.admin_connection()
    try:
        cur = conn.cursor()
        cur.execute("SHOW DATABASES LIKE %s", (db.name,))
        database = bool(cur.fetchall())
        cur.execute("SELECT user FROM mysql.user WHERE user = %s", (db.name,))
        return database, bool(cur.fetchall())
    finally:
        conn.close()


def one(conn, sql, args=None):
    cur = conn.cursor()
    cur.execute(sql, args)
    return cur.fetchall()


def test_the_database_is_made_on_first_use_and_dropped_at_stop(company):
    with Sandbox(company=company) as idle:
        assert idle.urls["genius"].startswith("mysql+pymysql://genius_sbx_")
        assert exists(idle.genius) == (False, False)  # never used: never made
    with Sandbox(company=company) as used:
        connect(used).close()
        assert exists(used.genius) == (True, True)
    assert exists(used.genius) == (False, False)


def test_rows_are_the_crm_worlds(sandbox):
    conn = connect(sandbox)
    world = CrmWorld.of(sandbox.company)
    names = [r[0] for r in one(conn, "SELECT name FROM customers ORDER BY id LIMIT %s",
                               (len(CUSTOMERS),))]  # fmt: skip
    assert names == list(CUSTOMERS)
    counts = {t: one(conn, f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}
    assert counts["customers"] == world.counts["accounts"]
    assert counts["appointments"] == world.counts["contacts"]
    assert counts["jobs"] == world.counts["deals"]
    assert counts["notes"] == world.counts["notes"]
    assert counts["payments"] == len(list(Rows(world).all("payments")))
    (body,) = one(conn, "SELECT body FROM notes WHERE id = 1")[0]
    assert body == world.record("notes", 0).fields["body"]
    assert one(conn, "SHOW COLUMNS FROM payments LIKE 'updated_at'") == ()


def test_the_user_may_only_read(sandbox):
    conn = connect(sandbox)
    with pytest.raises(pymysql.err.OperationalError) as info:
        one(conn, "DELETE FROM notes WHERE id = 1")
    assert info.value.args[0] == 1142


def test_edits_and_deletions_move_updated_at_to_now(sandbox):
    db = sandbox.genius
    before = db.query("SELECT updated_at, body FROM notes WHERE id = 3")[0]
    db.edit("notes", 2, body="Initech wants a new quote.")
    after = db.query("SELECT updated_at, body, is_deleted FROM notes WHERE id = 3")[0]
    assert after[1] == "Initech wants a new quote." and after[0] > before[0] and after[2] == 0
    db.delete("jobs", 4)
    (deleted_at, updated_at) = db.query("SELECT deleted_at, updated_at FROM jobs WHERE id = 5")[0]
    assert deleted_at is not None and deleted_at == updated_at
    assert CrmWorld.of(sandbox.company).record("deals", 4).archived


def test_routes_are_the_tables_read():
    assert route_of("SELECT * FROM `notes` WHERE updated_at >= '2026-01-01'") == "notes"
    assert route_of("select id from payments order by id") == "payments"
    assert route_of("SET SESSION TRANSACTION READ ONLY") == "session"
    assert route_of("SELECT 1 FROM dual") == "session"


def test_the_proxy_counts_queries_and_answers_faults_as_mariadb(sandbox):
    knobs = sandbox.knobs
    conn = connect(sandbox)
    one(conn, "SELECT id FROM notes LIMIT 1")
    assert knobs.calls["notes"] == 1
    expected = {"429": 1040, "400": 1064, "404": 1146, "401": 1045}
    for kind, code in expected.items():
        knobs.inject("jobs", kind)
        with pytest.raises(pymysql.err.MySQLError) as info:
            one(conn, "SELECT id FROM jobs LIMIT 1")
        assert info.value.args[0] == code, kind
    assert one(conn, "SELECT COUNT(*) FROM jobs")[0][0] > 0  # the session survived them
    assert knobs.count_429["jobs"] == 1


def test_a_5xx_fault_resets_the_connection(sandbox):
    conn = connect(sandbox)
    sandbox.knobs.inject("customers", "503")
    with pytest.raises(pymysql.err.OperationalError) as info:
        one(conn, "SELECT id FROM customers")
    assert info.value.args[0] == 2013
    assert one(connect(sandbox), "SELECT COUNT(*) FROM customers")[0][0] > 0


def test_rate_limits_answer_too_many_connections(sandbox):
    sandbox.knobs.rate_limits = {"notes": 2}
    conn = connect(sandbox)
    one(conn, "SELECT id FROM notes LIMIT 1")
    one(conn, "SELECT id FROM notes LIMIT 1")
    with pytest.raises(pymysql.err.OperationalError) as info:
        one(conn, "SELECT id FROM notes LIMIT 1")
    assert info.value.args[0] == 1040
    one(conn, "SELECT id FROM customers LIMIT 1")  # other tables are not limited


def test_a_timeout_fault_holds_the_query_then_serves_it(sandbox):
    sandbox.knobs.timeout_s = 0.2
    sandbox.knobs.inject("payments", "timeout")
    assert one(connect(sandbox), "SELECT COUNT(*) FROM payments")[0][0] >= 0
    assert sandbox.knobs.calls["payments"] == 1
