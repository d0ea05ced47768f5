"""A Gmail run against its emulator: a day's full read (documents, the day's Listing and the
historyId cursor), later runs following the history (new mail, deletions, moves to trash or
spam, label changes against the allow-list), the expired-historyId fallback, what is never
indexed, access, quote trimming, the reconciliation's listing and concurrent fetching."""

from datetime import timedelta

import pytest

from sync_pipelines import clock
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.base import Previous, SourceRun
from sync_pipelines.sources.gmail.reconcile import list_ids
from sync_pipelines.sources.gmail.sync import GmailOptions, GmailSync
from sync_pipelines.sources.reconcile import reconcile_window
from sync_pipelines_tests.conftest import day, today
from sync_pipelines_tests.test_gmail_client import client_for, oauth_connection

SCOPE = "gmail:acme:"


def window(offset: int) -> SyncWindow:
    start = today() + timedelta(days=offset)
    return SyncWindow("acme", start, start + timedelta(days=1), (day(offset),))


def run(sandbox, monkeypatch, offset=-1, mark=None, cursor=None, max_workers=4, **options):
    client = client_for(oauth_connection(sandbox, monkeypatch), max_workers=max_workers)
    reader = GmailSync(client, GmailOptions.from_connection(options, "gmail"), "acme")
    return reader.run(window(offset), mark, cursor)


def expected(sandbox, offset: int) -> set[str]:
    data, w = sandbox.gmail.data, window(offset)
    upper = min(w.end_epoch, clock.now_epoch())
    return {SCOPE + m.id for m in data.expected(data.owner, w.start_epoch, upper)}


def test_a_days_full_read_lists_it_and_stores_the_history_id(sandbox, monkeypatch):
    result = run(sandbox, monkeypatch, offset=-1)
    assert {d.doc_id for d in result.documents} == expected(sandbox, -1) != set()
    assert result.mode == "full" and result.tombstones == []
    (listing,) = result.listings
    assert listing.scope == SCOPE and listing.start == window(-1).start_epoch
    assert expected(sandbox, -1) <= listing.doc_ids
    assert result.cursor == str(sandbox.gmail.data.mailbox(sandbox.gmail.data.owner).history_id)
    doc = result.documents[0]
    assert doc.access == (sandbox.gmail.data.owner,)
    assert doc.metadata["thread_id"] and doc.metadata["mailbox"] == sandbox.gmail.data.owner


def test_spam_and_trash_are_never_indexed(sandbox, monkeypatch):
    data = sandbox.gmail.data
    hidden = {SCOPE + m.id for m in data.mailbox(data.owner).mails.values() if not m.visible}
    found = set()
    for offset in range(-3, 1):
        found |= {d.doc_id for d in run(sandbox, monkeypatch, offset=offset).documents}
    assert hidden and not hidden & found


def test_later_runs_follow_the_history(sandbox, monkeypatch):
    data = sandbox.gmail.data
    first = run(sandbox, monkeypatch, offset=0)
    listed = sandbox.knobs.calls["messages.list"]
    owner, todays = data.owner, sorted(expected(sandbox, 0))
    deleted, trashed, spammed = (i.removeprefix(SCOPE) for i in todays[:3])
    data.delete_message(owner, deleted)
    data.move_to_trash(owner, trashed)
    data.change_labels(owner, spammed, add=("SPAM",), remove=("INBOX",))
    data.change_labels(owner, todays[3].removeprefix(SCOPE), remove=("UNREAD",))  # no matter
    new = data.add_message(owner, internal_ms=int(clock.now_epoch() * 1000) - 5000,
                           subject="Fresh news", text="A brand new message.")  # fmt: skip
    junk = data.add_message(owner, internal_ms=int(clock.now_epoch() * 1000) - 4000,
                            labels=("SPAM",))  # fmt: skip
    second = run(sandbox, monkeypatch, offset=0, mark=first.high_water_mark, cursor=first.cursor)
    assert second.mode == "incremental" and second.listings == []
    assert [d.doc_id for d in second.documents] == [SCOPE + new.id]
    assert "A brand new message." in second.documents[0].text
    assert {t.doc_id for t in second.tombstones} == {SCOPE + i for i in (deleted, trashed, spammed)}
    assert SCOPE + junk.id not in {t.doc_id for t in second.tombstones}
    assert int(second.cursor) > int(first.cursor)
    assert sandbox.knobs.calls["messages.list"] == listed  # only the first run listed
    third = run(sandbox, monkeypatch, offset=0, mark=second.high_water_mark, cursor=second.cursor)
    assert third.documents == [] and third.tombstones == [] and third.history_records == 0


def test_an_expired_history_id_falls_back_to_a_full_read(sandbox, monkeypatch):
    first = run(sandbox, monkeypatch, offset=0)
    data = sandbox.gmail.data
    gone = min(expected(sandbox, 0))
    data.delete_message(data.owner, gone.removeprefix(SCOPE))
    data.expire_history(data.owner)
    second = run(sandbox, monkeypatch, offset=0, mark=first.high_water_mark, cursor=first.cursor)
    assert second.mode == "full" and second.history_expired == 1
    assert {d.doc_id for d in second.documents} == expected(sandbox, 0)
    (listing,) = second.listings
    assert gone not in listing.doc_ids  # the deletion reaches the index through the listing
    assert int(second.cursor) >= int(first.cursor)


def test_the_label_allow_list_selects_and_its_changes_are_followed(sandbox, monkeypatch):
    data = sandbox.gmail.data
    customers = {i for i in expected(sandbox, 0)
                 if "Label_1" in data.mailbox(data.owner).mails[i.removeprefix(SCOPE)].labels}  # fmt: skip
    first = run(sandbox, monkeypatch, offset=0, labels=["customers"])
    assert {d.doc_id for d in first.documents} == customers != expected(sandbox, 0)
    assert first.listings[0].doc_ids >= customers
    assert all("Customers" in d.metadata["labels"] for d in first.documents)
    leaving = min(customers).removeprefix(SCOPE)
    joining = min(expected(sandbox, 0) - customers).removeprefix(SCOPE)
    data.change_labels(data.owner, leaving, remove=("Label_1",))
    data.change_labels(data.owner, joining, add=("Label_1",))
    second = run(sandbox, monkeypatch, offset=0, mark=first.high_water_mark,
                 cursor=first.cursor, labels=["Customers"])  # fmt: skip
    assert [d.doc_id for d in second.documents] == [SCOPE + joining]
    assert [t.doc_id for t in second.tombstones] == [SCOPE + leaving]
    with pytest.raises(ValueError, match="unknown labels \\['Nope'\\]"):
        run(sandbox, monkeypatch, offset=0, labels=["Nope"])


def test_access_is_the_owner_or_also_the_internal_people(sandbox, monkeypatch):
    result = run(sandbox, monkeypatch, offset=-1, access="owner_and_internal")
    owner = sandbox.gmail.data.owner
    assert all(owner in d.access for d in result.documents)
    assert all(a.endswith("@acme.test") for d in result.documents for a in d.access)
    assert any(len(d.access) > 1 for d in result.documents)
    other = run(sandbox, monkeypatch, offset=-1, access="owner_and_internal",
                internal_domains=["initech.test"])  # fmt: skip
    assert any(a.endswith("@initech.test") for d in other.documents for a in d.access)


def test_replies_keep_only_what_they_add_and_attachments_are_read(sandbox, monkeypatch):
    docs = []
    for offset in range(-3, 1):
        docs += run(sandbox, monkeypatch, offset=offset).documents
    replies = [d for d in docs if d.title.startswith("Re: ")]
    assert replies and all(" wrote:" not in d.text and "\n>" not in d.text for d in replies)
    assert any(d.metadata["quotes_trimmed"] for d in replies)
    pdfs = [d for d in docs if any(a.endswith(".pdf") for a in d.metadata["attachments"])]
    assert pdfs and all("Quarterly report" in d.text for d in pdfs)
    latin = [d for d in docs if "déplacée" in d.text]
    assert latin, "the latin-1 messages decode to their accents"


def test_the_reconciliation_lists_every_message_of_the_window(sandbox, monkeypatch):
    connection = oauth_connection(sandbox, monkeypatch)
    client = client_for(connection)
    w = reconcile_window("acme", 30)
    source_run = SourceRun(None, connection, None, client, GmailOptions(), w, Previous())
    (listing,) = list_ids(source_run)
    data = sandbox.gmail.data
    truth = {SCOPE + m.id for m in data.expected(data.owner, w.start_epoch, clock.now_epoch())}
    assert listing.doc_ids == truth and listing.scope == SCOPE


def test_concurrent_fetching_gives_what_sequential_fetching_gives(sandbox, monkeypatch):
    parallel = run(sandbox, monkeypatch, offset=-2, max_workers=8)
    sequential = run(sandbox, monkeypatch, offset=-2, max_workers=1)
    assert parallel.documents == sequential.documents and parallel.documents
