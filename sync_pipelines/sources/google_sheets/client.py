"""Sheets API v4 and Drive v3 client for one connection: the shared HTTP layer, Google auth.

Three read calls: Drive `files.get?fields=modifiedTime` (is the spreadsheet unchanged since
the last run?), `spreadsheets.get` (its tabs, when the connection lists no ranges) and
`values:batchGet` (every range of a spreadsheet in one call, typed with
`valueRenderOption=UNFORMATTED_VALUE` and a `dateTimeRenderOption`). Sheets allows 60 read
requests per minute per user per project (300 per project): the connection's Sheets calls
are paced at 1/s by default (GOOGLE_SHEETS_RATE_PER_S); a 429 (RESOURCE_EXHAUSTED, often
without Retry-After) is waited out with backoff by HttpSourceClient. Drive's metadata calls
have their own, much larger quota and limiter; Drive (and older Sheets answers) may say "rate
limited" as 403 `userRateLimitExceeded`/`rateLimitExceeded`: waited out like a 429. A spreadsheet not shared with the account
answers 403 (Sheets) or 404 (Drive): permanent, never retried. Drive's 404 is a NotFound
(deleted for good, or no longer shared: Drive does not say which) and a trashed spreadsheet
answers `trashed: true`: sync.py treats both as gone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from sync_pipelines.connections import Connection
from sync_pipelines.errors import RateLimited, SourcePermanentError, parse_retry_after
from sync_pipelines.google_auth import (
    GOOGLE_TOKEN_URI,
    GoogleAuth,
    google_credentials,
    uses_service_account,
)
from sync_pipelines.http import HttpSourceClient, HttpStatusError
from sync_pipelines.resilience import CallStats, MalformedResponseError
from sync_pipelines.sources.resource import SourceResourceBase

SOURCE = "google_sheets"
SCOPES = (
    "https://www.googleapis.com/auth/spreadsheets.readonly",
    "https://www.googleapis.com/auth/drive.metadata.readonly",
)
GOOGLE_DRIVE_URL = "https://www.googleapis.com"
READS_PER_MINUTE_PER_USER = 60  # Sheets API usage limits
DRIVE_RATE_PER_S = 10.0  # Drive allows 12,000 queries per minute per user: far from binding


RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def _reasons(body: bytes) -> set[str]:
    """The `reason`s of a Google error body ({"error": {"errors": [{"reason"}]}})."""
    try:
        error = json.loads(body or b"{}").get("error")
        return {e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)}
    except (ValueError, AttributeError):
        return set()


class NotFound(SourcePermanentError):
    """Google answered 404: the file does not exist for this account (deleted for good, or
    not shared with it)."""


class GoogleHttp(HttpSourceClient):
    """The shared client, reading Google's 403 rate-limit reasons as a 429 and a 404 as
    NotFound (permanent, and recognisable: a deleted spreadsheet is not a failed run)."""

    def _attempt(self, request, check):
        try:
            return super()._attempt(request, check)
        except HttpStatusError as exc:
            if exc.status_code == 403 and _reasons(exc.body) & RATE_LIMIT_REASONS:
                raise RateLimited(parse_retry_after(exc.headers.get("retry-after"))) from None
            if exc.status_code == 404:
                raise NotFound(
                    f"{self.label}: {request.method} {request.url.path} on {request.url.host}: "
                    "404 not found (deleted, or not shared with this account)"
                ) from None
            raise


def _value_ranges_check(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("valueRanges", []), list):
        raise MalformedResponseError("a batchGet answer without a valueRanges list")


def _sheets_check(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("sheets", []), list):
        raise MalformedResponseError("a spreadsheet without a sheets list")


class GoogleSheetsResource(SourceResourceBase):
    """How to talk to Google Sheets; the key and the spreadsheets come from each connection."""

    ENV_PREFIX: ClassVar[str] = "GOOGLE_SHEETS"
    DEFAULT_BASE_URL: ClassVar[str | None] = "https://sheets.googleapis.com"
    DOCUMENTED_RATE_PER_S: ClassVar[float] = READS_PER_MINUTE_PER_USER / 60
    DEFAULT_PAGE_SIZE: ClassVar[int] = 200  # rows handed to the loader at a time
    MAX_PAGE_SIZE: ClassVar[int] = 10_000

    token_uri: str | None = Field(
        default=None,
        description="OAuth token endpoint; unset: the connection option token_uri, "
        "GOOGLE_SHEETS_TOKEN_URI, else Google's.",
    )
    drive_base_url: str | None = Field(
        default=None,
        description="Drive API URL; unset: GOOGLE_SHEETS_DRIVE_URL, else the Sheets URL "
        "when it is not Google's (a proxy or the sandbox serves both), else Google's.",
    )

    def token_uri_for(self, connection: Connection) -> str:
        return (
            connection.options.get("token_uri")
            or self.token_uri
            or os.environ.get("GOOGLE_SHEETS_TOKEN_URI")
            or GOOGLE_TOKEN_URI
        )

    def drive_url_for(self, connection: Connection) -> str:
        sheets = self.base_url_for(connection)
        own = sheets if sheets.rstrip("/") != self.DEFAULT_BASE_URL else GOOGLE_DRIVE_URL
        return self.drive_base_url or os.environ.get("GOOGLE_SHEETS_DRIVE_URL") or own

    def client_for(self, connection: Connection) -> SheetsClient:
        self.pages()  # configuration errors come before the secret is read
        label = f"{SOURCE} connection '{connection.id}'"
        subject = connection.options.get("subject") if uses_service_account(connection) else None
        credentials = google_credentials(
            connection, label, self.token_uri_for(connection), SCOPES, subject=subject
        )
        auth = GoogleAuth(credentials, label)
        settings = {
            "source": SOURCE,
            "connection_id": connection.id,
            "auth": auth,
            "timeout_s": self.checked_timeout(),
            "max_attempts": self.max_attempts,
            "max_rate_limit_waits": self.max_rate_limit_waits,
        }
        sheets = GoogleHttp(base_url=self.base_url_for(connection), rate_per_s=self.pace(),
                            **settings)  # fmt: skip
        drive = GoogleHttp(
            base_url=self.drive_url_for(connection),
            rate_per_s=DRIVE_RATE_PER_S if self.pace() else 0,
            stats=sheets.stats,
            **settings,
        )
        return SheetsClient(sheets, drive)


@dataclass
class SheetsClient:
    sheets: HttpSourceClient
    drive: HttpSourceClient

    @property
    def stats(self) -> CallStats:
        return self.sheets.stats  # shared with drive

    @property
    def label(self) -> str:
        return self.sheets.label

    def close(self) -> None:
        self.sheets.close()
        self.drive.close()

    def modified_time(self, spreadsheet_id: str) -> str | None:
        """Drive's modifiedTime (RFC 3339) of the spreadsheet; None when it is in the trash.
        Raises NotFound when Drive does not know it (deleted for good, or not shared)."""
        body = self.drive.get(
            f"/drive/v3/files/{quote(spreadsheet_id, safe='')}",
            params={"fields": "modifiedTime,trashed", "supportsAllDrives": "true"},
        )
        if not isinstance(body, dict) or not isinstance(body.get("modifiedTime"), str):
            raise MalformedResponseError(f"{self.label}: a Drive file without modifiedTime")
        return None if body.get("trashed") is True else body["modifiedTime"]

    def spreadsheet(self, spreadsheet_id: str) -> dict:
        """{title, sheets: [{sheetId, title, ...}]}: the spreadsheet's title and grid tabs."""
        body = self.sheets.get(
            f"/v4/spreadsheets/{quote(spreadsheet_id, safe='')}",
            params={"fields": "spreadsheetId,properties.title,sheets.properties"},
            check=_sheets_check,
        )
        tabs = [
            s["properties"]
            for s in body.get("sheets") or []
            if isinstance(s, dict) and isinstance(s.get("properties"), dict)
            and s["properties"].get("sheetType", "GRID") == "GRID"
        ]  # fmt: skip
        title = (body.get("properties") or {}).get("title") or spreadsheet_id
        return {"title": title, "sheets": tabs}

    def batch_get(
        self, spreadsheet_id: str, ranges: Sequence[str], value_render: str, date_render: str
    ) -> list[dict]:
        """One valueRange per range, in order ({range, values?}): a single read request."""
        body = self.sheets.get(
            f"/v4/spreadsheets/{quote(spreadsheet_id, safe='')}/values:batchGet",
            params={
                "ranges": list(ranges),
                "majorDimension": "ROWS",
                "valueRenderOption": value_render,
                "dateTimeRenderOption": date_render,
            },
            check=_value_ranges_check,
        )
        found = body.get("valueRanges") or []
        if len(found) != len(ranges):
            raise MalformedResponseError(
                f"{self.label}: batchGet answered {len(found)} ranges for {len(ranges)}"
            )
        return found
