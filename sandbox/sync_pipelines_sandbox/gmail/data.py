"""The mailboxes the Gmail emulator serves: one per person of the shared Company (acme.test).

Each mailbox is generated on first use from (company seed, address), on its own: a thread
between two colleagues appears in each one's mailbox independently. A mailbox holds threads
with colleagues and customers (text.CUSTOMERS): replies quote the previous message (plain
"On <date>, <name> wrote:" with ">" lines, or Gmail's `gmail_quote` div in HTML), and the
messages come as text/plain, multipart/alternative, HTML only, latin-1 and windows-1252 text,
and multipart/mixed with a text, a PDF (pdf.py) or an image attachment. Some messages are in
SPAM or TRASH. Labels: Gmail's system labels plus two user labels, Customers and Team.

Every change raises the mailbox's historyId and appends a history record (messagesAdded,
messagesDeleted, labelsAdded, labelsRemoved); history older than `history_floor` is gone (a
startHistoryId before it gets 404, as Gmail's does once its history has expired).
"""

from __future__ import annotations

import base64
import random
import threading
import weakref
from dataclasses import dataclass, field
from typing import ClassVar

from sync_pipelines_sandbox.company import Company, Person
from sync_pipelines_sandbox.gmail import mime
from sync_pipelines_sandbox.text import CUSTOMERS, FIRST_NAMES, LAST_NAMES, Chatter, email_local

SYSTEM_LABELS = ("INBOX", "SENT", "UNREAD", "IMPORTANT", "STARRED", "SPAM", "TRASH", "DRAFT")
USER_LABELS = {"Label_1": "Customers", "Label_2": "Team"}
HIDDEN = frozenset({"SPAM", "TRASH"})
SPAMMER = "Prize Desk <winner@prizes-now.test>"


def b64url(data: bytes) -> str:
    """Gmail's base64url (URL-safe alphabet, padded)."""
    return base64.urlsafe_b64encode(data).decode()


@dataclass
class Mail:
    """One message of one mailbox: its labels, its MIME tree as messages.get shows it
    (format=full) and its attachments' bytes by attachmentId."""

    id: str
    thread_id: str
    internal_ms: int
    labels: set[str]
    payload: dict
    attachments: dict[str, bytes] = field(default_factory=dict)
    history_id: int = 0
    snippet: str = ""
    kind: str = "plain"  # how it was built: plain, alternative, html, latin1, cp1252, pdf, ...

    @property
    def visible(self) -> bool:
        return not (self.labels & HIDDEN)

    def resource(self, fmt: str = "full") -> dict:
        """The Message resource of messages.get."""
        body = {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": sorted(self.labels),
            "snippet": self.snippet,
            "historyId": str(self.history_id),
            "internalDate": str(self.internal_ms),
            "sizeEstimate": 512 + sum(len(a) for a in self.attachments.values()),
        }
        if fmt == "full":
            body["payload"] = self.payload
        elif fmt == "metadata":
            body["payload"] = {k: v for k, v in self.payload.items() if k != "parts"}
        return body


@dataclass
class Mailbox:
    address: str
    mails: dict[str, Mail] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # records, increasing ids
    history_id: int = 0
    history_floor: int = 0  # the oldest startHistoryId still answered
    next_attachment: int = 1

    def bump(self, rng: random.Random | None = None) -> int:
        self.history_id += rng.randint(1, 7) if rng else 3
        return self.history_id

    def labels(self) -> list[dict]:
        system = [{"id": label, "name": label, "type": "system"} for label in SYSTEM_LABELS]
        user = [
            {
                "id": label_id,
                "name": name,
                "type": "user",
                "messageListVisibility": "show",
                "labelListVisibility": "labelShow",
            }
            for label_id, name in USER_LABELS.items()
        ]
        return system + user


class GmailData:
    """Every mailbox of one company (built lazily), shared by the emulator and ground truth."""

    def __init__(self, company: Company):
        self.company = company
        self.lock = threading.RLock()
        self._boxes: dict[str, Mailbox] = {}
        humans = [p for p in company.people if not p.is_bot]
        self.people = {p.email: p for p in humans}
        self.owner = humans[0].email  # the sandbox refresh token's mailbox

    _stores: ClassVar[weakref.WeakKeyDictionary[Company, GmailData]] = weakref.WeakKeyDictionary()
    _stores_lock = threading.Lock()

    @classmethod
    def of(cls, company: Company) -> GmailData:
        with cls._stores_lock:
            store = cls._stores.get(company)
            if store is None:
                store = cls._stores[company] = cls(company)
            return store

    def mailbox(self, address: str) -> Mailbox:
        """The mailbox of a company address (KeyError for any other)."""
        with self.lock:
            box = self._boxes.get(address)
            if box is None:
                box = self._boxes[address] = self._generate(self.people[address])
            return box

    # ----------------------------------------------------------------- ground truth
    def expected(self, address: str, start: float, end: float) -> list[Mail]:
        """Messages a sync of [start, end) indexes: not in SPAM or TRASH, by internalDate."""
        box = self.mailbox(address)
        with self.lock:
            return sorted(
                (
                    m
                    for m in box.mails.values()
                    if m.visible and start * 1000 <= m.internal_ms < end * 1000
                ),
                key=lambda m: (m.internal_ms, m.id),
            )

    def of_kind(self, address: str, kind: str) -> Mail:
        box = self.mailbox(address)
        found = [m for m in box.mails.values() if m.kind == kind and m.visible]
        if not found:
            raise LookupError(f"no {kind} message in {address}")
        return min(found, key=lambda m: m.internal_ms)

    # ----------------------------------------------------------------- mutations
    def add_message(
        self,
        address: str,
        *,
        internal_ms: int,
        subject: str = "Sandbox message",
        text: str = "Hello from the sandbox.",
        sender: str = "Casey Client <casey@globex.test>",
        labels: tuple[str, ...] = ("INBOX", "UNREAD"),
        thread_id: str | None = None,
        payload: dict | None = None,
    ) -> Mail:
        """A new message (messagesAdded in the history)."""
        box = self.mailbox(address)
        with self.lock:
            mail_id = (
                f"{random.Random(f'{address}:{len(box.mails)}:{internal_ms}').getrandbits(64):016x}"
            )
            headers = mime.headers(sender, [address], [], subject, internal_ms, mail_id, None)
            mail = Mail(
                id=mail_id,
                thread_id=thread_id or mail_id,
                internal_ms=internal_ms,
                labels=set(labels),
                payload=payload or mime.text_part(text, headers),
                snippet=text[:100],
                kind="added",
            )
            box.mails[mail.id] = mail
            self._record(box, mail, "messagesAdded")
            return mail

    def delete_message(self, address: str, mail_id: str) -> None:
        """Deleted for good (messagesDeleted), as emptying the trash does."""
        box = self.mailbox(address)
        with self.lock:
            mail = box.mails.pop(mail_id)
            self._record(box, mail, "messagesDeleted")

    def change_labels(
        self, address: str, mail_id: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()
    ) -> None:
        box = self.mailbox(address)
        with self.lock:
            mail = box.mails[mail_id]
            added = [label for label in add if label not in mail.labels]
            removed = [label for label in remove if label in mail.labels]
            mail.labels.update(added)
            mail.labels.difference_update(removed)
            if added:
                self._record(box, mail, "labelsAdded", added)
            if removed:
                self._record(box, mail, "labelsRemoved", removed)

    def move_to_trash(self, address: str, mail_id: str) -> None:
        """As users.messages.trash: TRASH added, INBOX removed."""
        self.change_labels(address, mail_id, add=("TRASH",), remove=("INBOX",))

    def expire_history(self, address: str) -> None:
        """Every history record so far is gone: older startHistoryIds get 404."""
        box = self.mailbox(address)
        with self.lock:
            box.history.clear()
            box.history_floor = box.bump()

    def _record(self, box: Mailbox, mail: Mail, kind: str, labels: list[str] = ()) -> None:
        mail.history_id = box.bump()
        ref = {"id": mail.id, "threadId": mail.thread_id}
        entry = {"message": {**ref, "labelIds": sorted(mail.labels)}}
        if labels:
            entry["labelIds"] = sorted(labels)
        box.history.append({"id": str(mail.history_id), "messages": [ref], kind: [entry]})

    # ----------------------------------------------------------------- generation
    def _generate(self, owner: Person) -> Mailbox:
        company = self.company
        rng = random.Random(f"gmail:{company.seed}:{owner.email}")
        box = Mailbox(owner.email, history_id=rng.randint(10_000, 90_000))
        colleagues = [p for p in self.people.values() if p.email != owner.email]
        contacts = [
            (customer, f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}")
            for customer in CUSTOMERS
        ]
        chatter = Chatter(rng, company.issue_keys, [p.name for p in company.projects])
        start, end = company.span()
        total = max(30, company.message_count // 4)
        made = 0
        while made < total:
            at = start + rng.random() * (end - start - 60)
            if rng.random() < 0.04:
                self._spam(box, rng, owner, at)
                made += 1
                continue
            if rng.random() < 0.45:
                customer, name = rng.choice(contacts)
                domain = email_local(customer).replace(".", "") + ".test"
                other = f"{name} <{email_local(name)}@{domain}>"
                topic, label = f"{customer}: {rng.choice(_CUSTOMER_TOPICS)}", "Label_1"
            else:
                person = rng.choice(colleagues)
                other = f"{person.name} <{person.email}>"
                topic, label = rng.choice(_TEAM_TOPICS).format(j=chatter.projects[0]), "Label_2"
                topic = topic.replace(chatter.projects[0], rng.choice(chatter.projects))
            size = min(total - made, rng.choice((1, 1, 2, 2, 3, 4)))
            self._thread(box, rng, chatter, owner, other, topic, label, at, end, size)
            made += size
        box.history_floor = box.bump(rng)
        return box

    def _thread(self, box, rng, chatter, owner, other, topic, label, at, end, size) -> None:
        me = f"{owner.name} <{owner.email}>"
        thread_id, previous, at_ms = None, None, int(at * 1000)
        for n in range(size):
            if n:
                at_ms = min(
                    at_ms + int(rng.expovariate(1 / 5400) * 1000) + 60_000, end * 1000 - 61_000
                )
            sender, recipient = (me, other) if (n + rng.randint(0, 1)) % 2 else (other, me)
            mail_id = f"{rng.getrandbits(64):016x}"
            thread_id = thread_id or mail_id
            subject = topic if n == 0 else f"Re: {topic}"
            cc = [f"{p.name} <{p.email}>" for p in rng.sample(list(self.people.values()), 1)]
            cc = cc if rng.random() < 0.2 else []
            first = sender.split()[0]
            body = chatter.message([(first, first)]).replace("<@", "").replace(">", "")
            body = f"Hi {recipient.split()[0]},\n\n{body}\n\nBest,\n{first}"
            headers = mime.headers(sender, [recipient], cc, subject, at_ms, mail_id, previous)
            built = mime.build(rng, body, headers, previous, box)
            labels = {label, "SENT" if sender == me else "INBOX"}
            if sender != me and rng.random() < 0.3:
                labels.add("UNREAD")
            if rng.random() < 0.025:
                labels = (labels - {"INBOX"}) | {"TRASH"}
            mail = Mail(mail_id, thread_id, at_ms, labels, built.payload, built.attachments,
                        box.bump(rng), body[:120], built.kind)  # fmt: skip
            box.mails[mail.id] = mail
            previous = mime.Quoted(sender, at_ms, built.plain, built.html)

    def _spam(self, box: Mailbox, rng: random.Random, owner: Person, at: float) -> None:
        mail_id = f"{rng.getrandbits(64):016x}"
        at_ms = int(at * 1000)
        headers = mime.headers(SPAMMER, [owner.email], [], "You have WON!!!", at_ms, mail_id, None)
        text = "Claim your prize now: click the link and enter your bank details."
        box.mails[mail_id] = Mail(mail_id, mail_id, at_ms, {"SPAM", "UNREAD"},
                                  mime.text_part(text, headers), {}, box.bump(rng), text, "spam")  # fmt: skip


_CUSTOMER_TOPICS = (
    "renewal terms for next year",
    "SSO rollout question",
    "invoice discrepancy",
    "onboarding call follow-up",
    "feature request: audit log export",
    "escalation on failed webhooks",
)
_TEAM_TOPICS = (
    "{j} planning notes",
    "Review needed: {j} migration plan",
    "Staffing for the {j} launch",
    "Postmortem draft for {j}",
    "Quick question about {j}",
)
