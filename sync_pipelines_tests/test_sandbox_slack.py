"""The Slack emulator, driven by the real slack_sdk WebClient, and the knobs in front of it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from sync_pipelines_sandbox.__main__ import main as sandbox_main
from sync_pipelines_sandbox.company import Company, ts_to_us, us_to_ts
from sync_pipelines_sandbox.knobs import Knobs
from sync_pipelines_sandbox.server import Sandbox, fixed_ports
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN, TOMBSTONE_TEXT


@pytest.fixture(scope="module")
def slack_company() -> Company:
    return Company.generate(seed=3, messages=1500, days=7)


@pytest.fixture
def sandbox(slack_company):
    """A fresh store per test (tests join channels and post), sharing one generated company."""
    company = Company.generate(seed=3, messages=1500, days=7, anchor=slack_company.anchor)
    with Sandbox(company=company) as sb:
        yield sb


@pytest.fixture
def client(sandbox) -> WebClient:
    return WebClient(token=SANDBOX_SLACK_TOKEN, base_url=sandbox.urls["slack"])


def channel(sandbox, name):
    return sandbox.company.channel_by_name(name)


def raw_post(sandbox, method, **data) -> httpx.Response:
    headers = {"Authorization": f"Bearer {SANDBOX_SLACK_TOKEN}"}
    return httpx.post(sandbox.urls["slack"] + method, data=data, headers=headers, timeout=10)


# ------------------------------------------------------------------ auth
def test_auth_test_names_the_bot(client, sandbox):
    auth = client.auth_test()
    assert auth["user_id"] == sandbox.company.bot.user_id
    assert auth["team_id"] and auth["url"].startswith("https://")


def test_invalid_and_missing_tokens(sandbox):
    with pytest.raises(SlackApiError) as bad:
        WebClient(token="xoxb-wrong", base_url=sandbox.urls["slack"]).auth_test()
    assert bad.value.response["error"] == "invalid_auth"
    assert bad.value.response.status_code == 200
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=sandbox.urls["slack"]).conversations_list()
    assert missing.value.response["error"] == "not_authed"


def test_set_token_revokes_the_old_one(client, sandbox):
    sandbox.slack.set_token("xoxb-rotated")
    with pytest.raises(SlackApiError, match="invalid_auth"):
        client.auth_test()
    assert WebClient(token="xoxb-rotated", base_url=sandbox.urls["slack"]).auth_test()["ok"]


# ------------------------------------------------------------------ conversations.list
def pages_of(response) -> list[dict]:
    """Copy each page: iterating a SlackResponse yields the same object with new data."""
    return [dict(page.data) for page in response]


def test_list_pages_through_visible_channels(client, sandbox):
    pages = pages_of(client.conversations_list(types="public_channel,private_channel", limit=4))
    assert len(pages) > 2 and pages[-1]["response_metadata"]["next_cursor"] == ""
    names = [c["name"] for p in pages for c in p["channels"]]
    assert len(names) == len(set(names))
    company = sandbox.company
    expected = {c.name for c in company.chat_channels() if company.bot_can_read(c)}
    assert set(names) == expected
    assert "hr-confidential" not in names  # private, bot not a member
    by_name = {c["name"]: c for p in pages for c in p["channels"]}
    assert by_name["watercooler"]["is_member"] is False
    assert by_name["leadership"]["is_private"] and by_name["leadership"]["is_member"]
    assert by_name["old-office-move"]["is_archived"]


def test_list_filters_types_and_archived(client):
    public = client.conversations_list(limit=1000)["channels"]
    assert public and not any(c["is_private"] for c in public)
    active = client.conversations_list(
        types="public_channel,private_channel", exclude_archived=True
    )
    assert not any(c["is_archived"] for c in active["channels"])


def test_invalid_cursor(client):
    with pytest.raises(SlackApiError, match="invalid_cursor"):
        client.conversations_list(cursor="not-a-cursor")


# ------------------------------------------------------------------ history
def page_history(client, channel_id, **kwargs) -> list[dict]:
    messages = []
    for page in client.conversations_history(channel=channel_id, **kwargs):
        messages.extend(page["messages"])
    return messages


def test_history_pages_newest_first_without_gaps(client, sandbox):
    for ch in sandbox.company.chat_channels():
        if ch.name in ("watercooler", "hr-confidential"):
            continue
        served = page_history(client, ch.id, limit=37)
        assert [m["ts"] for m in served] == [m.ts for m in sandbox.company.channel_messages(ch.id)]


def test_history_bounds_are_exclusive_unless_inclusive(client, sandbox):
    ch = channel(sandbox, "engineering")
    stored = [m.ts for m in sandbox.company.channel_messages(ch.id)]
    latest, oldest = stored[10], stored[-11]
    served = [m["ts"] for m in page_history(client, ch.id, oldest=oldest, latest=latest, limit=13)]
    assert served == stored[11:-11]
    inclusive = [
        m["ts"]
        for m in page_history(client, ch.id, oldest=oldest, latest=latest, inclusive=True, limit=13)
    ]
    assert inclusive == stored[10:-10]
    # float-looking bounds (seconds) work too
    seconds = [
        m["ts"] for m in page_history(client, ch.id, oldest=str(int(float(oldest))), limit=500)
    ]
    assert set(stored[:-11]) <= set(seconds)


def test_history_page_shape_and_has_more(client, sandbox):
    ch = channel(sandbox, "engineering")
    first = client.conversations_history(channel=ch.id, limit=5)
    assert len(first["messages"]) == 5 and first["has_more"] is True
    assert first["response_metadata"]["next_cursor"]
    everything = client.conversations_history(channel=ch.id, limit=999)
    assert everything["has_more"] is False
    for msg in everything["messages"]:
        assert msg["type"] == "message" and "ts" in msg and "text" in msg
        assert "user" in msg or msg.get("subtype") == "bot_message"
    parents = [m for m in everything["messages"] if m.get("reply_count")]
    assert parents, "some threads"
    for parent in parents:
        replies = sandbox.company.thread_replies(ch.id, parent["ts"])
        assert parent["thread_ts"] == parent["ts"]
        assert parent["reply_count"] == len(replies)
        assert parent["latest_reply"] == replies[-1].ts
    bots = [m for m in everything["messages"] if m.get("subtype") == "bot_message"]
    assert bots and all(m["bot_id"] and "user" not in m for m in bots)


def test_history_errors(client, sandbox):
    with pytest.raises(SlackApiError, match="not_in_channel"):
        client.conversations_history(channel=channel(sandbox, "watercooler").id)
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.conversations_history(channel=channel(sandbox, "hr-confidential").id)
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.conversations_history(channel="C0NOPE")


def test_join_then_read(client, sandbox):
    ch = channel(sandbox, "watercooler")
    joined = client.conversations_join(channel=ch.id)
    assert joined["channel"]["is_member"] is True and "warning" not in joined
    assert client.conversations_join(channel=ch.id)["warning"] == "already_in_channel"
    assert len(page_history(client, ch.id, limit=200)) == len(
        sandbox.company.channel_messages(ch.id)
    )
    with pytest.raises(SlackApiError, match="method_not_supported_for_channel_type"):
        client.conversations_join(channel=channel(sandbox, "leadership").id)
    with pytest.raises(SlackApiError, match="is_archived"):
        client.conversations_join(channel=channel(sandbox, "old-office-move").id)


def test_archived_channel_history_is_readable(client, sandbox):
    ch = channel(sandbox, "old-office-move")
    assert len(page_history(client, ch.id)) == len(sandbox.company.channel_messages(ch.id))


# ------------------------------------------------------------------ replies
def a_thread(sandbox, name="engineering", min_replies=3):
    ch = channel(sandbox, name)
    log = sandbox.company.log(ch.id)
    parent_key = next(k for k in reversed(log.keys) if len(log.threads.get(k, ())) >= min_replies)
    return ch, log.top[parent_key]


def test_replies_parent_first_then_oldest_first_paged(client, sandbox):
    ch, parent = a_thread(sandbox)
    expected = [m.ts for m in sandbox.company.thread_replies(ch.id, parent.ts)]
    pages = pages_of(client.conversations_replies(channel=ch.id, ts=parent.ts, limit=2))
    assert len(pages) >= 2
    assert pages[0]["messages"][0]["ts"] == parent.ts
    assert all(m["ts"] != parent.ts for p in pages[1:] for m in p["messages"])  # continuation pages
    served = [m["ts"] for p in pages for m in p["messages"]]
    assert served == [parent.ts] + expected
    for reply in (m for p in pages for m in p["messages"][1 if p is pages[0] else 0 :]):
        assert reply["thread_ts"] == parent.ts and reply["parent_user_id"] == parent.user


def test_replies_by_reply_ts_and_bounds(client, sandbox):
    ch, parent = a_thread(sandbox)
    replies = [m.ts for m in sandbox.company.thread_replies(ch.id, parent.ts)]
    whole = client.conversations_replies(channel=ch.id, ts=replies[-1])
    assert [m["ts"] for m in whole["messages"]] == [parent.ts] + replies
    bounded = client.conversations_replies(channel=ch.id, ts=parent.ts, oldest=replies[0])
    assert [m["ts"] for m in bounded["messages"]] == [parent.ts] + replies[1:]
    with pytest.raises(SlackApiError, match="thread_not_found"):
        client.conversations_replies(channel=ch.id, ts="1000000000.000001")


# ------------------------------------------------------------------ members and users
def test_members_paged(client, sandbox):
    ch = channel(sandbox, "general")
    pages = pages_of(client.conversations_members(channel=ch.id, limit=7))
    assert len(pages) > 1
    assert [u for p in pages for u in p["members"]] == ch.members


def test_users_info_and_list(client, sandbox):
    company = sandbox.company
    human = company.people[0]
    user = client.users_info(user=human.user_id)["user"]
    assert user["profile"]["email"] == human.email and user["real_name"] == human.name
    assert user["is_bot"] is False and user["profile"]["display_name"]
    bot = client.users_info(user=company.bot.user_id)["user"]
    assert bot["is_bot"] is True and "email" not in bot["profile"]
    with pytest.raises(SlackApiError, match="user_not_found"):
        client.users_info(user="U0NOBODY")
    listed = [u["id"] for p in client.users_list(limit=6) for u in p["members"]]
    assert listed == [p.user_id for p in company.people]


# ------------------------------------------------------------------ writes
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_by_name_and_id(client, sandbox):
    alerts = channel(sandbox, "alerts")
    first = client.chat_postMessage(channel="#alerts", text="sync failed: acme")
    second = client.chat_postMessage(channel="alerts", text="still failing")
    third = client.chat_postMessage(channel=alerts.id, text="in thread", thread_ts=first["ts"])
    assert first["channel"] == alerts.id and first["message"]["text"] == "sync failed: acme"
    assert [p["text"] for p in sandbox.slack.posted] == [
        "sync failed: acme",
        "still failing",
        "in thread",
    ]
    assert sandbox.slack.posted[2]["thread_ts"] == first["ts"]
    newest = client.conversations_history(channel=alerts.id, limit=2)["messages"]
    assert [m["ts"] for m in newest] == [second["ts"], first["ts"]]
    assert newest[1]["reply_count"] == 1 and newest[1]["latest_reply"] == third["ts"]
    with pytest.raises(SlackApiError, match="not_in_channel"):
        client.chat_postMessage(channel="#watercooler", text="hi")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.chat_postMessage(channel="#hr-confidential", text="hi")
    with pytest.raises(SlackApiError, match="no_text"):
        client.chat_postMessage(channel="#alerts", text="")


def test_state_mutations_show_up_in_the_api(client, sandbox):
    ch, parent = a_thread(sandbox)
    human = ch.members[0]
    edited_ts = sandbox.slack.edit_message(ch.id, parent.ts, "rewritten ✏️")
    served = next(m for m in page_history(client, ch.id, limit=999) if m["ts"] == parent.ts)
    assert served["text"] == "rewritten ✏️" and served["edited"]["ts"] == edited_ts
    assert float(edited_ts) > float(parent.ts)
    reply_ts = sandbox.slack.post(ch.id, human, "late reply", thread_ts=parent.ts)
    replies = client.conversations_replies(channel=ch.id, ts=parent.ts)["messages"]
    assert replies[-1]["ts"] == reply_ts and replies[0]["latest_reply"] == reply_ts
    outsider = channel(sandbox, "watercooler")
    sandbox.slack.add_member(outsider.id, sandbox.company.bot.user_id)
    assert client.conversations_history(channel=outsider.id, limit=1)["messages"]


def served_ts(client, channel_id) -> list[str]:
    return [m["ts"] for m in page_history(client, channel_id, limit=999)]


def test_deletions_behave_as_slacks(client, sandbox):
    ch, parent = a_thread(sandbox)
    log = sandbox.company.log(ch.id)
    lone = next(log.top[k] for k in log.keys if k not in log.threads)
    sandbox.slack.delete_message(ch.id, lone.ts)
    assert lone.ts not in served_ts(client, ch.id)  # no trace left in history

    first, *others = sandbox.company.thread_replies(ch.id, parent.ts)
    sandbox.slack.delete_message(ch.id, first.ts)
    thread = client.conversations_replies(channel=ch.id, ts=parent.ts)["messages"]
    assert [m["ts"] for m in thread] == [parent.ts] + [m.ts for m in others]
    assert thread[0]["reply_count"] == len(others)

    sandbox.slack.delete_message(ch.id, parent.ts)  # replies remain: a tombstone stays
    (tomb,) = [m for m in page_history(client, ch.id, limit=999) if m["ts"] == parent.ts]
    assert tomb["subtype"] == "tombstone" and tomb["text"] == TOMBSTONE_TEXT
    assert tomb["hidden"] is True and tomb["user"] == "USLACKBOT"
    assert tomb["reply_count"] == len(others) and tomb["latest_reply"] == others[-1].ts
    thread = client.conversations_replies(channel=ch.id, ts=parent.ts)["messages"]
    assert thread[0]["subtype"] == "tombstone" and [m["ts"] for m in thread[1:]] == [
        m.ts for m in others
    ]

    for reply in others:  # the tombstone goes with the thread's last reply
        sandbox.slack.delete_message(ch.id, reply.ts)
    assert parent.ts not in served_ts(client, ch.id)
    with pytest.raises(SlackApiError, match="thread_not_found"):
        client.conversations_replies(channel=ch.id, ts=parent.ts)
    with pytest.raises(KeyError):
        sandbox.slack.delete_message(ch.id, lone.ts)


def test_chat_delete_deletes_only_the_bots_own_messages(client, sandbox):
    ch = channel(sandbox, "general")
    posted = client.chat_postMessage(channel=ch.id, text="to be retracted")["ts"]
    assert client.chat_delete(channel=ch.id, ts=posted)["ts"] == posted
    assert posted not in served_ts(client, ch.id)
    bot = sandbox.company.bot.user_id
    human = next(m for m in sandbox.company.channel_messages(ch.id) if m.user not in (None, bot))
    for ts, error in ((human.ts, "cant_delete_message"), (posted, "message_not_found")):
        with pytest.raises(SlackApiError) as caught:
            client.chat_delete(channel=ch.id, ts=ts)
        assert caught.value.response["error"] == error


def test_json_and_query_params_are_accepted(sandbox):
    headers = {"Authorization": f"Bearer {SANDBOX_SLACK_TOKEN}"}
    ch = channel(sandbox, "general")
    by_query = httpx.post(
        sandbox.urls["slack"] + "conversations.history",
        params={"channel": ch.id, "limit": 2},
        headers=headers,
    ).json()
    by_json = httpx.post(
        sandbox.urls["slack"] + "conversations.history",
        json={"channel": ch.id, "limit": 2},
        headers=headers,
    ).json()
    assert by_query["ok"] and by_query["messages"] == by_json["messages"]


# ------------------------------------------------------------------ scale (timings: bench/)
def test_paging_fifty_thousand_messages_misses_nothing():
    company = Company.generate(seed=5, messages=50_000, days=30)
    with Sandbox(company=company) as sb:
        client = WebClient(token=SANDBOX_SLACK_TOKEN, base_url=sb.urls["slack"])
        readable = [
            c for c in company.chat_channels() if c.name not in ("watercooler", "hr-confidential")
        ]
        total = sum(len(page_history(client, ch.id, limit=999)) for ch in readable)
    assert total == sum(len(company.channel_messages(c.id)) for c in readable)


# ------------------------------------------------------------------ knobs
def test_rate_limit_answers_429_and_the_retry_handler_waits_it_out(sandbox):
    sandbox.knobs.rate_limits["conversations.history"] = 2
    ch = channel(sandbox, "general")
    plain = WebClient(token=SANDBOX_SLACK_TOKEN, base_url=sandbox.urls["slack"])
    plain.conversations_history(channel=ch.id, limit=1)
    plain.conversations_history(channel=ch.id, limit=1)
    with pytest.raises(SlackApiError) as limited:
        plain.conversations_history(channel=ch.id, limit=1)
    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    retry_after = int(limited.value.response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert sandbox.knobs.count_429["conversations.history"] == 1

    sandbox.knobs.rate_limits.clear()
    sandbox.knobs.inject("conversations.history", "429", count=1, retry_after=1)
    patient = WebClient(
        token=SANDBOX_SLACK_TOKEN,
        base_url=sandbox.urls["slack"],
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    started = time.monotonic()
    assert patient.conversations_history(channel=ch.id, limit=1)["ok"]
    assert time.monotonic() - started >= 1
    assert sandbox.knobs.count_429["conversations.history"] == 2
    assert sandbox.knobs.calls["conversations.history"] == 5


def test_injected_faults_have_slack_shapes(sandbox):
    knobs = sandbox.knobs
    knobs.timeout_s = 0.3
    for kind in ("500", "503", "401", "malformed", "timeout"):
        knobs.inject("auth.test", kind)
    r500 = raw_post(sandbox, "auth.test")
    assert (r500.status_code, r500.json()) == (500, {"ok": False, "error": "internal_error"})
    r503 = raw_post(sandbox, "auth.test")
    assert (r503.status_code, r503.json()["error"]) == (503, "service_unavailable")
    r401 = raw_post(sandbox, "auth.test")
    assert (r401.status_code, r401.json()["error"]) == (200, "invalid_auth")
    broken = raw_post(sandbox, "auth.test")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    started = time.monotonic()
    slow = raw_post(sandbox, "auth.test")
    assert slow.json()["ok"] and time.monotonic() - started >= 0.3
    assert raw_post(sandbox, "auth.test").json()["ok"]  # injections are used up
    assert knobs.calls["auth.test"] == 6


def test_random_faults_and_latency(sandbox):
    knobs = sandbox.knobs
    knobs.fault_rate, knobs.fault_kinds = 1.0, ("503",)
    assert raw_post(sandbox, "auth.test").status_code == 503
    knobs.fault_rate, knobs.latency_ms = 0.0, 150
    started = time.monotonic()
    assert raw_post(sandbox, "auth.test").json()["ok"]
    assert time.monotonic() - started >= 0.15


def test_sliding_window_retry_after_and_seeded_faults():
    knobs = Knobs(rate_limits={"x": 3})
    assert [knobs.admit("x") for _ in range(3)] == [None, None, None]
    fault = knobs.admit("x")
    assert fault.kind == "429" and 59 <= fault.retry_after <= 60
    assert knobs.calls["x"] == 4 and knobs.count_429["x"] == 1
    assert knobs.admit("y") is None  # other routes are not limited
    draws = [[Knobs(fault_rate=0.5, seed=s).admit("r") for _ in range(40)] for s in (1, 1, 2)]
    assert draws[0] == draws[1] != draws[2]
    assert {f.kind for f in draws[0] if f} <= {"500", "503", "timeout", "malformed"}
    with pytest.raises(ValueError):
        knobs.inject("x", "418")


def test_ts_conversions_are_exact():
    assert ts_to_us("1763900000.000100") == 1763900000000100
    assert us_to_ts(1763900000000100) == "1763900000.000100"
    assert ts_to_us("1763900000") == ts_to_us(1763900000.0)


# ------------------------------------------------------------------ command line
def free_port_base() -> int:
    """A base whose ports for every emulator are free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if max(fixed_ports(base).values()) > 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in fixed_ports(base).values():
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


def test_cli_serves_on_fixed_ports(capsys):
    base, stop = free_port_base(), threading.Event()
    argv = [
        "--messages",
        "300",
        "--days",
        "3",
        "--port-base",
        str(base),
        "--rate-limit",
        "conversations.history=50",
        "--latency-ms",
        "0",
    ]
    runner = threading.Thread(target=sandbox_main, args=(argv, stop))
    runner.start()
    try:
        client = WebClient(token=SANDBOX_SLACK_TOKEN, base_url=f"http://127.0.0.1:{base + 1}/api/")
        deadline = time.monotonic() + 60  # a bound on waiting for start-up, not a timing claim
        while True:
            try:
                assert client.auth_test()["ok"]
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        stop.set()
        runner.join(timeout=10)
    out = capsys.readouterr().out
    assert f"export SLACK_BASE_URL=http://127.0.0.1:{base + 1}/api/" in out
    assert f"export OPENAI_BASE_URL=http://127.0.0.1:{base + 2}/v1" in out
    assert f"export PINECONE_HOST=http://127.0.0.1:{base + 3}" in out
    assert not runner.is_alive()
