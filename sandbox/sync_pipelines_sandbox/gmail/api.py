"""Gmail API v1 emulator: the read side of users.* and Google's OAuth 2.0 token endpoint.

Routes (under /gmail/v1/users/{userId}, userId "me" or the token's own mailbox, else 403
"Delegation denied"): getProfile, labels.list, messages.list (`q` with after:/before: as epoch
seconds or YYYY/MM/DD, repeated `labelIds` all required, `includeSpamTrash`, `pageToken`,
`maxResults` ≤ 500; no `messages` key when nothing matches), messages.get (`format` full,
metadata or minimal), messages.attachments.get and history.list (`startHistoryId` required;
404 when older than the retained history; `historyTypes`, `labelId`). Newest messages first.
`POST /token` is Google's token endpoint (google_oauth.py): refresh_token (client id and secret
checked) and the service account's JWT bearer assertion (signature checked against the key the
sandbox generated at start, `sub` must be a company mailbox, scope must allow Gmail).
Errors are Google's: {"error": {"code", "message", "errors": [{"message", "domain",
"reason"}], "status"}}; token errors are OAuth's {"error", "error_description"}.

Test knobs on the state: `short_pages` (list pages hold fewer than maxResults, as Gmail's may),
`forbid_next(n, reason)` (the next n API calls answer 403 with that reason: Gmail's
`userRateLimitExceeded`/`rateLimitExceeded` or a permission error).
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.gmail.data import GmailData, Mailbox
from sync_pipelines_sandbox.google_errors import GoogleError, error_body
from sync_pipelines_sandbox.google_oauth import GoogleOAuth
from sync_pipelines_sandbox.paged import (
    ApiError,
    Call,
    Plain,
    RouteTable,
    decode_cursor,
    encode_cursor,
)

SANDBOX_GMAIL_REFRESH_TOKEN = "1//sandbox-gmail-refresh-token"
SANDBOX_GMAIL_CLIENT_ID = "sandbox-client.apps.googleusercontent.com"
SANDBOX_GMAIL_CLIENT_SECRET = "sandbox-client-secret"
GMAIL_SCOPES = {
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
}
PREFIX = "/gmail/v1/users/{user_id}"


class GmailState:
    """The emulator's state: the company's mailboxes, its token endpoint and test knobs."""

    def __init__(self, company: Company):
        self.data = GmailData.of(company)
        self.oauth = GoogleOAuth(
            scopes=GMAIL_SCOPES,
            clients={SANDBOX_GMAIL_CLIENT_ID: SANDBOX_GMAIL_CLIENT_SECRET},
            refresh_tokens={SANDBOX_GMAIL_REFRESH_TOKEN: self.data.owner},
            subjects=lambda subject: subject in self.data.people,
        )
        self.key = self.oauth.key  # generated when first used
        self.access_tokens = self.oauth.access_tokens  # token -> mailbox address
        self.token_requests = self.oauth.token_requests  # grant types, in order
        self.short_pages = False
        self._forbidden: list[str] = []
        self._lock = threading.Lock()

    def forbid_next(self, count: int, reason: str) -> None:
        with self._lock:
            self._forbidden.extend([reason] * count)

    def _next_forbidden(self) -> str | None:
        with self._lock:
            return self._forbidden.pop(0) if self._forbidden else None

    def issue(self, address: str) -> str:
        return self.oauth.issue(address)

    def revoke_access_tokens(self) -> None:
        """Every access token expires at once (a refresh is needed)."""
        self.oauth.revoke_access_tokens()


class View:
    """One request's mailbox and its repeated query parameters."""

    def __init__(self, state: GmailState, box: Mailbox, request: Request):
        self.state, self.box = state, box
        self.multi = request.query_params.getlist


# ---------------------------------------------------------------------------- handlers
def profile(call: Call) -> dict:
    box = call.state.box
    visible = [m for m in box.mails.values()]
    return {
        "emailAddress": box.address,
        "messagesTotal": len(visible),
        "threadsTotal": len({m.thread_id for m in visible}),
        "historyId": str(box.history_id),
    }


def labels(call: Call) -> dict:
    return {"labels": call.state.box.labels()}


_TERM = re.compile(r"^(after|before|newer|older):(\S+)$")


def _moment(value: str) -> float:
    if value.isdigit():
        return float(value)
    try:  # Gmail reads dates as midnight Pacific time; UTC is close enough here
        return datetime.strptime(value, "%Y/%m/%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise GoogleError(400, f"Invalid query term: {value}") from None


def _query(q: str) -> tuple[float, float, set[str]]:
    after, before, labels_in = float("-inf"), float("inf"), set()
    for term in q.split():
        found = _TERM.match(term)
        if found:
            at = _moment(found.group(2))
            if found.group(1) in ("after", "newer"):
                after = max(after, at)
            else:
                before = min(before, at)
        elif term.startswith(("in:", "label:")):
            labels_in.add(term.split(":", 1)[1].upper())
        else:
            raise GoogleError(400, f"the sandbox does not search for {term!r}")
    return after, before, labels_in


def _page(call: Call, items: list, key: str, extra: dict) -> dict:
    size = call.int_arg("maxResults", 100, 1, 500)
    fingerprint = call.fingerprint(("pageToken", "maxResults"))
    token = call.query.get("pageToken")
    offset = decode_cursor(token, fingerprint, "pageToken") if token else 0
    if call.state.state.short_pages:
        size = max(1, size // 2 - offset % 3)
    page = items[offset : offset + size]
    body = dict(extra)
    if page:
        body[key] = page
    if offset + len(page) < len(items):
        body["nextPageToken"] = encode_cursor(offset + len(page), fingerprint)
    return body


def list_messages(call: Call) -> dict:
    view: View = call.state
    after, before, labels_in = _query(call.query.get("q", ""))
    wanted = set(view.multi("labelIds")) | labels_in
    spam_trash = call.query.get("includeSpamTrash", "false").lower() == "true"
    spam_trash = spam_trash or bool(wanted & {"SPAM", "TRASH"})
    found = [
        m
        for m in view.box.mails.values()
        if after <= m.internal_ms / 1000 < before
        and wanted <= m.labels
        and (spam_trash or m.visible)
    ]
    found.sort(key=lambda m: (-m.internal_ms, m.id))
    items = [{"id": m.id, "threadId": m.thread_id} for m in found]
    return _page(call, items, "messages", {"resultSizeEstimate": len(items)})


def _mail(view: View, message_id: str):
    mail = view.box.mails.get(message_id)
    if mail is None:
        raise GoogleError(404, "Requested entity was not found.")
    return mail


def get_message(call: Call) -> dict:
    fmt = call.query.get("format", "full")
    if fmt not in ("full", "metadata", "minimal", "raw"):
        raise GoogleError(400, f"Invalid value at 'format' ({fmt})")
    return _mail(call.state, call.path_params["message_id"]).resource(fmt)


def get_attachment(call: Call) -> dict:
    mail = _mail(call.state, call.path_params["message_id"])
    data = mail.attachments.get(call.path_params["attachment_id"])
    if data is None:
        raise GoogleError(400, "Invalid attachment token")
    from sync_pipelines_sandbox.gmail.data import b64url

    return {
        "attachmentId": call.path_params["attachment_id"],
        "size": len(data),
        "data": b64url(data),
    }


HISTORY_TYPES = {
    "messageAdded": "messagesAdded",
    "messageDeleted": "messagesDeleted",
    "labelAdded": "labelsAdded",
    "labelRemoved": "labelsRemoved",
}


def list_history(call: Call) -> dict:
    view: View = call.state
    raw = call.query.get("startHistoryId")
    if not raw or not raw.isdigit():
        raise GoogleError(400, "Invalid startHistoryId")
    start = int(raw)
    if start < view.box.history_floor:
        raise GoogleError(404, "Requested entity was not found.")
    types = {HISTORY_TYPES.get(t, t) for t in view.multi("historyTypes")}
    label = call.query.get("labelId")
    records = [
        r
        for r in view.box.history
        if int(r["id"]) > start
        and (not types or types & set(r))
        and (
            not label
            or any(
                label in e["message"].get("labelIds", [])
                for k in HISTORY_TYPES.values()
                for e in r.get(k, [])
            )
        )
    ]
    return _page(call, records, "history", {"historyId": str(view.box.history_id)})


ROUTES = (
    Plain(f"{PREFIX}/profile", "getProfile", profile),
    Plain(f"{PREFIX}/labels", "labels.list", labels),
    Plain(f"{PREFIX}/messages", "messages.list", list_messages),
    Plain(f"{PREFIX}/messages/{{message_id}}", "messages.get", get_message),
    Plain(
        f"{PREFIX}/messages/{{message_id}}/attachments/{{attachment_id}}",
        "messages.attachments.get",
        get_attachment,
    ),
    Plain(f"{PREFIX}/history", "history.list", list_history),
    Plain("/token", "token", lambda call: {}, method="POST"),
)
TABLE = RouteTable(
    routes=ROUTES,
    error_body=error_body,
    faults={
        "429": "Resource has been exhausted (e.g. check quota).",
        "401": "Request had invalid authentication credentials.",
        "500": "Internal error encountered.",
        "503": "The service is currently unavailable.",
    },
)


def _endpoint(route: Plain, state: GmailState):
    async def endpoint(request: Request) -> JSONResponse:
        try:
            box = _authorized(request, state)
            reason = state._next_forbidden()
            if reason is not None:
                raise GoogleError(403, _FORBIDDEN.get(reason, "Forbidden"), reason)
            call = await Call.of(request, View(state, box, request))
            return JSONResponse(await run_in_threadpool(_locked, state, route, call))
        except GoogleError as exc:
            return JSONResponse(error_body(exc.status, exc.message, exc.reason), exc.status)
        except ApiError as exc:
            return JSONResponse(error_body(exc.status, exc.message), exc.status)

    return endpoint


def _locked(state: GmailState, route: Plain, call: Call) -> Any:
    with state.data.lock:
        return route.handle(call)


_FORBIDDEN = {
    "userRateLimitExceeded": "User-rate limit exceeded. Retry after 2026-01-01T00:00:01.000Z",
    "rateLimitExceeded": "Rate Limit Exceeded",
    "insufficientPermissions": "Request had insufficient authentication scopes.",
}


def _authorized(request: Request, state: GmailState) -> Mailbox:
    address = state.oauth.identity(request.headers.get("authorization", ""))
    if address is None:
        raise GoogleError(401, TABLE.faults["401"])
    user = request.path_params.get("user_id", "me")
    if user not in ("me", address):
        raise GoogleError(403, f"Delegation denied for {address}")
    return state.data.mailbox(address)


def make_app(state: GmailState) -> Starlette:
    routes = [
        Route(r.path, _endpoint(r, state), methods=[r.method]) for r in ROUTES if r.route != "token"
    ]
    routes.append(Route("/token", state.oauth.endpoint, methods=["POST"]))
    return Starlette(routes=routes)


def _env(url: str, state: Any) -> dict[str, str]:
    return {
        "GMAIL_BASE_URL": url,
        "GMAIL_TOKEN_URI": f"{url}/token",
        "GMAIL_REFRESH_TOKEN": SANDBOX_GMAIL_REFRESH_TOKEN,
        "GMAIL_CLIENT_ID": SANDBOX_GMAIL_CLIENT_ID,
        "GMAIL_CLIENT_SECRET": SANDBOX_GMAIL_CLIENT_SECRET,
    }


EMULATOR = Emulator(
    name="gmail",
    port_offset=10,
    make_state=lambda company, options: GmailState(company),
    make_app=make_app,
    route_of=TABLE.route_of,
    fault_body=TABLE.fault_body,
    client_url=lambda root: root,
    env=_env,
)
