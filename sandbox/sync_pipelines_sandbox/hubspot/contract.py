"""HubSpot's place in the source contract."""

from datetime import UTC, datetime, time, timedelta

from sync_pipelines import clock
from sync_pipelines.sources.hubspot.associations import pair
from sync_pipelines.sources.hubspot.client import (
    DOCUMENTED_RATE_PER_S,
    SEARCH_RATE_PER_S,
    HubspotResource,
)
from sync_pipelines.sources.hubspot.objects import BY_NAME
from sync_pipelines.sources.registry import source_asset
from sync_pipelines_sandbox.contract import SourceContract
from sync_pipelines_sandbox.crm_world import CrmWorld
from sync_pipelines_sandbox.hubspot.data import OBJECTS, SANDBOX_HUBSPOT_TOKEN, HubspotData

SEARCHABLE = {"notes": "note", "calls": "call", "emails": "email", "meetings": "meeting"}


def live(company, obj: str, start: float, end: float):
    """The live (not archived) records of `obj` modified in [start, end), as search has them."""
    return list(HubspotData(company).window(obj, start, end, 0)[1])


def expected_ids(company, start, end):
    upper = min(end.timestamp(), clock.now_epoch())
    return {
        f"hubspot:acme:{singular}-{r.id}"
        for obj, singular in SEARCHABLE.items()
        for r in live(company, obj, start.timestamp(), upper)
    }


def expected_rows(company, start, end) -> dict[str, set[tuple]]:
    """Primary keys per table a sync of [start, end) loads, archived records included."""
    data = HubspotData(company)
    lo, hi = start.timestamp(), min(end.timestamp(), clock.now_epoch())
    out: dict[str, set[tuple]] = {}
    for obj in ("companies", "contacts", "deals", "tickets", *SEARCHABLE, "tasks"):
        keys = {(r.id,) for r in live(company, obj, lo, hi)}
        keys |= {(r.id,) for r in data.archived(obj) if lo <= r.archived_at < hi}
        out[obj] = keys
    out["owners"] = {
        (o["id"],) for o in data.owners()
        if lo <= datetime.fromisoformat(o["updatedAt"]).timestamp() < hi
    }  # fmt: skip
    out["associations"] = {
        tuple(pair(obj, r.id, target, tid).values())
        for obj, hub_object in BY_NAME.items()
        for r in live(company, obj, lo, hi)
        for target, tids in (data.associations_of(obj, r.id) or {}).items()
        if target in hub_object.associations
        for tid in tids
    }
    return out


def _past_note(sandbox) -> int:
    """The index of the newest note of a past day of the contract's data."""
    world = CrmWorld.of(sandbox.company)
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), UTC)
    start = (midnight + timedelta(days=first)).timestamp()
    notes = [r for r in world.updated_between("notes", start, midnight.timestamp())
             if not r.archived]  # fmt: skip
    if not notes:
        raise LookupError("no note on a past day of the contract's data")
    return notes[-1].i


def past_records(sandbox, obj: str) -> list:
    """Live records of `obj` modified on the contract's past data days (not today), oldest
    first: what a range sync loads and an edit or archive then moves to today."""
    first, _ = CONTRACT.data_days
    midnight = datetime.combine(clock.today(), time(), UTC)
    start = (midnight + timedelta(days=first)).timestamp()
    found = live(sandbox.company, obj, start, midnight.timestamp())
    if len(found) < 2:
        raise LookupError(f"fewer than 2 {obj} on the past days of the contract's data")
    return found


# A text property of each object that an edit changes.
EDITED = {"companies": "name", "contacts": "firstname", "deals": "dealname",
          "tickets": "subject", "notes": "hs_note_body", "calls": "hs_call_body",
          "emails": "hs_email_text", "meetings": "hs_meeting_body", "tasks": "hs_task_body"}  # fmt: skip


def edit_every_object(sandbox) -> dict[str, str]:
    """Edits the newest past record of every object through the emulator (its EDITED
    property becomes "Edited in the sandbox"); answers object -> the edited record's id."""
    data: HubspotData = sandbox.hubspot
    return {
        obj: data.edit(obj, past_records(sandbox, obj)[-1].i, **{EDITED[obj]: EDITED_TEXT}).id
        for obj in OBJECTS
    }


EDITED_TEXT = "Edited in the sandbox"


def archive_every_object(sandbox) -> dict[str, str]:
    """Archives the second newest past record of every object; answers object -> its id."""
    data: HubspotData = sandbox.hubspot
    return {obj: data.archive(obj, past_records(sandbox, obj)[-2].i).id for obj in OBJECTS}


def delete_record(sandbox) -> str:
    """Archives a note of a past day as HubSpot's UI does (its modified time becomes now, so
    the archived listing shows it in today's window); answers its doc_id."""
    world = CrmWorld.of(sandbox.company)
    record = world.delete("notes", _past_note(sandbox))
    return f"hubspot:acme:note-{record.id}"


def edit_record(sandbox) -> tuple[str, tuple]:
    """Edits one contact (its modified time becomes now); answers its table and key."""
    world = CrmWorld.of(sandbox.company)
    record = world.edit("contacts", 1, first_name="Edited")
    return "contacts", (record.id,)


def delete_crm_record(sandbox) -> tuple[str, tuple]:
    world = CrmWorld.of(sandbox.company)
    record = world.delete("notes", _past_note(sandbox))
    return "notes", (record.id,)


def registry_entry(sandbox, conn_id, env):
    return (
        f"  - id: {conn_id}\n    source: hubspot\n    base_url: {sandbox.urls['hubspot']}\n"
        f"    credentials: {{access_token: {env}}}\n"
    )


CONTRACT = SourceContract(
    name="hubspot",
    asset=source_asset("hubspot"),
    resources=lambda sandbox: {
        "hubspot": HubspotResource(rate_per_s=0, page_size=20, timeout_s=10, max_attempts=4)
    },
    registry_entry=registry_entry,
    good_secret=SANDBOX_HUBSPOT_TOKEN,
    list_route="search",
    expected_ids=expected_ids,
    rate_budgets={"search": SEARCH_RATE_PER_S, "*": DOCUMENTED_RATE_PER_S},
    # 10,000 contacts (about 25,000 records over 7 days; 7,300 in the 2 days synced), 200
    # per search page: about 42 searches and 50 other calls.
    bench_size=(100_000, 2, 200),
    delete_record=delete_record,
    # Archiving stamps the record's modified time: the run of today's partition lists it
    # among the archived records of its window (the list API, archived=true).
    deletion_seen_by="sync",
    expected_rows=expected_rows,
    edit_record=edit_record,
    delete_crm_record=delete_crm_record,
)
