"""Genius's tables as the CRM loader reads them (warehouse/tables.Table), from schema.SPECS.

Each table's pages are the client's keyset pages of the run's window (the whole table for a
full refresh); appointments, jobs and notes also become documents for the index (their
description or body, `access` from the connection's option); a row with `deleted_at` set or
`is_deleted` true is a deletion (soft delete in the warehouse, tombstone in the index).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sync_pipelines.documents import Document
from sync_pipelines.sources.genius.schema import SPECS, TableSpec
from sync_pipelines.warehouse.tables import CrmRun, Record, Table

NAME = "genius"


def _epoch(value: object) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else ""


def doc_id(connection: str, table: str, row_id: object) -> str:
    return Document.make_id(NAME, connection, f"{table}/{row_id}")


def _pages(spec: TableSpec):
    def pages(run: CrmRun) -> Iterator[list[Record]]:
        if spec.full_refresh:
            return run.client.pages(spec, None, None, run.page_size)
        return run.client.pages(spec, run.lower, run.upper, run.page_size)

    return pages


def _deleted(spec: TableSpec):
    def is_deleted(record: Record) -> bool:
        if spec.deleted_at and record.get(spec.deleted_at) is not None:
            return True
        return bool(spec.deleted_flag and record.get(spec.deleted_flag))

    return is_deleted


def _document(spec: TableSpec):
    def document(record: Record, run: CrmRun) -> Document | None:
        body = str(record.get(spec.text) or "").strip()
        if not body:
            return None
        updated = record.get(spec.updated or "")
        epoch = _epoch(updated) or _epoch(record.get("created_at")) or run.now
        metadata = {
            "table": spec.name,
            "row_id": str(record[spec.key]),
            **{
                k: str(record[k])
                for k in ("customer_id", "appointment_id", "job_id", "status")
                if record.get(k) is not None
            },
        }
        access = getattr(run.options, "access", None) or ("all",)
        return Document(
            doc_id=doc_id(run.connection_id, spec.name, record[spec.key]),
            source=NAME,
            connection=run.connection_id,
            title=f"{spec.title} {record[spec.key]}"
            + (f": {record['name']}" if record.get("name") else ""),
            text=body,
            url="",  # Genius rows have no web address of their own
            author=str(record.get(spec.author or "") or ""),
            created_at=_iso(record.get("created_at")),
            updated_at=_iso(updated),
            timestamp_epoch=epoch,
            access=tuple(access),
            metadata=metadata,
        )

    return document


def _updated(spec: TableSpec):
    def updated_at(record: Record) -> float | None:
        return _epoch(record.get(spec.updated)) if spec.updated else None

    return updated_at


def table(spec: TableSpec) -> Table:
    return Table(
        name=spec.name,
        primary_key=(spec.key,),
        pages=_pages(spec),
        document=_document(spec) if spec.text else None,
        is_deleted=_deleted(spec) if (spec.deleted_at or spec.deleted_flag) else None,
        full_refresh=spec.full_refresh,
        updated_at=_updated(spec),
    )


TABLES: tuple[Table, ...] = tuple(table(spec) for spec in SPECS)
