"""The Sheets emulator answers as the Sheets v4 and Drive v3 references say: a service
account's token, batchGet's render options and major dimension, empty ranges without
`values`, A1 parse errors, unshared spreadsheets refused, Drive's field selection and its
modifiedTime moving when a cell is edited."""

import httpx
import pytest
from google.auth import jwt
from google.auth.crypt import RSASigner
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.google_oauth import GOOGLE_TOKEN_AUDIENCE, JWT_GRANT, SANDBOX_KEY
from sync_pipelines_sandbox.google_sheets.data import PRIVATE_ID, SALES_ID
from sync_pipelines_sandbox.server import Sandbox

from sync_pipelines import clock

SCOPE = "https://www.googleapis.com/auth/spreadsheets.readonly"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(company=Company.generate(seed=5, messages=300, days=3)) as sb:
        yield sb


def assertion(sub: str | None = None, scope: str = SCOPE) -> str:
    info = SANDBOX_KEY.info(GOOGLE_TOKEN_AUDIENCE)
    now = int(clock.now_epoch())
    claims = {"iss": info["client_email"], "scope": scope, "aud": GOOGLE_TOKEN_AUDIENCE,
              "iat": now, "exp": now + 600, **({"sub": sub} if sub else {})}  # fmt: skip
    return jwt.encode(RSASigner.from_service_account_info(info), claims).decode()


def token(sandbox, **form) -> httpx.Response:
    return httpx.post(f"{sandbox.urls['google_sheets']}/token", data=form)


@pytest.fixture(scope="module")
def access(sandbox) -> str:
    answer = token(sandbox, grant_type=JWT_GRANT, assertion=assertion())
    assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
    return answer.json()["access_token"]


def get(sandbox, path: str, access: str, **params) -> httpx.Response:
    return httpx.get(f"{sandbox.urls['google_sheets']}{path}", params=params,
                     headers={"Authorization": f"Bearer {access}"})  # fmt: skip


def batch(sandbox, access, ranges, **params) -> httpx.Response:
    return get(sandbox, f"/v4/spreadsheets/{SALES_ID}/values:batchGet", access,
               ranges=ranges, **params)  # fmt: skip


def test_the_token_endpoint_takes_the_account_itself_and_refuses_other_grants(sandbox):
    assert token(sandbox, grant_type=JWT_GRANT, assertion=assertion("x@acme.test")).json()[
        "error"] == "unauthorized_client"  # fmt: skip
    assert token(sandbox, grant_type=JWT_GRANT, assertion=assertion(scope="openid")).json()[
        "error"] == "invalid_scope"  # fmt: skip
    assert token(sandbox, grant_type="refresh_token", refresh_token="x", client_id="c",
                 client_secret="s").status_code == 401  # fmt: skip


def test_spreadsheet_properties_list_every_tab(sandbox, access):
    body = get(sandbox, f"/v4/spreadsheets/{SALES_ID}", access).json()
    titles = [s["properties"]["title"] for s in body["sheets"]]
    assert titles == ["Leads", "Pipeline"] and body["properties"]["title"] == "Sales pipeline"
    assert body["sheets"][1]["properties"]["gridProperties"]["rowCount"] >= 1000


def test_batch_get_renders_values_as_asked(sandbox, access):
    ranges = ["Pipeline!A1:H2", "'Pipeline'!D2:F2", "Leads!A5000:B5001"]
    typed = batch(sandbox, access, ranges, valueRenderOption="UNFORMATTED_VALUE",
                  dateTimeRenderOption="SERIAL_NUMBER").json()["valueRanges"]  # fmt: skip
    header, row = typed[0]["values"]
    assert header[3] == "Amount" and isinstance(row[3], float) and isinstance(row[5], int)
    assert isinstance(row[6], bool) and typed[0]["range"] == "Pipeline!A1:H2"
    assert "values" not in typed[2]  # past the data: no values key at all
    shown = batch(sandbox, access, ranges[1:2], valueRenderOption="UNFORMATTED_VALUE",
                  dateTimeRenderOption="FORMATTED_STRING").json()["valueRanges"][0]  # fmt: skip
    assert len(shown["values"][0][2]) == 10 and shown["values"][0][2][4] == "-"
    formatted = batch(sandbox, access, ranges[1:2]).json()["valueRanges"][0]["values"][0]
    assert formatted[0].startswith("$") and all(isinstance(v, str) for v in formatted)
    columns = batch(sandbox, access, ["Pipeline!A1:B3"], majorDimension="COLUMNS").json()
    assert columns["valueRanges"][0]["values"][0][0] == "Deal ID"


def test_errors_have_googles_shape(sandbox, access):
    bad = batch(sandbox, access, ["Nope!A1"])
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    private = get(sandbox, f"/v4/spreadsheets/{PRIVATE_ID}", access)
    assert private.status_code == 403 and private.json()["error"]["status"] == "PERMISSION_DENIED"
    assert get(sandbox, f"/drive/v3/files/{PRIVATE_ID}", access).status_code == 404
    assert get(sandbox, f"/v4/spreadsheets/{SALES_ID}", "ya29.unknown").status_code == 401
    assert batch(sandbox, access, ["Leads"], valueRenderOption="RAW").status_code == 400


def test_drive_answers_the_fields_asked_and_an_edit_moves_modified_time(sandbox, access):
    path = f"/drive/v3/files/{SALES_ID}"
    assert set(get(sandbox, path, access).json()) == {"kind", "id", "name", "mimeType"}
    before = get(sandbox, path, access, fields="modifiedTime").json()
    assert set(before) == {"modifiedTime"} and before["modifiedTime"].endswith("Z")
    sandbox.google_sheets.data.edit_cell(SALES_ID, "Leads", 3, 2, "Zoë")
    after = get(sandbox, path, access, fields="modifiedTime").json()["modifiedTime"]
    assert after > before["modifiedTime"]
    one = get(sandbox, f"/v4/spreadsheets/{SALES_ID}/values/Leads!B3", access).json()
    assert one["values"] == [["Zoë"]]


def test_a_deleted_tab_leaves_the_grid_and_a_deleted_spreadsheet_the_drive():
    from sync_pipelines_sandbox.google_sheets.data import LEGACY_ID

    with Sandbox(company=Company.generate(seed=6, messages=300, days=3)) as sandbox:
        access = token(sandbox, grant_type=JWT_GRANT, assertion=assertion()).json()["access_token"]
        data, path = sandbox.google_sheets.data, f"/drive/v3/files/{SALES_ID}"
        before = get(sandbox, path, access, fields="modifiedTime,trashed").json()
        assert before["trashed"] is False
        data.delete_tab(SALES_ID, "Leads")
        tabs = get(sandbox, f"/v4/spreadsheets/{SALES_ID}", access).json()["sheets"]
        assert [t["properties"]["title"] for t in tabs] == ["Pipeline"]
        assert (
            get(sandbox, path, access, fields="modifiedTime").json()["modifiedTime"]
            > (before["modifiedTime"])
        )
        data.delete_spreadsheet(SALES_ID)
        assert get(sandbox, path, access, fields="trashed").json() == {"trashed": True}
        data.delete_spreadsheet(LEGACY_ID, permanently=True)
        gone = get(sandbox, f"/drive/v3/files/{LEGACY_ID}", access)
        assert gone.status_code == 404 and gone.json()["error"]["status"] == "NOT_FOUND"
        assert get(sandbox, f"/v4/spreadsheets/{LEGACY_ID}", access).status_code == 404
