"""Sheets API v4 and Drive v3 emulator: the read calls a spreadsheet sync makes.

Routes: `GET /v4/spreadsheets/{id}` (spreadsheets.get: properties and each sheet's properties,
grid size included), `GET /v4/spreadsheets/{id}/values:batchGet` (repeated `ranges`,
`majorDimension` ROWS|COLUMNS, `valueRenderOption`, `dateTimeRenderOption`; one valueRange per
range in order, `values` left out when the range is empty), `GET /v4/spreadsheets/{id}/values/
{range}` (values.get), `GET /drive/v3/files/{id}` (`fields` picks among id, name, mimeType,
modifiedTime, trashed) and Google's token endpoint `POST /token` (google_oauth.py). A caller sees only
spreadsheets shared with it (else 403 PERMISSION_DENIED "The caller does not have permission");
errors are Google's {"error": {"code", "message", "errors", "status"}}. Knob routes:
spreadsheets.get, values.batchGet, values.get, files.get, sheets.token.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.google_errors import error_body
from sync_pipelines_sandbox.google_oauth import GoogleOAuth
from sync_pipelines_sandbox.google_sheets.data import SheetsData, Spreadsheet
from sync_pipelines_sandbox.google_sheets.render import (
    DATE_OPTIONS,
    VALUE_OPTIONS,
    column_letters,
    parse_range,
    quote_tab,
    render,
    trimmed,
)
from sync_pipelines_sandbox.paged import ApiError, Call, Plain, RouteTable

SCOPES = {
    "https://www.googleapis.com/auth/spreadsheets.readonly",
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive.readonly",
    "https://www.googleapis.com/auth/drive.metadata.readonly",
    "https://www.googleapis.com/auth/drive",
}
SHEETS_MIME = "application/vnd.google-apps.spreadsheet"


class SheetsState:
    """The emulator's state: the company's spreadsheets and the token endpoint."""

    def __init__(self, company: Company):
        self.data = SheetsData.of(company)
        self.oauth = GoogleOAuth(scopes=SCOPES, clients={}, refresh_tokens={},
                                 subjects=lambda subject: subject is None)  # fmt: skip
        self.key = self.oauth.key


def _book(call: Call) -> Spreadsheet:
    identity, data = call.state[:2]
    book = data.spreadsheets.get(call.path_params["spreadsheet_id"])
    if book is None:
        raise ApiError(404, "Requested entity was not found.")
    if identity not in book.shared_with:
        raise ApiError(403, "The caller does not have permission")
    return book


def get_spreadsheet(call: Call) -> dict:
    book = _book(call)
    return {
        "spreadsheetId": book.spreadsheet_id,
        "properties": {"title": book.title, "locale": "en_US", "timeZone": "Etc/GMT"},
        "sheets": [
            {"properties": {
                "sheetId": s.sheet_id, "title": s.title, "index": i, "sheetType": "GRID",
                "gridProperties": {"rowCount": s.row_count, "columnCount": s.column_count},
            }}
            for i, s in enumerate(book.sheets)
        ],
        "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.spreadsheet_id}/edit",
    }  # fmt: skip


def _options(call: Call) -> tuple[str, str, str]:
    major = call.query.get("majorDimension", "ROWS")
    value = call.query.get("valueRenderOption", "FORMATTED_VALUE")
    date = call.query.get("dateTimeRenderOption", "SERIAL_NUMBER")
    for name, given, allowed in (("majorDimension", major, ("ROWS", "COLUMNS")),
                                 ("valueRenderOption", value, VALUE_OPTIONS),
                                 ("dateTimeRenderOption", date, DATE_OPTIONS)):  # fmt: skip
        if given not in allowed:
            raise ApiError(400, f"Invalid value at '{name}' ({given})")
    return major, value, date


def value_range(book: Spreadsheet, text: str, major: str, value: str, date: str) -> dict:
    tab, row_lo, row_hi, col_lo, col_hi = parse_range(text)
    sheet = book.sheet(tab)
    if sheet is None:
        raise ApiError(400, f"Unable to parse range: {text}")
    row_lo, col_lo = row_lo or 1, col_lo or 1
    row_hi = min(row_hi or sheet.row_count, sheet.row_count)
    col_hi = min(col_hi or sheet.column_count, sheet.column_count)
    rows = []
    for cells in sheet.rows[row_lo - 1 : row_hi]:
        picked = cells[col_lo - 1 : col_hi]
        rows.append([render(c, sheet.formats.get(col_lo - 1 + j), value, date)
                     for j, c in enumerate(picked)])  # fmt: skip
    rows = trimmed(rows)
    if major == "COLUMNS" and rows:
        width = max(len(r) for r in rows)
        padded = [r + [""] * (width - len(r)) for r in rows]
        rows = trimmed([list(col) for col in zip(*padded)])
    answer = {
        "range": f"{quote_tab(sheet.title)}!{column_letters(col_lo)}{row_lo}:"
        f"{column_letters(col_hi)}{row_hi}",
        "majorDimension": major,
    }
    if rows:
        answer["values"] = rows
    return answer


def batch_get(call: Call) -> dict:
    book = _book(call)
    ranges = call.state[2]
    if not ranges:
        raise ApiError(400, "Must specify at least one range.")
    major, value, date = _options(call)
    with call.state[1].lock:
        found = [value_range(book, r, major, value, date) for r in ranges]
    return {"spreadsheetId": book.spreadsheet_id, "valueRanges": found}


def get_values(call: Call) -> dict:
    book = _book(call)
    major, value, date = _options(call)
    with call.state[1].lock:
        return value_range(book, call.path_params["range"], major, value, date)


def get_file(call: Call) -> dict:
    identity, data = call.state[:2]
    book = data.spreadsheets.get(call.path_params["file_id"])
    if book is None or identity not in book.shared_with:
        raise ApiError(404, f"File not found: {call.path_params['file_id']}.")
    modified = datetime.fromtimestamp(book.modified, UTC).isoformat(timespec="milliseconds")
    full = {"kind": "drive#file", "id": book.spreadsheet_id, "name": book.title,
            "mimeType": SHEETS_MIME, "modifiedTime": modified.replace("+00:00", "Z"),
            "trashed": book.trashed}  # fmt: skip
    fields = [f.strip() for f in call.query.get("fields", "").split(",") if f.strip()]
    if not fields:
        fields = ["kind", "id", "name", "mimeType"]
    return {f: full[f] for f in fields if f in full}


ROUTES = (
    Plain("/v4/spreadsheets/{spreadsheet_id}", "spreadsheets.get", get_spreadsheet),
    Plain("/v4/spreadsheets/{spreadsheet_id}/values:batchGet", "values.batchGet", batch_get),
    Plain("/v4/spreadsheets/{spreadsheet_id}/values/{range}", "values.get", get_values),
    Plain("/drive/v3/files/{file_id}", "files.get", get_file),
    Plain("/token", "sheets.token", lambda call: {}, method="POST"),
)
TABLE = RouteTable(
    routes=ROUTES,
    error_body=error_body,
    faults={
        "429": "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per "
        "minute per user' of service 'sheets.googleapis.com'.",
        "401": "Request had invalid authentication credentials.",
        "500": "Internal error encountered.",
        "503": "The service is currently unavailable.",
    },
)


def _endpoint(route: Plain, state: SheetsState):
    async def endpoint(request: Request) -> JSONResponse:
        try:
            identity = state.oauth.identity(request.headers.get("authorization", ""))
            if identity is None:
                raise ApiError(401, TABLE.faults["401"])
            ranges = request.query_params.getlist("ranges")
            call = await Call.of(request, (identity, state.data, ranges))
            return JSONResponse(await run_in_threadpool(route.handle, call))
        except ApiError as exc:
            return JSONResponse(error_body(exc.status, exc.message), exc.status)

    return endpoint


def make_app(state: SheetsState) -> Starlette:
    routes = [Route(r.path, _endpoint(r, state)) for r in ROUTES if r.method == "GET"]
    routes.append(Route("/token", state.oauth.endpoint, methods=["POST"]))
    return Starlette(routes=routes)


def _env(url: str, state: Any) -> dict[str, str]:
    # The process's sandbox key (generated on first use, never stored), as Google hands it out.
    return {
        "GOOGLE_SHEETS_BASE_URL": url,
        "GOOGLE_SHEETS_TOKEN_URI": f"{url}/token",
        "GOOGLE_SHEETS_SERVICE_ACCOUNT_JSON": json.dumps(state.key.info(f"{url}/token")),
    }


EMULATOR = Emulator(
    name="google_sheets",
    port_offset=13,
    make_state=lambda company, options: SheetsState(company),
    make_app=make_app,
    route_of=TABLE.route_of,
    fault_body=TABLE.fault_body,
    client_url=lambda root: root,
    env=_env,
)
