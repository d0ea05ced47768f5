"""Genius: the CRM's database read directly (a SQL source on MariaDB), loaded as tables.

No public Genius reference exists: the source reads OUR documented schema (schema.py) with
SQLAlchemy + pymysql, incrementally by `updated_at` (keyset pages), payments by full refresh.
"""

from sync_pipelines.sources.declaration import Cadence, SourceDeclaration
from sync_pipelines.sources.genius.client import GeniusResource
from sync_pipelines.sources.genius.options import GeniusOptions
from sync_pipelines.sources.genius.tables import NAME, TABLES
from sync_pipelines.warehouse.crm import crm_sync

SOURCE = SourceDeclaration(
    name=NAME,
    resource=GeniusResource,
    sync=crm_sync(TABLES),
    options=GeniusOptions,
    description=(
        "Genius CRM read from its MariaDB/MySQL database (read-only user; no public API or "
        "schema reference exists, so it reads the documented interface in "
        "sources/genius/schema.py): customers, appointments, jobs and notes by `updated_at` "
        "with keyset paging, payments by full refresh with row hashes, into the warehouse "
        "(`genius.<table>`). Appointment and job descriptions and notes become documents "
        "(access: all unless the `access` option narrows it); `deleted_at`/`is_deleted` rows "
        "and payments gone from the table are soft deletes and tombstones. DATETIMEs are read "
        "in the connection's `timezone` (default UTC)."
    ),
    schedule=Cadence(every_minutes=60, at_minute=57, stale_after_minutes=120),
    credentials_env={"password": "GENIUS_DB_PASSWORD"},
    docs_url="https://docs.sqlalchemy.org/en/20/dialects/mysql.html",  # no Genius reference
    group="crm",
)
