"""Search queries over a synthetic company with the documents that answer them.

Why: a retrieval evaluation (bench/retrieval_eval.py) needs queries whose right answers are
known without a human judging results. The company knows them: which Jira issue has which key
and summary, who wrote which Slack message or Tempo worklog, which Notion page is the runbook
of which service, and which customer call states which planted insight (insight_terms). The
queries fall in four categories:

- exact_key: an issue key ("SUBS-121"); the answer is that Jira issue alone.
- person: a full name; the answers are the documents titled with it (the person's Slack
  messages and Tempo worklogs, the meetings named after them).
- topic: words the answer shares (a Jira summary, a Notion page's subject).
- paraphrase: the meaning of a customer call's planted line (or of a Jira summary template)
  in words the answer does not use ("billed twice for the same order" for "duplicate
  invoices"): only an embedder that understands meaning finds these.

Everything is read from the company's stores, never from synced documents, and chosen with
an RNG seeded by the company's seed, so the same company gives the same queries. Doc ids are
written as the sources write them (`source:connection:native_id`). Who may read a document is
the sources' business: each query names the user it searches as (`as_user`, None: only what
everyone may read) and the evaluation keeps the relevant documents that user may read.
Nothing here changes what the generators produce.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.fathom.data import FathomData
from sync_pipelines_sandbox.fireflies.data import FirefliesData
from sync_pipelines_sandbox.gong.data import GongData
from sync_pipelines_sandbox.jira.data import JiraSite
from sync_pipelines_sandbox.notion.data import NotionWorkspace
from sync_pipelines_sandbox.tempo.data import TempoWorklogs

CATEGORIES = ("exact_key", "person", "topic", "paraphrase")
SOURCES = ("slack", "jira", "tempo", "notion", "fireflies", "gong", "fathom")

# Planted customer-call lines (insight_terms) -> paraphrases sharing no distinctive word with
# the line or its templates. Left out on purpose: values other generators also write (SSO,
# audit log, usage-based billing, webhook retries, offline mode, two-factor auth, Salesforce,
# CSV exports) and "high price" (the competitor lines say "lower price"), so that no
# unlisted document answers a paraphrase as well as the listed ones.
CALL_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "duplicate invoices": (
        "billed twice for the same order",
        "clients charged two times on their statements",
    ),
    "confusing onboarding": (
        "new users get lost during first-time setup",
        "the initial account setup experience is hard to follow",
    ),
    "missed notifications": (
        "alerts that never reach people",
        "reminder emails silently not delivered",
    ),
    "nightly sync failures": (
        "the overnight replication job keeps erroring out",
        "data transfer between systems breaks after hours",
    ),
    "manual data entry": (
        "typing records in by hand",
        "people keying information into forms themselves",
    ),
    "long security review": (
        "lengthy infosec vetting before purchase",
        "their IT compliance assessment drags on for months",
    ),
    "lack of an on-premise option": (
        "no way to self-host in their own datacenter",
        "they cannot run it on servers they operate",
    ),
    "three-year contract term": (
        "a lengthy multi-annual commitment",
        "locked into a 36-month agreement",
    ),
    "custom roles": (
        "user-defined permission levels",
        "configurable access profiles per team member",
    ),
    "bulk import": (
        "uploading thousands of records at once from a spreadsheet",
        "mass loading of existing entries in one go",
    ),
    "data residency in the EU": (
        "keeping information stored inside Europe",
        "hosting everything within European borders for GDPR",
    ),
    "send the security questionnaire": (
        "next step: deliver the infosec compliance form",
        "email over the vendor risk checklist",
    ),
    "set up a trial workspace": (
        "provision an evaluation environment for them",
        "spin up a free test account",
    ),
    "share the pricing proposal": (
        "deliver the cost quote",
        "pass along the commercial offer with rates",
    ),
    "schedule a technical deep dive": (
        "book an in-depth engineering walkthrough",
        "arrange a detailed architecture session",
    ),
    "follow up with the legal team": (
        "loop back with their lawyers",
        "check in with counsel about the terms",
    ),
}

# Jira summary templates (jira/data.py SUMMARIES) -> paraphrases; the answers are every issue
# whose summary comes from the template, whatever fills it.
SUMMARY_PARAPHRASES: dict[str, tuple[str, ...]] = {
    r".+ returns 500 on empty payloads": (
        "server error when the request body is blank",
        "crash answering requests that carry no content",
    ),
    r"Rotate the .+ credentials before the audit": (
        "replace secrets and keys ahead of the compliance inspection",
        "renew passwords and tokens prior to the yearly inspection",
    ),
}

EXACT_KEYS = 30
PEOPLE = 25
JIRA_TOPICS = 15
NOTION_TOPICS = 15


@dataclass(frozen=True)
class TruthQuery:
    """One query, the documents that answer it (any order), and who searches."""

    query: str
    relevant: tuple[str, ...]
    category: str
    as_user: str | None = None


def doc_id(source: str, connection: str, native_id: str) -> str:
    return f"{source}:{connection}:{native_id}"


def retrieval_queries(
    company: Company,
    connection: str = "acme",
    start: float | None = None,
    end: float | None = None,
) -> list[TruthQuery]:
    """The company's queries for documents synced over [start, end) (epoch seconds; default
    the company's whole span) by one connection per source named `connection`."""
    span_start, span_end = company.span()
    start = span_start if start is None else start
    end = span_end if end is None else end
    rng = random.Random(f"retrieval:{company.seed}")
    truth = _Truth(company, connection, start, end)
    return [
        *truth.exact_keys(rng),
        *truth.people(rng),
        *truth.topics(rng),
        *truth.paraphrases(),
    ]


class _Truth:
    """Reads each store's ground truth for one window and turns it into queries."""

    def __init__(self, company: Company, connection: str, start: float, end: float):
        self.company = company
        self.connection = connection
        self.start, self.end = start, end
        self.jira = JiraSite.of(company)
        self.issues = sorted(self.jira.updated_between(start, end), key=lambda i: int(i.id))

    def _id(self, source: str, native_id: object) -> str:
        return doc_id(source, self.connection, str(native_id))

    # -- exact keys --------------------------------------------------------------------------
    def exact_keys(self, rng: random.Random) -> list[TruthQuery]:
        chosen = rng.sample(self.issues, min(EXACT_KEYS, len(self.issues)))
        return [
            TruthQuery(issue.key, (self._id("jira", issue.id),), "exact_key") for issue in chosen
        ]

    # -- people ------------------------------------------------------------------------------
    def people(self, rng: random.Random) -> list[TruthQuery]:
        titled = self._titled_by_person()
        names = sorted(name for name, ids in titled.items() if ids)
        chosen = rng.sample(names, min(PEOPLE, len(names)))
        return [TruthQuery(name, tuple(sorted(titled[name])), "person") for name in chosen]

    def _titled_by_person(self) -> dict[str, set[str]]:
        """Full name -> documents whose title carries it: Slack messages (titled
        '#channel · Author'), Tempo worklogs on live projects ('Worklog KEY · Author · day')
        and meetings named after their people ('1:1 A / B')."""
        company = self.company
        humans = {p.user_id: p.name for p in company.people if not p.is_bot}
        titled: dict[str, set[str]] = defaultdict(set)
        for msg in company.expected_chat_messages(self.start, self.end):
            if msg["user"] in humans:
                native = f"{msg['channel_id']}:{msg['ts']}"
                titled[humans[msg["user"]]].add(self._id("slack", native))
        accounts = {u.account_id: u.display_name for u in self.jira.users.values()}
        names = set(humans.values())
        live = {p.key for p in self.jira.projects}  # Tempo skips worklogs on archived ones
        for worklog in TempoWorklogs.of(company).updated_between(self.start, self.end):
            name = accounts.get(worklog.author)
            if name in names and worklog.issue.project.key in live:
                titled[name].add(self._id("tempo", worklog.id))
        for source, native, title in self._meetings():
            for name in names:
                if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", title):
                    titled[name].add(self._id(source, native))
        return titled

    def _meetings(self) -> Iterable[tuple[str, object, str]]:
        company = self.company
        for m in FirefliesData.of(company).expected(self.start, self.end):
            yield "fireflies", m.id, m.title
        for c in GongData.of(company).expected(self.start, self.end):
            yield "gong", c.id, c.title
        for r in FathomData.of(company).expected(self.start, self.end):
            yield "fathom", r.recording_id, r.title

    # -- topics ------------------------------------------------------------------------------
    def topics(self, rng: random.Random) -> list[TruthQuery]:
        by_summary: dict[str, list[str]] = defaultdict(list)
        for issue in self.issues:
            by_summary[issue.summary].append(self._id("jira", issue.id))
        summaries = sorted(by_summary)
        chosen = rng.sample(summaries, min(JIRA_TOPICS, len(summaries)))
        queries = [TruthQuery(s, tuple(by_summary[s]), "topic") for s in chosen]
        by_subject: dict[str, list[str]] = defaultdict(list)
        for page in NotionWorkspace.of(self.company).pages_edited_between(self.start, self.end):
            subject = _notion_subject(page.kind, page.title)
            if subject:
                by_subject[subject].append(self._id("notion", page.id))
        subjects = sorted(by_subject)
        chosen = rng.sample(subjects, min(NOTION_TOPICS, len(subjects)))
        queries += [TruthQuery(s, tuple(sorted(by_subject[s])), "topic") for s in chosen]
        return queries

    # -- paraphrases -------------------------------------------------------------------------
    def paraphrases(self) -> list[TruthQuery]:
        calls = self._calls_by_value()
        queries = []
        for value, phrasings in CALL_PARAPHRASES.items():
            found = calls.get(value, [])
            for n, phrasing in enumerate(phrasings):
                if not found:
                    break
                _, host = found[n % len(found)]  # each phrasing asked by another call's host
                relevant = tuple(sorted(doc for doc, _ in found))
                queries.append(TruthQuery(phrasing, relevant, "paraphrase", host))
        for pattern, phrasings in SUMMARY_PARAPHRASES.items():
            template = re.compile(pattern)
            relevant = tuple(
                self._id("jira", i.id) for i in self.issues if template.fullmatch(i.summary)
            )
            if relevant:
                queries += [TruthQuery(p, relevant, "paraphrase") for p in phrasings]
        return queries

    def _calls_by_value(self) -> dict[str, list[tuple[str, str]]]:
        """Planted value -> (doc id, host email) of every call stating it, by doc id."""
        company = self.company
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        fireflies = FirefliesData.of(company)
        for m in fireflies.expected(self.start, self.end):
            for fact in fireflies.planted(m):
                out[fact.value].append((self._id("fireflies", m.id), m.organizer.email))
        gong = GongData.of(company)
        for c in gong.expected(self.start, self.end):
            for fact in gong.planted(c):
                out[fact.value].append((self._id("gong", c.id), c.host.email))
        fathom = FathomData.of(company)
        for r in fathom.expected(self.start, self.end):
            for fact in fathom.planted(r):
                out[fact.value].append((self._id("fathom", r.recording_id), r.recorder.email))
        return {value: sorted(set(found)) for value, found in out.items()}


def _notion_subject(kind: str, title: str) -> str | None:
    """A topic query for a generated Notion page, in words its title uses."""
    if kind == "runbook":
        return f"runbook for {title.removeprefix('Runbook: ')}"
    if kind == "spec":
        project, _, feature = title.removesuffix(" spec").partition(": ")
        return f"{feature} spec for {project}"
    if kind == "rfc":
        return title.partition(": ")[2] + " RFC"
    return None
