"""Slack Web API emulator: the methods the Slack source calls, with Slack's paging and errors.

Served under `/api/` so `slack_sdk.WebClient(base_url=".../api/")` works unchanged. Slack
answers errors with HTTP 200 and `{"ok": false, "error": ...}` (except 429), cursors are opaque
base64 strings, history is newest first with exclusive bounds unless `inclusive`, and thread
replies only come from conversations.replies (continuation pages omit the parent).

Deletions behave as Slack's (`SlackState.delete_message`, `chat.delete`): a message without
replies leaves history; a parent with replies stays as subtype `tombstone` ("This message was
deleted.") for them, and goes once its last reply is deleted; a deleted reply leaves the
thread, whose reply_count drops.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from sync_pipelines import clock
from sync_pipelines_sandbox.company import (
    TEAM_ID,
    TEAM_NAME,
    Channel,
    ChannelLog,
    Company,
    Message,
    ts_to_us,
)
from sync_pipelines_sandbox.emulator import Emulator

SANDBOX_SLACK_TOKEN = "xoxb-sandbox-token"
TEAM_URL = "https://acme-sandbox.slack.com/"
TOMBSTONE_TEXT = "This message was deleted."
SLACKBOT = "USLACKBOT"  # the author Slack gives a tombstone


class SlackError(Exception):
    """A Slack `ok: false` answer; `error` is Slack's error code."""

    def __init__(self, error: str, **extra: Any):
        super().__init__(error)
        self.error = error
        self.extra = extra


class SlackState:
    """What the emulator serves (the company) plus what clients did to it (`posted`)."""

    def __init__(self, company: Company, token: str = SANDBOX_SLACK_TOKEN):
        self.company = company
        self.valid_tokens: set[str] = {token}
        self.posted: list[dict] = []  # every chat.postMessage, in order

    def set_token(self, token: str) -> None:
        """Make `token` the only valid one (e.g. to simulate a rotated or revoked token)."""
        self.valid_tokens = {token}

    def post(self, channel_id: str, user_id: str, text: str, thread_ts: str | None = None) -> str:
        """A user posts now (top level or in a thread); returns the new message's ts."""
        return self.company.post(channel_id, user_id, text, thread_ts)

    def edit_message(self, channel_id: str, ts: str, new_text: str) -> str:
        """The author edits a message; returns the `edited.ts` Slack will report."""
        return self.company.edit(channel_id, ts, new_text)

    def add_member(self, channel_id: str, user_id: str) -> None:
        self.company.add_member(channel_id, user_id)

    def delete_message(self, channel_id: str, ts: str) -> None:
        """Delete a message as Slack does (see the module docstring); KeyError if none."""
        company = self.company
        with company.lock:
            log = company.log(channel_id)
            key = ts_to_us(ts)
            if key in log.replies:
                _delete_reply(log, key)
            elif key in log.threads:
                parent = log.top[key]
                log.top[key] = Message(parent.ts, SLACKBOT, TOMBSTONE_TEXT, subtype="tombstone")
            elif key in log.top:
                _drop_top(log, key)
            else:
                raise KeyError(f"no message {ts} in {channel_id}")


def _drop_top(log: ChannelLog, key: int) -> None:
    del log.top[key]
    del log.keys[bisect.bisect_left(log.keys, key)]


def _delete_reply(log: ChannelLog, key: int) -> None:
    """A reply leaves its thread; a tombstone parent goes with its last reply, as in Slack."""
    parent = ts_to_us(log.replies.pop(key).thread_ts)
    thread = log.threads[parent]
    thread.remove(key)
    if thread:
        return
    del log.threads[parent]
    if log.top[parent].subtype == "tombstone":
        _drop_top(log, parent)


# ------------------------------------------------------------------ parameter helpers
def _flag(params: Mapping[str, Any], name: str) -> bool:
    return str(params.get(name, "")).lower() in ("1", "true")


def _limit(params: Mapping[str, Any], default: int, maximum: int) -> int:
    try:
        value = int(params.get("limit") or 0)
    except ValueError:
        raise SlackError("invalid_limit") from None
    return min(value, maximum) if value > 0 else default


def _bound(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return ts_to_us(str(value))
    except ValueError:
        raise SlackError(f"invalid_ts_{name}") from None


def _span(keys: list[int], oldest: int, latest: int, inclusive: bool) -> tuple[int, int]:
    """Index range of sorted `keys` between the bounds, exclusive unless `inclusive`."""
    if inclusive:
        return bisect.bisect_left(keys, oldest), bisect.bisect_right(keys, latest)
    return bisect.bisect_right(keys, oldest), bisect.bisect_left(keys, latest)


def _cursor(kind: str, value: str | int) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _read_cursor(params: Mapping[str, Any], kind: str) -> str | None:
    raw = params.get("cursor")
    if not raw:
        return None
    try:
        prefix, _, value = base64.b64decode(str(raw), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    if prefix != kind or not value:
        raise SlackError("invalid_cursor")
    return value


def _ts_cursor(params: Mapping[str, Any]) -> int | None:
    value = _read_cursor(params, "next_ts")
    if value is None:
        return None
    if not value.isdigit():
        raise SlackError("invalid_cursor")
    return int(value)


def _page_meta(next_cursor: str) -> dict:
    return {"response_metadata": {"next_cursor": next_cursor}}


# ------------------------------------------------------------------ serializers
def _channel_json(company: Company, channel: Channel) -> dict:
    bot = company.bot.user_id
    return {
        "id": channel.id,
        "name": channel.name,
        "name_normalized": channel.name,
        "is_channel": not channel.is_private,
        "is_group": channel.is_private,
        "is_im": False,
        "is_mpim": False,
        "is_private": channel.is_private,
        "is_archived": channel.is_archived,
        "is_general": channel.name == "general",
        "is_shared": False,
        "is_ext_shared": False,
        "is_org_shared": False,
        "is_member": bot in channel.members,
        "created": channel.created,
        "creator": channel.members[0] if channel.members else "",
        "num_members": len(channel.members),
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": channel.purpose, "creator": "", "last_set": channel.created},
    }


def _user_json(company: Company, user_id: str) -> dict:
    person = company.user(user_id)
    first, _, last = person.name.partition(" ")
    profile = {
        "real_name": person.name,
        "real_name_normalized": person.name,
        "display_name": person.handle,
        "display_name_normalized": person.handle,
        "first_name": first,
        "last_name": last,
        "team": TEAM_ID,
    }
    if person.email:
        profile["email"] = person.email
    if person.bot_id:
        profile["bot_id"] = person.bot_id
        profile["always_active"] = True
    return {
        "id": person.user_id,
        "team_id": TEAM_ID,
        "name": person.handle,
        "deleted": False,
        "real_name": person.name,
        "tz": "Europe/Paris",
        "tz_label": "Central European Time",
        "tz_offset": 3600,
        "profile": profile,
        "is_admin": False,
        "is_owner": False,
        "is_bot": person.is_bot,
        "is_app_user": False,
        "updated": 1700000000,
    }


def _message_json(log: ChannelLog, key: int) -> dict:
    """A stored message as history/replies show it, thread summary included on parents."""
    msg = log.top.get(key) or log.replies[key]
    out: dict[str, Any] = {"type": "message"}
    if msg.subtype:
        out["subtype"] = msg.subtype
    if msg.subtype == "tombstone":
        out["hidden"] = True
    out["text"] = msg.text
    if msg.user:
        out["user"] = msg.user
        out["team"] = TEAM_ID
    if msg.bot_id:
        out["bot_id"] = msg.bot_id
    if msg.username:
        out["username"] = msg.username
    out["ts"] = msg.ts
    if msg.edited:
        out["edited"] = dict(msg.edited)
    thread = log.threads.get(key) if key in log.top else None
    if thread:
        reply_users = list(
            dict.fromkeys(log.replies[k].user for k in thread if log.replies[k].user)
        )
        out.update(
            thread_ts=msg.ts,
            reply_count=len(thread),
            reply_users_count=len(reply_users),
            latest_reply=log.replies[thread[-1]].ts,
            reply_users=reply_users[:5],
            is_locked=False,
            subscribed=False,
        )
    elif msg.thread_ts:
        out["thread_ts"] = msg.thread_ts
        out["parent_user_id"] = log.top[ts_to_us(msg.thread_ts)].user
    return out


# ------------------------------------------------------------------ methods
def _readable_channel(state: SlackState, params: Mapping[str, Any]) -> Channel:
    """The channel named by `channel` (an ID); private ones the bot is not in do not exist."""
    company = state.company
    channel = company.channel(str(params.get("channel") or ""))
    if channel is None or not company.bot_can_read(channel):
        raise SlackError("channel_not_found")
    return channel


def _member_channel(state: SlackState, params: Mapping[str, Any]) -> Channel:
    channel = _readable_channel(state, params)
    if state.company.bot.user_id not in channel.members:
        raise SlackError("not_in_channel")
    return channel


def auth_test(state: SlackState, params: Mapping[str, Any]) -> dict:
    bot = state.company.bot
    return {
        "url": TEAM_URL,
        "team": TEAM_NAME,
        "user": bot.handle,
        "team_id": TEAM_ID,
        "user_id": bot.user_id,
        "bot_id": bot.bot_id,
        "is_enterprise_install": False,
    }


def conversations_list(state: SlackState, params: Mapping[str, Any]) -> dict:
    company = state.company
    types = {t.strip() for t in str(params.get("types") or "public_channel").split(",")}
    exclude_archived = _flag(params, "exclude_archived")
    limit = _limit(params, 100, 1000)
    with company.lock:
        visible = [
            c
            for c in company.chat_channels()
            if ("private_channel" if c.is_private else "public_channel") in types
            and company.bot_can_read(c)
            and not (exclude_archived and c.is_archived)
        ]
        start = 0
        after = _read_cursor(params, "team")
        if after is not None:
            ids = [c.id for c in visible]
            if after not in ids:
                raise SlackError("invalid_cursor")
            start = ids.index(after)
        page = visible[start : start + limit]
        rest = visible[start + limit : start + limit + 1]
        return {
            "channels": [_channel_json(company, c) for c in page],
            **_page_meta(_cursor("team", rest[0].id) if rest else ""),
        }


def conversations_info(state: SlackState, params: Mapping[str, Any]) -> dict:
    return {"channel": _channel_json(state.company, _readable_channel(state, params))}


def conversations_join(state: SlackState, params: Mapping[str, Any]) -> dict:
    company = state.company
    channel = _readable_channel(state, params)
    if channel.is_private:
        raise SlackError("method_not_supported_for_channel_type")
    if channel.is_archived:
        raise SlackError("is_archived")
    already = company.bot.user_id in channel.members
    company.add_member(channel.id, company.bot.user_id)
    out = {"channel": _channel_json(company, channel)}
    if already:
        out["warning"] = "already_in_channel"
        out["response_metadata"] = {"warnings": ["already_in_channel"]}
    return out


def conversations_history(state: SlackState, params: Mapping[str, Any]) -> dict:
    company = state.company
    channel = _member_channel(state, params)
    limit = _limit(params, 100, 999)
    inclusive = _flag(params, "inclusive")
    oldest = _bound(params, "oldest", 0)
    latest = _bound(params, "latest", time.time_ns() // 1000)
    cursor = _ts_cursor(params)
    with company.lock:
        log = company.log(channel.id)
        keys = log.keys
        lo, hi = _span(keys, oldest, latest, inclusive)
        if cursor is not None:
            hi = min(hi, bisect.bisect_right(keys, cursor))
        first = max(lo, hi - limit)
        messages = [_message_json(log, keys[i]) for i in range(hi - 1, first - 1, -1)]
        has_more = first > lo
        next_cursor = _cursor("next_ts", keys[first - 1]) if has_more else ""
    out = {"messages": messages, "has_more": has_more, "pin_count": 0}
    if has_more:
        out.update(_page_meta(next_cursor))
    return out


def conversations_replies(state: SlackState, params: Mapping[str, Any]) -> dict:
    company = state.company
    channel = _member_channel(state, params)
    if not params.get("ts"):
        raise SlackError("invalid_arguments")
    limit = _limit(params, 1000, 1000)
    inclusive = _flag(params, "inclusive")
    oldest = _bound(params, "oldest", 0)
    latest = _bound(params, "latest", time.time_ns() // 1000)
    cursor = _ts_cursor(params)
    with company.lock:
        log = company.log(channel.id)
        try:
            key = ts_to_us(str(params["ts"]))
        except ValueError:
            raise SlackError("thread_not_found") from None
        if key in log.replies:
            key = ts_to_us(log.replies[key].thread_ts)
        if key not in log.top:
            raise SlackError("thread_not_found")
        replies = log.threads.get(key, [])
        lo, hi = _span(replies, oldest, latest, inclusive)
        page_keys = []
        if cursor is None:
            page_keys.append(key)
        else:
            lo = max(lo, bisect.bisect_left(replies, cursor))
        end = min(hi, lo + limit - len(page_keys))
        page_keys.extend(replies[lo:end])
        messages = [_message_json(log, k) for k in page_keys]
        has_more = end < hi
        next_cursor = _cursor("next_ts", replies[end]) if has_more else ""
    out = {"messages": messages, "has_more": has_more}
    if has_more:
        out.update(_page_meta(next_cursor))
    return out


def conversations_members(state: SlackState, params: Mapping[str, Any]) -> dict:
    channel = _readable_channel(state, params)
    members = list(channel.members)
    return _paged_ids(params, "member", members, 100, "members")


def users_info(state: SlackState, params: Mapping[str, Any]) -> dict:
    user_id = str(params.get("user") or "")
    if state.company.user(user_id) is None:
        raise SlackError("user_not_found")
    return {"user": _user_json(state.company, user_id)}


def users_list(state: SlackState, params: Mapping[str, Any]) -> dict:
    company = state.company
    ids = [p.user_id for p in company.people]
    page = _paged_ids(params, "user", ids, len(ids), "members")
    page["members"] = [_user_json(company, u) for u in page["members"]]
    page["cache_ts"] = int(clock.now_epoch())
    return page


def _paged_ids(
    params: Mapping[str, Any], kind: str, ids: list[str], default: int, key: str
) -> dict:
    limit = _limit(params, default, 1000)
    start = 0
    after = _read_cursor(params, kind)
    if after is not None:
        if after not in ids:
            raise SlackError("invalid_cursor")
        start = ids.index(after)
    rest = ids[start + limit : start + limit + 1]
    return {key: ids[start : start + limit], **_page_meta(_cursor(kind, rest[0]) if rest else "")}


def chat_post_message(state: SlackState, params: Mapping[str, Any]) -> dict:
    """Post as the bot; the channel may be an ID, "#name" or "name"."""
    company = state.company
    target = str(params.get("channel") or "")
    channel = company.channel(target) or company.channel_by_name(target.lstrip("#"))
    if channel is None or not company.bot_can_read(channel):
        raise SlackError("channel_not_found")
    if channel.is_archived:
        raise SlackError("is_archived")
    if company.bot.user_id not in channel.members:
        raise SlackError("not_in_channel")
    text = str(params.get("text") or "")
    blocks, attachments = _json_param(params, "blocks"), _json_param(params, "attachments")
    if not (text or blocks or attachments):
        raise SlackError("no_text")
    thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
    bot = company.bot
    try:
        ts = company.post(channel.id, bot.user_id, text, thread_ts, bot_id=bot.bot_id)
    except (KeyError, ValueError):  # not a top-level message of this channel
        raise SlackError("thread_not_found") from None
    state.posted.append(
        {
            "channel": channel.id,
            "channel_name": channel.name,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "blocks": blocks,
            "attachments": attachments,
        }
    )
    with company.lock:
        log = company.log(channel.id)
        return {
            "channel": channel.id,
            "ts": ts,
            "message": _message_json(log, ts_to_us(ts)),
        }


def chat_delete(state: SlackState, params: Mapping[str, Any]) -> dict:
    """A bot token deletes only the bot's own messages, as Slack's chat.delete."""
    company = state.company
    channel = _readable_channel(state, params)
    ts = str(params.get("ts") or "")
    with company.lock:
        try:
            msg = company.message(channel.id, ts)
        except ValueError:  # not a ts at all
            msg = None
        if msg is None or msg.subtype == "tombstone":
            raise SlackError("message_not_found")
        if msg.user != company.bot.user_id:
            raise SlackError("cant_delete_message")
        state.delete_message(channel.id, ts)
    return {"channel": channel.id, "ts": ts}


def _json_param(params: Mapping[str, Any], name: str) -> Any:
    """`blocks`/`attachments` arrive as JSON text in form posts and as lists in JSON posts."""
    value = params.get(name)
    if isinstance(value, str) and value:
        try:
            return json.loads(value)
        except ValueError:
            raise SlackError(f"invalid_{name}") from None
    return value or None


METHODS: dict[str, Callable[[SlackState, Mapping[str, Any]], dict]] = {
    "auth.test": auth_test,
    "conversations.list": conversations_list,
    "conversations.info": conversations_info,
    "conversations.join": conversations_join,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "conversations.members": conversations_members,
    "users.info": users_info,
    "users.list": users_list,
    "chat.postMessage": chat_post_message,
    "chat.delete": chat_delete,
}


# ------------------------------------------------------------------ HTTP
async def _params(request: Request) -> dict[str, Any]:
    """Query string, then the form or JSON body (slack_sdk uses all three)."""
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if not body:
        return params
    if request.headers.get("content-type", "").startswith("application/json"):
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        params.update(data)
    else:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    return params


def _token(request: Request, params: Mapping[str, Any]) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return str(params["token"]) if params.get("token") else None


def make_app(state: SlackState) -> Starlette:
    async def call(request: Request) -> JSONResponse:
        method = request.path_params["method"]
        try:
            params = await _params(request)
        except ValueError:
            return JSONResponse({"ok": False, "error": "invalid_json"})
        try:
            token = _token(request, params)
            if token is None:
                raise SlackError("not_authed")
            if token not in state.valid_tokens:
                raise SlackError("invalid_auth")
            handler = METHODS.get(method)
            if handler is None:
                raise SlackError("unknown_method", req_method=method)
            return JSONResponse({"ok": True, **handler(state, params)})
        except SlackError as exc:
            return JSONResponse({"ok": False, "error": exc.error, **exc.extra})

    return Starlette(routes=[Route("/api/{method}", call, methods=["GET", "POST"])])


def _route_of(scope: Scope) -> str:
    return scope["path"].removeprefix("/api/")


_FAULTS = {
    "429": (429, {"ok": False, "error": "ratelimited"}),
    "401": (200, {"ok": False, "error": "invalid_auth"}),  # Slack reports auth errors with 200
    "500": (500, {"ok": False, "error": "internal_error"}),
    "503": (503, {"ok": False, "error": "service_unavailable"}),
}

EMULATOR = Emulator(
    name="slack",
    port_offset=1,
    make_state=lambda company, options: SlackState(company),
    make_app=make_app,
    route_of=_route_of,
    fault_body=_FAULTS.__getitem__,
    client_url=lambda root: f"{root}/api/",
    env=lambda url, state: {"SLACK_BOT_TOKEN": SANDBOX_SLACK_TOKEN, "SLACK_BASE_URL": url},
)
