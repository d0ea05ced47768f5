"""How one Gong call becomes a searchable document.

Speakers: a transcript's monologues carry a `speakerId`; the call's parties (from
`/v2/calls/extensive`) carry the same id with the person's name, email and affiliation, so each
turn is written "Name: what they said" (consecutive monologues of one speaker joined; an id no
party claims reads "Speaker <id>").

Access: who may read a call. Option `access: participants` (the default) gives the emails of the
call's internal parties (affiliation Internal, plus the host), lower-cased: a customer's emails
never grant access to the company's index. `access: all` shares every call company-wide
(`("all",)`, as the codebase writes company-wide access), except the calls Gong marks private
(`isPrivate`), which stay with their internal participants.

CRM context: `context` lists the CRM records Gong linked the call to, per system (Salesforce,
HubSpot), with their fields (contentSelector.context "Extended"). Account-like objects (Account,
Company) and opportunity-like ones (Opportunity, Deal) give their names: `Name`, HubSpot's `name`
or `dealname` (UNCONFIRMED: the field names Gong reports for HubSpot).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sync_pipelines.documents import ACCESS_ALL, Document
from sync_pipelines.sources.gong.client import SOURCE

ACCOUNT_TYPES = frozenset({"account", "company"})
OPPORTUNITY_TYPES = frozenset({"opportunity", "deal"})
NAME_FIELDS = ("name", "dealname", "companyname", "accountname", "opportunityname")


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


class Party:
    """One participant as the extensive listing reports it."""

    def __init__(self, raw: dict):
        self.name = _text(raw.get("name"))
        self.email = _text(raw.get("emailAddress")).lower()
        self.title = _text(raw.get("title"))
        self.user_id = _text(str(raw.get("userId") or ""))
        self.speaker_id = _text(str(raw.get("speakerId") or ""))
        self.internal = _text(raw.get("affiliation")).lower() == "internal"

    def label(self) -> str:
        if self.name and self.email:
            return f"{self.name} <{self.email}>"
        return self.name or self.email or "unknown"


def parties_of(call: dict) -> list[Party]:
    return [Party(p) for p in call.get("parties") or [] if isinstance(p, dict)]


def speaker_turns(monologues: list[dict], parties: list[Party]) -> list[str]:
    """ "Name: text" lines in the order spoken, one per change of speaker."""
    names = {p.speaker_id: p.name or p.email for p in parties if p.speaker_id}

    def first_start(monologue: dict) -> float:
        sentences = monologue.get("sentences") or [{}]
        return _number(sentences[0].get("start") if isinstance(sentences[0], dict) else 0)

    ordered = sorted(
        (m for m in monologues if isinstance(m, dict)), key=first_start
    )  # a stable sort: equal starts keep Gong's order
    turns: list[tuple[str, list[str]]] = []
    for monologue in ordered:
        speaker_id = _text(str(monologue.get("speakerId") or ""))
        speaker = names.get(speaker_id) or f"Speaker {speaker_id or 'unknown'}"
        texts = [
            _text(s.get("text"))
            for s in monologue.get("sentences") or []
            if isinstance(s, dict) and _text(s.get("text"))
        ]
        if not texts:
            continue
        if turns and turns[-1][0] == speaker:
            turns[-1][1].extend(texts)
        else:
            turns.append((speaker, texts))
    return [f"{speaker}: {' '.join(texts)}" for speaker, texts in turns]


def crm_context(call: dict) -> dict[str, list[str]]:
    """{systems, accounts, opportunities}: the CRM records' systems and names."""
    systems, accounts, opportunities = set(), set(), set()
    for entry in call.get("context") or []:
        if not isinstance(entry, dict):
            continue
        system = _text(entry.get("system"))
        for obj in entry.get("objects") or []:
            if not isinstance(obj, dict):
                continue
            kind = _text(obj.get("objectType")).lower()
            fields = {
                _text(f.get("name")).lower(): f.get("value")
                for f in obj.get("fields") or []
                if isinstance(f, dict)
            }
            name = next((_text(fields[k]) for k in NAME_FIELDS if _text(fields.get(k))), "")
            if system:
                systems.add(system)
            if name and kind in ACCOUNT_TYPES:
                accounts.add(name)
            elif name and kind in OPPORTUNITY_TYPES:
                opportunities.add(name)
    return {
        "systems": sorted(systems),
        "accounts": sorted(accounts),
        "opportunities": sorted(opportunities),
    }


def access_of(meta: dict, parties: list[Party], share: str) -> tuple[str, ...]:
    """Who may read the call (see the module docstring)."""
    if share == ACCESS_ALL and meta.get("isPrivate") is not True:
        return (ACCESS_ALL,)
    host = _text(str(meta.get("primaryUserId") or ""))
    emails = {p.email for p in parties if p.email and (p.internal or (host and p.user_id == host))}
    return tuple(sorted(emails))


def call_document(
    call: dict,
    monologues: list[dict],
    connection_id: str,
    started: float,
    share: str = "participants",
    missing: bool = False,
) -> Document:
    """The document of one call; `missing`: written without a transcript after waiting for
    it too long (pending.MAX_WAIT_S)."""
    meta = call["metaData"]
    native_id = str(meta["id"])
    parties = parties_of(call)
    host_id = _text(str(meta.get("primaryUserId") or ""))
    host = next((p for p in parties if host_id and p.user_id == host_id), None)
    internal = [p for p in parties if p.internal]
    external = [p for p in parties if not p.internal]
    crm = crm_context(call)
    title = _text(meta.get("title")) or "Untitled call"
    duration = _number(meta.get("duration"))
    access = access_of(meta, parties, share)
    when = datetime.fromtimestamp(started, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    details = ", ".join(x for x in (_text(meta.get("direction")), _text(meta.get("system"))) if x)
    header = [
        f"Call: {title}",
        f"Date: {when} ({duration / 60:.0f} min{', ' + details if details else ''})",
        f"Host: {host.label()}" if host else "",
        "Internal participants: " + ", ".join(p.label() for p in internal) if internal else "",
        "External participants: "
        + ", ".join(p.label() + (f" ({p.title})" if p.title else "") for p in external)
        if external
        else "",
        f"CRM ({', '.join(crm['systems'])}): "
        + "; ".join(
            [f"account {a}" for a in crm["accounts"]]
            + [f"opportunity {o}" for o in crm["opportunities"]]
        )
        if crm["accounts"] or crm["opportunities"]
        else "",
    ]
    text = "\n".join(line for line in header if line)
    turns = speaker_turns(monologues, parties)
    if turns:
        text += "\n\nTranscript:\n" + "\n".join(turns)
    elif missing:
        text += "\n\nTranscript: not available (Gong had not transcribed the call)."
    return Document(
        doc_id=Document.make_id(SOURCE, connection_id, native_id),
        source=SOURCE,
        connection=connection_id,
        title=title,
        text=text,
        url=_text(meta.get("url")),
        author=(host.name or host.email) if host else "",
        created_at=_iso(started),
        updated_at=_iso(started),
        timestamp_epoch=started,
        access=access,
        metadata={
            "call_id": native_id,
            "title": title,
            "started": _text(meta.get("started")),
            "duration": round(duration, 2),
            "direction": _text(meta.get("direction")),
            "scope": _text(meta.get("scope")),
            "system": _text(meta.get("system")),
            "host_email": host.email if host else "",
            "participant_emails": sorted({p.email for p in parties if p.email}),
            "internal_emails": sorted({p.email for p in internal if p.email}),
            "external_emails": sorted({p.email for p in external if p.email}),
            "speakers": sorted({line.split(": ", 1)[0] for line in turns}),
            "crm_systems": crm["systems"],
            "crm_accounts": crm["accounts"],
            "crm_opportunities": crm["opportunities"],
            "is_private": meta.get("isPrivate") is True,
            "timestamp_epoch": started,
            "access": list(access),
            "transcript_missing": missing,
        },
    )
