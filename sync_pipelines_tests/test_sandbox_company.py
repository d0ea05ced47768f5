"""The synthetic company: reproducible, realistic, and the ground truth the emulators serve."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from slack_sdk import WebClient

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company, ts_to_us
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_sandbox.slack.api import SANDBOX_SLACK_TOKEN

PAST = dt.date(2025, 3, 14)


def snapshot(company: Company) -> tuple:
    channels = company.chat_channels()
    return (
        company.people,
        company.issue_keys,
        [(c.id, c.name, c.is_private, tuple(c.members)) for c in channels],
        [
            (m.ts, m.user, m.text, m.edited)
            for c in channels
            for m in company.channel_messages(c.id)
        ],
    )


def all_messages(company: Company, channels=None) -> list:
    out = []
    for ch in channels or company.chat_channels():
        for msg in company.channel_messages(ch.id):
            out.append(msg)
            out.extend(company.thread_replies(ch.id, msg.ts))
    return out


@pytest.fixture(scope="module")
def company() -> Company:
    return Company.generate(seed=7, messages=3000, days=14, anchor=PAST)


def test_same_inputs_same_company_and_seed_matters(company):
    assert snapshot(Company.generate(seed=7, messages=3000, days=14, anchor=PAST)) == snapshot(
        company
    )
    other = Company.generate(seed=8, messages=3000, days=14, anchor=PAST)
    assert snapshot(other) != snapshot(company)
    assert other.people != company.people


def test_message_count_and_span(company):
    messages = all_messages(company)
    assert len(messages) == 3000
    start = dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp()
    end = dt.datetime(2025, 3, 15, tzinfo=dt.UTC).timestamp()
    assert all(start <= float(m.ts) < end for m in messages)
    anchor_day = [m for m in messages if float(m.ts) >= end - 86_400]
    assert anchor_day, "some messages on the anchor day"
    for ch in company.chat_channels():
        keys = [ts_to_us(m.ts) for m in company.channel_messages(ch.id)]
        keys += [
            ts_to_us(r.ts)
            for m in company.channel_messages(ch.id)
            for r in company.thread_replies(ch.id, m.ts)
        ]
        assert len(keys) == len(set(keys)), f"ts unique in {ch.name}"
        assert all(
            re.fullmatch(r"\d{10}\.\d{6}", us)
            for us in (m.ts for m in company.channel_messages(ch.id))
        )


def test_today_anchor_never_in_the_future():
    company = Company.generate(seed=1, messages=800, days=2)
    newest = max(float(m.ts) for m in all_messages(company))
    assert newest <= clock.now_epoch() - 59
    assert company.anchor == clock.today()


def test_people_and_projects(company):
    humans = [p for p in company.people if not p.is_bot]
    bots = [p for p in company.people if p.is_bot]
    assert 20 <= len(company.people) <= 200 and 1 <= len(bots) <= 2
    assert company.bot in bots and company.bot.bot_id
    assert len({p.user_id for p in company.people}) == len(company.people)
    assert all(p.user_id.startswith("U0") for p in company.people)
    assert all(re.fullmatch(r"[a-z]+(\.[a-z]+)+\d*@acme\.test", p.email) for p in humans)
    assert len({p.email for p in humans}) == len(humans)
    assert Company.generate(seed=7, messages=50_000, days=3, anchor=PAST).people.__len__() == 200
    assert len(company.projects) == 8 and {"SUBS", "CORE", "MOBI"} <= {
        p.key for p in company.projects
    }
    assert all(re.fullmatch(r"[A-Z]+-\d+", k) for k in company.issue_keys)
    text = " ".join(m.text for m in all_messages(company))
    mentioned = set(re.findall(r"\b[A-Z]+-\d+\b", text))
    assert mentioned <= set(company.issue_keys) and len(mentioned) > 100


def test_channels(company):
    channels = {c.name: c for c in company.chat_channels()}
    bot = company.bot.user_id
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in channels)
    archived = [c for c in channels.values() if c.is_archived]
    assert len(archived) == 1
    outside = [c for c in channels.values() if not c.is_private and bot not in c.members]
    assert [c.name for c in outside] == ["watercooler"]
    private = [c for c in channels.values() if c.is_private]
    assert any(bot in c.members for c in private) and any(bot not in c.members for c in private)
    for ch in channels.values():  # authors are members
        for msg in company.channel_messages(ch.id):
            assert msg.user is None or msg.user in ch.members


def test_message_variety(company):
    messages = all_messages(company)
    top = [m for ch in company.chat_channels() for m in company.channel_messages(ch.id)]
    threads = [
        (ch, m)
        for ch in company.chat_channels()
        for m in company.channel_messages(ch.id)
        if company.thread_replies(ch.id, m.ts)
    ]
    assert 0.05 < len(threads) / len(top) < 0.15
    for ch, parent in threads:
        replies = company.thread_replies(ch.id, parent.ts)
        assert 1 <= len(replies) <= 8
        assert all(r.thread_ts == parent.ts and float(r.ts) > float(parent.ts) for r in replies)
    edited = [m for m in messages if m.edited]
    assert edited and all(float(m.edited["ts"]) > float(m.ts) for m in edited)
    bots = [m for m in messages if m.subtype == "bot_message"]
    assert bots and all(m.bot_id and m.user is None for m in bots)
    text = "".join(m.text for m in messages)
    assert re.search(r"[àâçéèêëîïôûùüÿñæœ]", text) and re.search(
        r"[\u3040-\u30ff\u4e00-\u9fff]", text
    )
    assert any(ch in text for ch in "🎉🚀🙏✅")
    assert "<@U0" in text
    big = Company.generate(seed=2, messages=5000, days=7, anchor=PAST)
    long = [m for m in all_messages(big) if len(m.text) >= 3000]
    assert long and all(len(m.text) <= 12_000 for m in long)


def test_fifty_thousand_messages_exactly():
    big = Company.generate(seed=9, messages=50_000, days=30, anchor=PAST)
    assert (
        sum(len(big.log(c.id).keys) + len(big.log(c.id).replies) for c in big.chat_channels())
        == 50_000
    )


def test_expected_messages_scope_and_bounds(company):
    start = dt.datetime(2025, 3, 10, tzinfo=dt.UTC).timestamp()
    end = start + 2 * 86_400
    expected = company.expected_chat_messages(start, end)
    assert expected and all(start <= float(m["ts"]) < end for m in expected)
    names = {m["channel_name"] for m in expected}
    assert "hr-confidential" not in names and "old-office-move" not in names
    assert "watercooler" in names and "leadership" in names
    everything = company.expected_chat_messages(0, clock.now_epoch(), include_archived=True)
    assert "old-office-move" in {m["channel_name"] for m in everything}
    readable = [c for c in company.chat_channels() if company.bot_can_read(c)]
    assert len(everything) == len(all_messages(company, readable))
    reply = next(m for m in everything if m["thread_ts"] and m["thread_ts"] != m["ts"])
    assert set(reply) == {
        "channel_id",
        "channel_name",
        "is_private",
        "ts",
        "thread_ts",
        "user",
        "text",
    }


def test_ground_truth_matches_a_full_sync_through_the_emulator():
    """Page everything the way a sync would (list, join, history, replies) and compare."""
    company = Company.generate(seed=4, messages=2500, days=5)
    oldest = clock.now_epoch() - 3 * 86_400
    latest = clock.now_epoch()
    with Sandbox(company=company) as sb:
        channel_id = company.channel_by_name("engineering").id
        newest = company.channel_messages(channel_id)[0]
        sb.slack.edit_message(channel_id, newest.ts, "edited after generation")
        client = WebClient(token=SANDBOX_SLACK_TOKEN, base_url=sb.urls["slack"])
        synced = []
        for page in client.conversations_list(
            types="public_channel,private_channel", exclude_archived=True, limit=5
        ):
            for ch in page["channels"]:
                if not ch["is_member"]:
                    client.conversations_join(channel=ch["id"])
                for hist in client.conversations_history(
                    channel=ch["id"], oldest=str(oldest), latest=str(latest), limit=50
                ):
                    for msg in hist["messages"]:
                        synced.append((ch["id"], msg["ts"], msg.get("user"), msg["text"]))
                        if msg.get("reply_count"):
                            for rep in client.conversations_replies(
                                channel=ch["id"], ts=msg["ts"], limit=3
                            ):
                                for r in rep["messages"]:
                                    if r["ts"] != msg["ts"] and oldest <= float(r["ts"]) < latest:
                                        synced.append((ch["id"], r["ts"], r.get("user"), r["text"]))
    # replies of threads started before `oldest` are outside what this sync walks
    expected = [
        (m["channel_id"], m["ts"], m["user"], m["text"])
        for m in company.expected_chat_messages(oldest, latest)
        if m["thread_ts"] in (None, m["ts"]) or float(m["thread_ts"]) > oldest
    ]
    assert len(expected) > 1000 and len(synced) == len(set(synced))
    assert sorted(synced) == sorted(expected)
    assert (channel_id, newest.ts, newest.user, "edited after generation") in synced
