"""The Genius database interface this source reads: OUR OWN documented schema.

Genius publishes no API or schema reference (none was found), and the system this source
replaces read its database directly. So the source is written against the interface below,
and the sandbox's database (sandbox/sync_pipelines_sandbox/genius/) implements exactly it.
A deployment whose Genius database differs maps it with views of these names and columns.

MariaDB/MySQL, read with a SELECT-only user. DATETIME columns carry no zone: they hold
wall-clock times of the connection's `timezone` option (default UTC). Every table has an
integer primary key `id`.

| table        | read by                         | deletion column        | document (index)    |
|--------------|---------------------------------|------------------------|---------------------|
| customers    | `updated_at` (incremental)      | `deleted_at` not null  | none                |
| appointments | `updated_at` (incremental)      | `deleted_at` not null  | its `description`   |
| jobs         | `updated_at` (incremental)      | `deleted_at` not null  | its `description`   |
| notes        | `updated_at` (incremental)      | `is_deleted` = 1       | its `body`          |
| payments     | full refresh (no `updated_at`)  | the row disappears     | none                |

Columns the source relies on (others are loaded as they come: `SELECT *`, dlt evolves the
warehouse schema):
    customers(id, name, email_domain, industry, city, sales_rep_email, created_at,
              updated_at, deleted_at)
    appointments(id, customer_id, contact_name, contact_email, contact_phone,
                 sales_rep_email, status, scheduled_at, description, created_at,
                 updated_at, deleted_at)
    jobs(id, customer_id, name, status, amount, sales_rep_email, scheduled_date,
         description, created_at, updated_at, deleted_at)
    notes(id, customer_id, appointment_id, job_id, author_email, body, created_at,
          updated_at, is_deleted)
    payments(id, job_id, amount, method, paid_on, reference)

Incremental tables are read with keyset paging on (`updated_at`, `id`) (an index on both
keeps each page a range scan); payments with keyset paging on `id`. The application must set
`updated_at` on every write (a row whose `updated_at` is NULL is never read incrementally)
and delete rows of the incremental tables only softly (a hard DELETE there goes unseen).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSpec:
    """How one table is read: its keyset columns and what marks a row deleted.

    updated: the updated-at column (None: full refresh, keyset on `key` alone).
    deleted_at / deleted_flag: the column whose non-null value / truthy value means deleted.
    text: the column people search (the row's document), None for no document.
    title: how the document's title starts ("Note", "Appointment", ...).
    author: the column naming the document's author.
    """

    name: str
    key: str = "id"
    updated: str | None = "updated_at"
    deleted_at: str | None = None
    deleted_flag: str | None = None
    text: str | None = None
    title: str = ""
    author: str | None = None

    @property
    def full_refresh(self) -> bool:
        return self.updated is None


SPECS: tuple[TableSpec, ...] = (
    TableSpec("customers", deleted_at="deleted_at"),
    TableSpec(
        "appointments",
        deleted_at="deleted_at",
        text="description",
        title="Appointment",
        author="sales_rep_email",
    ),
    TableSpec(
        "jobs", deleted_at="deleted_at", text="description", title="Job", author="sales_rep_email"
    ),
    TableSpec("notes", deleted_flag="is_deleted", text="body", title="Note", author="author_email"),
    TableSpec("payments", updated=None),
)
