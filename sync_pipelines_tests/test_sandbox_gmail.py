"""The Gmail emulator answers as Gmail's reference says: its token endpoint's two grants and
OAuth errors, Google's error bodies, messages.list filters and paging, history with its 404,
the mailbox's MIME shapes (a real PDF among them) and the delegation check."""

import base64
import io

import httpx
import pytest
from google.auth import jwt
from google.auth.crypt import RSASigner
from pypdf import PdfReader
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.gmail.api import (
    SANDBOX_GMAIL_CLIENT_ID,
    SANDBOX_GMAIL_CLIENT_SECRET,
    SANDBOX_GMAIL_REFRESH_TOKEN,
)
from sync_pipelines_sandbox.gmail.data import GmailData
from sync_pipelines_sandbox.server import Sandbox

from sync_pipelines import clock

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/gmail.readonly"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(company=Company.generate(seed=5, messages=400, days=3)) as sb:
        yield sb


def token(sandbox, **form) -> httpx.Response:
    return httpx.post(f"{sandbox.urls['gmail']}/token", data=form)


def api(sandbox, path: str, access: str, **params) -> httpx.Response:
    return httpx.get(
        f"{sandbox.urls['gmail']}/gmail/v1/users/{path}",
        params=params,
        headers={"Authorization": f"Bearer {access}"},
    )


def refresh(sandbox) -> str:
    answer = token(sandbox, grant_type="refresh_token", refresh_token=SANDBOX_GMAIL_REFRESH_TOKEN,
                   client_id=SANDBOX_GMAIL_CLIENT_ID, client_secret=SANDBOX_GMAIL_CLIENT_SECRET)  # fmt: skip
    assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
    assert answer.json()["expires_in"] > 0
    return answer.json()["access_token"]


def test_the_token_endpoint_refuses_as_oauth_does(sandbox):
    bad_grant = token(sandbox, grant_type="refresh_token", refresh_token="1//nope",
                      client_id=SANDBOX_GMAIL_CLIENT_ID, client_secret=SANDBOX_GMAIL_CLIENT_SECRET)  # fmt: skip
    assert bad_grant.status_code == 400 and bad_grant.json()["error"] == "invalid_grant"
    bad_client = token(sandbox, grant_type="refresh_token", refresh_token="x", client_id="c",
                       client_secret="s")  # fmt: skip
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    assert token(sandbox, grant_type="password").json()["error"] == "unsupported_grant_type"


def test_a_signed_assertion_gets_a_token_for_its_subject(sandbox):
    info = sandbox.gmail.key.info(f"{sandbox.urls['gmail']}/token")
    signer = RSASigner.from_service_account_info(info)
    other = sorted(sandbox.gmail.data.people)[1]

    def assertion(sub: str, scope: str = SCOPE) -> str:
        now = int(clock.now_epoch())
        claims = {"iss": info["client_email"], "sub": sub, "scope": scope,
                  "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 600}  # fmt: skip
        return jwt.encode(signer, claims).decode()

    answer = token(sandbox, grant_type=JWT_GRANT, assertion=assertion(other))
    access = answer.json()["access_token"]
    assert api(sandbox, "me/profile", access).json()["emailAddress"] == other
    outsider = token(sandbox, grant_type=JWT_GRANT, assertion=assertion("x@elsewhere.test"))
    assert outsider.status_code == 401 and outsider.json()["error"] == "unauthorized_client"
    no_scope = token(sandbox, grant_type=JWT_GRANT, assertion=assertion(other, "openid"))
    assert no_scope.json()["error"] == "invalid_scope"
    tampered = assertion(other)[:-6] + "AAAAAA"
    assert (
        token(sandbox, grant_type=JWT_GRANT, assertion=tampered).json()["error"] == "invalid_grant"
    )


def test_errors_have_googles_shape_and_delegation_is_checked(sandbox):
    answer = api(sandbox, "me/profile", "ya29.unknown")
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == 401 and error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0]["reason"] == "authError"
    access = refresh(sandbox)
    other = sorted(sandbox.gmail.data.people)[1]
    assert api(sandbox, f"{other}/profile", access).status_code == 403
    owner = sandbox.gmail.data.owner
    assert api(sandbox, f"{owner}/profile", access).json()["emailAddress"] == owner
    sandbox.gmail.forbid_next(1, "userRateLimitExceeded")
    limited = api(sandbox, "me/labels", access).json()["error"]
    assert limited["code"] == 403 and limited["errors"][0]["domain"] == "usageLimits"


def test_listing_filters_by_date_and_label_newest_first_with_tokens(sandbox):
    access = refresh(sandbox)
    data: GmailData = sandbox.gmail.data
    start, end = sandbox.company.span()
    truth = data.expected(data.owner, start, end)
    seen, params = [], {"q": f"after:{start} before:{end}", "maxResults": 25}
    while True:
        body = api(sandbox, "me/messages", access, **params).json()
        seen += body.get("messages", [])
        if "nextPageToken" not in body:
            break
        params["pageToken"] = body["nextPageToken"]
    assert [m["id"] for m in seen] == [
        m.id for m in sorted(truth, key=lambda m: (-m.internal_ms, m.id))
    ]
    labelled = api(sandbox, "me/messages", access, labelIds="Label_1", maxResults=500).json()
    assert {m["id"] for m in labelled["messages"]} == {m.id for m in truth if "Label_1" in m.labels}
    spam = api(sandbox, "me/messages", access, labelIds="SPAM").json()["messages"]
    assert spam and all("SPAM" in data.mailbox(data.owner).mails[m["id"]].labels for m in spam)
    tampered = api(sandbox, "me/messages", access, pageToken="bm9wZQ")
    assert tampered.status_code == 400


def test_history_records_changes_and_expires(sandbox):
    access = refresh(sandbox)
    data: GmailData = sandbox.gmail.data
    start = api(sandbox, "me/profile", access).json()["historyId"]
    assert "history" not in api(sandbox, "me/history", access, startHistoryId=start).json()
    mail = data.add_message(data.owner, internal_ms=1_000)
    data.move_to_trash(data.owner, mail.id)
    data.delete_message(data.owner, mail.id)
    body = api(sandbox, "me/history", access, startHistoryId=start).json()
    kinds = [next(k for k in r if k not in ("id", "messages")) for r in body["history"]]
    assert kinds == ["messagesAdded", "labelsAdded", "labelsRemoved", "messagesDeleted"]
    assert int(body["historyId"]) > int(start)
    only = api(sandbox, "me/history", access, startHistoryId=start, historyTypes="messageDeleted")
    assert [list(r)[-1] for r in only.json()["history"]] == ["messagesDeleted"]
    data.expire_history(data.owner)
    expired = api(sandbox, "me/history", access, startHistoryId=start)
    assert expired.status_code == 404 and expired.json()["error"]["status"] == "NOT_FOUND"


def test_messages_carry_gmail_mime_trees_and_real_attachments(sandbox):
    access = refresh(sandbox)
    data: GmailData = sandbox.gmail.data
    pdf_mail = data.of_kind(data.owner, "pdf")
    message = api(sandbox, f"me/messages/{pdf_mail.id}", access).json()
    assert message["payload"]["mimeType"] == "multipart/mixed"
    assert message["internalDate"] == str(pdf_mail.internal_ms)
    part = message["payload"]["parts"][1]
    assert part["filename"].endswith(".pdf") and "data" not in part["body"]
    blob = api(sandbox, f"me/messages/{pdf_mail.id}/attachments/{part['body']['attachmentId']}",
               access).json()  # fmt: skip
    raw = base64.urlsafe_b64decode(blob["data"])
    assert blob["size"] == len(raw)
    assert "Quarterly report" in PdfReader(io.BytesIO(raw)).pages[0].extract_text()
    latin = api(sandbox, f"me/messages/{data.of_kind(data.owner, 'latin1').id}", access).json()
    content_type = next(
        h["value"] for h in latin["payload"]["headers"] if h["name"] == "Content-Type"
    )
    assert "ISO-8859-1" in content_type
    assert "déplacée".encode("iso-8859-1") in base64.urlsafe_b64decode(
        latin["payload"]["body"]["data"]
    )
    minimal = api(sandbox, f"me/messages/{pdf_mail.id}", access, format="minimal").json()
    assert "payload" not in minimal
    assert api(sandbox, "me/messages/0000000000000000", access).status_code == 404
