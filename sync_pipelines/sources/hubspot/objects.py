"""HubSpot's objects as warehouse rows, and the engagements people search as documents.

A row is the record's id, times and archived flag, then every property HubSpot returned (all
of the object's properties are requested, so custom ones land as columns under their internal
names), then one `associated_<object>` column per association read, holding the associated
ids joined by ';' (HubSpot's own multi-value convention), so a row stays one row: the record's
own view as of its last read. The links themselves, each once and answerable from both ends,
with removals, are the `associations` table (associations.py). Contacts, companies and deals
read their links to each other both ways; tickets and engagements to the CRM objects.

Documents: notes (body), emails (subject + text), calls (title + body) and meetings (title +
body), one per record, `hubspot:<connection>:<object>-<id>`. Access is "all": CRM records are
shared company-wide in HubSpot by default; the connection option `access: owner` narrows each
document to its owner's email (teams and record-level permissions are not read).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync_pipelines.documents import ACCESS_ALL, Document
from sync_pipelines.warehouse.tables import CrmRun, Record

SOURCE = "hubspot"
KEEP = ("id", "created_at", "updated_at", "archived", "archived_at")
_TAGS = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</(p|div|li|h\d)>|<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True)
class HubObject:
    """One CRM object: its name in the API (= its table), the object types whose
    associations become columns, the numeric type id record URLs use, and for searchable
    engagements the properties that make a document's title and text."""

    name: str
    type_id: str
    associations: tuple[str, ...] = ()
    title: tuple[str, ...] = ()
    text: tuple[str, ...] = ()

    @property
    def modified(self) -> str:
        """The property search filters on: contacts keep the old `lastmodifieddate`."""
        return "lastmodifieddate" if self.name == "contacts" else "hs_lastmodifieddate"

    @property
    def singular(self) -> str:
        return self.name.removesuffix("s").removesuffix("ie") + (
            "y" if self.name.endswith("ies") else ""
        )

    @property
    def searchable(self) -> bool:
        return bool(self.text)


_ENGAGED = ("contacts", "companies", "deals")
OBJECTS = (
    HubObject("companies", "0-2", ("contacts", "deals")),
    HubObject("contacts", "0-1", ("companies", "deals")),
    HubObject("deals", "0-3", ("companies", "contacts")),
    HubObject("tickets", "0-5", ("companies", "contacts")),
    HubObject("notes", "0-46", _ENGAGED, (), ("hs_note_body",)),
    HubObject("calls", "0-48", _ENGAGED, ("hs_call_title",), ("hs_call_body",)),
    HubObject("emails", "0-49", _ENGAGED, ("hs_email_subject",), ("hs_email_text",)),
    HubObject("meetings", "0-47", _ENGAGED, ("hs_meeting_title",), ("hs_meeting_body",)),
    HubObject("tasks", "0-27", _ENGAGED),
)
BY_NAME = {o.name: o for o in OBJECTS}


def epoch(value: Any) -> float | None:
    """Epoch seconds of a HubSpot timestamp (ISO 8601 or epoch milliseconds)."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return int(text) / 1000
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def as_row(record: dict, obj: HubObject, linked: dict[str, dict[str, list[str]]]) -> Record:
    """The warehouse row of an API record; `linked` maps each association target to
    {record id: associated ids}."""
    rid = str(record["id"])
    row: Record = {
        "id": rid,
        "created_at": record.get("createdAt"),
        "updated_at": record.get("updatedAt"),
        "archived": bool(record.get("archived")),
        "archived_at": record.get("archivedAt"),
    }
    for name, value in (record.get("properties") or {}).items():
        if name not in KEEP:
            row[name] = value
    for target in obj.associations:
        ids = linked.get(target, {}).get(rid)
        row[f"associated_{target}"] = ";".join(sorted(set(ids), key=_id_order)) if ids else None
    return row


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (0, value)


def plain_text(value: Any) -> str:
    """Note and email bodies are HTML in HubSpot: tags out, entities decoded, blocks kept
    as line breaks."""
    if value in (None, ""):
        return ""
    text = _BLOCK_END.sub("\n", str(value))
    text = html.unescape(_TAGS.sub("", text))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def document(row: Record, crm: CrmRun, obj: HubObject) -> Document | None:
    """The document of a searchable engagement's row (None without text)."""
    text = "\n\n".join(t for t in (plain_text(row.get(p)) for p in obj.text) if t)
    if not text:
        return None
    title = next((plain_text(row.get(p)) for p in obj.title if row.get(p)), "")
    options = crm.options
    owner = str(row.get("hubspot_owner_id") or "")
    author = crm.client.owner_emails().get(owner, "") if owner else ""
    narrowed = getattr(options, "access", "all") == "owner" and author
    portal = getattr(options, "portal_id", None)
    rid = row["id"]
    updated = epoch(row.get("updated_at")) or crm.now
    metadata: dict[str, Any] = {"object_type": obj.name, "hubspot_id": rid, "owner_id": owner}
    for target in obj.associations:
        metadata[f"associated_{target}"] = (row.get(f"associated_{target}") or "").split(";")
        metadata[f"associated_{target}"] = [i for i in metadata[f"associated_{target}"] if i]
    return Document(
        doc_id=Document.make_id(SOURCE, crm.connection_id, f"{obj.singular}-{rid}"),
        source=SOURCE,
        connection=crm.connection_id,
        title=title or f"{obj.singular.title()} {rid}",
        text=text,
        url=f"https://app.hubspot.com/contacts/{portal}/record/{obj.type_id}/{rid}"
        if portal
        else "",
        author=author,
        created_at=str(row.get("created_at") or ""),
        updated_at=str(row.get("updated_at") or ""),
        timestamp_epoch=updated,
        access=(author,) if narrowed else (ACCESS_ALL,),
        metadata=metadata,
    )
