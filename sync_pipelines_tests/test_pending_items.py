"""The pending rule through the real `fireflies` asset: a meeting still processing is not
written but remembered in the partition's metadata, fetched again by id on later runs (however
long after the lookback), written once ready, and written flagged after 7 days."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
import time_machine
from dagster import AssetKey, AssetRecordsFilter

from sync_pipelines import clock
from sync_pipelines.documents import Document
from sync_pipelines.partitions import partition_key
from sync_pipelines.resilience import CallStats
from sync_pipelines_sandbox.fireflies.api import SANDBOX_FIREFLIES_API_KEY
from sync_pipelines_sandbox.fireflies.data import FirefliesData
from sync_pipelines.sources.base import SyncOutcome, still_pending
from sync_pipelines.sources.pending import MAX_WAIT_S, PendingItem, from_json, to_json
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_tests.conftest import day, today, use_fireflies

fireflies_asset = source_asset("fireflies")

pytestmark = pytest.mark.integration


@pytest.fixture
def ff(harness, sandbox, monkeypatch):
    return use_fireflies(harness, sandbox, monkeypatch)


@pytest.fixture
def data(sandbox) -> FirefliesData:
    return FirefliesData.of(sandbox.company)


@contextmanager
def later(**delta):
    """The clock (and so the emulator, the sync and Dagster) moved forward by `delta`."""
    with time_machine.travel(clock.now() + timedelta(**delta), tick=True):
        yield


def processing_meeting(sandbox, data, ready_in: timedelta):
    """A meeting that ended a minute ago today, whose transcript is ready in `ready_in`."""
    people = [p for p in sandbox.company.people if not p.is_bot][:3]
    now = clock.now_epoch()
    return data.add_meeting(
        "Quarterly planning", people, date=max(today().timestamp() + 1, now - 180),
        ready_at=now + ready_in.total_seconds(),
    )


def sync_today(ff):
    """Today's partition, as the schedule runs it; returns (result, today's metadata)."""
    result = ff.sync(fireflies_asset, [day(0)])
    return result, partition_metadata(ff, day(0))


def partition_metadata(ff, partition_day: str) -> dict:
    """What the UI shows for the partition: its latest materialization, read from Dagster."""
    (record,) = ff.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("fireflies"),
                           asset_partitions=[partition_key(partition_day, "acme")]),
        limit=1,
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def written(ff, result, meeting_id) -> list:
    return [d for d in ff.documents(result, "fireflies") if d.metadata["meeting_id"] == meeting_id]


def test_a_processing_meeting_is_not_written_but_remembered(ff, sandbox, data):
    meeting = processing_meeting(sandbox, data, timedelta(hours=1))
    result, meta = sync_today(ff)
    assert written(ff, result, meeting.id) == []
    assert meta["documents_written"] == len(ff.documents(result, "fireflies"))
    assert meta["pending_items"] == 1 and meta["pending_given_up"] == 0
    (item,) = from_json(meta["pending"])
    assert item.id == meeting.id and item.doc_id == f"fireflies:acme:{meeting.id}"
    assert item.at == meeting.date and item.first_seen <= clock.now_epoch()


def test_it_is_written_on_the_first_run_after_it_is_ready_days_later(ff, sandbox, data):
    meeting = processing_meeting(sandbox, data, timedelta(days=2))
    sync_today(ff)
    with later(days=1):  # still processing, and its day is past the lookback
        result, meta = sync_today(ff)
        assert written(ff, result, meeting.id) == [] and meta["pending_items"] == 1
        assert meta["run_meetings_refetched"] == 1
    with later(days=3):  # ready: today's partition writes it, fetched by id
        result, meta = sync_today(ff)
        (doc,) = written(ff, result, meeting.id)
        assert doc.metadata["transcript_missing"] is False and "\nTranscript:\n" in doc.text
        assert meta["documents_written"] == len(ff.documents(result, "fireflies")) >= 1
        assert meta["pending_items"] == 0 and meta["pending"] == []
        again, meta = sync_today(ff)  # written once: nothing left to fetch again
        assert written(ff, again, meeting.id) == [] and meta["run_meetings_refetched"] == 0


def test_after_seven_days_it_is_written_flagged_and_counted(ff, sandbox, data):
    meeting = processing_meeting(sandbox, data, timedelta(days=30))
    _, first = sync_today(ff)
    (item,) = from_json(first["pending"])
    with later(days=6):
        result, meta = sync_today(ff)
        assert written(ff, result, meeting.id) == []
        assert from_json(meta["pending"]) == [item]  # first seen stays the first run's
    with later(seconds=MAX_WAIT_S + 60):
        result, meta = sync_today(ff)
        (doc,) = written(ff, result, meeting.id)
        assert doc.metadata["transcript_missing"] is True
        assert "Transcript: not available" in doc.text
        assert meta["pending_given_up"] == 1 and meta["pending_items"] == 0
        assert meta["pending"] == []


def test_a_failed_run_loses_no_pending_item(ff, sandbox, data):
    meeting = processing_meeting(sandbox, data, timedelta(days=1))
    sync_today(ff)
    with later(days=2):
        sandbox.fireflies.set_api_key("rotated")
        failed = ff.sync(fireflies_asset, [day(0)], raise_on_error=False)
        assert not failed.success
        sandbox.fireflies.set_api_key(SANDBOX_FIREFLIES_API_KEY)
        result, meta = sync_today(ff)
        assert len(written(ff, result, meeting.id)) == 1 and meta["pending"] == []


def test_a_meeting_listed_again_is_neither_duplicated_nor_fetched_twice(ff, sandbox, data):
    meeting = processing_meeting(sandbox, data, timedelta(hours=1))
    _, first = sync_today(ff)
    _, second = sync_today(ff)  # listed again by the lookback, still processing
    assert from_json(second["pending"]) == from_json(first["pending"])
    data.set_ready_at(meeting.id, None)
    result, meta = sync_today(ff)
    assert len(written(ff, result, meeting.id)) == 1
    assert meta["run_meetings_refetched"] == 0 and meta["pending"] == []


def test_a_pending_meeting_deleted_meanwhile_is_dropped_and_counted(ff, sandbox, data):
    meeting = processing_meeting(sandbox, data, timedelta(days=1))
    sync_today(ff)
    data.delete(meeting.id)
    with later(days=1):
        _, meta = sync_today(ff)
    assert meta["run_meetings_vanished"] == 1 and meta["pending"] == []


def test_the_stored_list_round_trips_and_a_malformed_one_is_an_error():
    items = [PendingItem("b", "fireflies:acme:b", 2.0, 1.0), PendingItem("a", "x:y:a", 1.0, 1.0)]
    assert from_json(to_json(items)) == sorted(items, key=lambda i: i.at)
    with pytest.raises(ValueError, match="malformed item"):
        from_json([{"id": "a"}])
    with pytest.raises(ValueError, match="not a list"):
        from_json('{"id": "a"}')



def test_items_another_run_added_meanwhile_are_kept():
    """Two runs of one connection at once (a pool limit above 1): the one that finishes last
    keeps what the other found, minus what it wrote itself."""
    def item(name):
        return PendingItem(name, f"fireflies:acme:{name}", 1.0, 1.0)

    written_doc = Document("fireflies:acme:done", "fireflies", "acme", "t", "x", "", "", "",
                           "", 1.0)
    outcome = SyncOutcome([written_doc], 0.0, CallStats(), pending=[item("mine")])
    latest = [item("old"), item("theirs"), item("done")]
    assert still_pending(outcome, [item("old")], latest) == [item("mine"), item("theirs")]
