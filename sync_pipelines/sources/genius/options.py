"""A Genius connection's options (on top of every CRM connection's page and batch sizes)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from sync_pipelines.warehouse.crm import CrmOptions


class GeniusOptions(CrmOptions):
    """url: the SQLAlchemy URL of the database, without the password (the registry's
    `base_url` must be http(s), so a database URL lives here); else GENIUS_BASE_URL.
    timezone: the zone the database's DATETIME columns are written in (IANA name).
    access: who may read the documents (notes, appointment and job descriptions): "all", or
    the emails/groups of the people allowed, e.g. [sales@acme.example]."""

    url: str | None = None
    timezone: str = "UTC"
    access: tuple[str, ...] = Field(default=("all",), min_length=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. America/Chicago") from None
        return value
