"""What one Notion run reads and how a page becomes a document.

Partition semantics: a day holds the pages whose `last_edited_time` falls in that UTC day.
Notion's search has no time filter, only a sort, so a run pages through search sorted by
`last_edited_time` descending, skips pages edited at or after its upper bound
(min(window end, now): they belong to a later day or run) and stops at the first page edited
before its lower bound. The lower bound is the window start, or, for today's partition with a
previous high-water mark, the mark minus `INCREMENTAL_OVERLAP_S`: Notion rounds edit times to
the minute, so an edit made just before the last run may carry an earlier time. Each page's
full content is read from its block children, paginated and recursively for nested blocks;
pages are read in parallel threads that share the connection's rate limiter. One document per
page, `doc_id` = `notion:<connection>:<page id>`, so edits re-surface with the same id; the
returned mark is the upper bound.

Deletions: search leaves trashed pages out, so after the pages are read a second search asks
for the trash only (`filter.in_trash`), newest edit first, down to the lower bound; every
trashed page it walks (newer than the window too) becomes a tombstone with reason `in_trash`
(or `archived`, the flag's older name), observed at its last edit, never a document. A page
carrying either flag in the ordinary search gets the same. A page read that answers 404
(`object_not_found`: deleted, or no longer shared with the integration) is checked once with
retrieve page: still 404, a tombstone `not_found_or_unshared` observed at the run's now; in
the trash, a tombstone as above; alive, a block vanished under the reader (the edit puts the
page in a later run), so the page is skipped this run. Pages deleted or unshared without
being read again show only by absence: the daily reconciliation (reconcile.py) lists them.

Limitations: a page is found only in the partition of its latest edit (a backfill of an old
day does not return pages edited since); search walks every page edited after the window
before it reaches it; a trashed page is tombstoned by a run whose lower bound lies at or
before its last edit (if moving it to the trash stamps no new edit, only a run of that day or
the reconciliation sees it); Notion sharing is not modelled, every page is `access: all` (the
integration sees what it was shared); sub-pages and databases inside a page are their own
documents, not part of the parent's text.
Text comes from the rich text of paragraphs, headings, list items, to-dos, quotes, callouts,
code and toggles; images, files, embeds, bookmarks, equations, tables and other blocks are
skipped (and counted), though the children of any block are still read.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from dagster import get_dagster_logger

from sync_pipelines.documents import ACCESS_ALL, Document, Tombstone, settle
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.resilience import MalformedResponseError
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.notion.client import (
    NotionClient,
    NotionObjectMissing,
    NotionRequestRefused,
)

log = get_dagster_logger(__name__)

SOURCE = "notion"
# Notion rounds edit times down to the minute and indexes edits for search with a lag: runs
# re-read this much before their mark, and a listing never judges the last this-many seconds.
INCREMENTAL_OVERLAP_S = 120.0
MISSING_REASON = "not_found_or_unshared"
_PREFIX = {
    "paragraph": "",
    "heading_1": "# ",
    "heading_2": "## ",
    "heading_3": "### ",
    "bulleted_list_item": "- ",
    "quote": "> ",
    "callout": "",
    "code": "",
    "toggle": "",
}
TEXT_BLOCK_TYPES = frozenset(_PREFIX) | {"numbered_list_item", "to_do"}
SUBDOCUMENT_TYPES = frozenset({"child_page", "child_database"})  # their own documents


@dataclass(kw_only=True)
class NotionSyncResult(SyncResult):
    """The shared result plus what the search walked and the page reads found (each counter
    becomes the run's metadata of that name)."""

    pages_listed: int = 0
    """Search results walked, down to the first page edited before the window."""
    pages_newer_than_window: int = 0
    """Pages edited at or after the upper bound: a later day's or run's."""
    pages_vanished: int = 0
    """Pages deleted or unshared between the search and the read of their blocks (tombstoned)."""
    pages_trashed: int = 0
    """Pages search, the trash search or a page read showed in the trash (tombstoned)."""
    pages_changed_mid_read: int = 0
    """Live pages a block of which vanished while they were read: left for a later run."""
    blocks_read: int = 0
    blocks_skipped: int = 0
    """Blocks whose content is not text (images, embeds, tables, ...)."""
    user_cache_size: int = 0
    """Workspace users whose names were read (0 without the capability to read users)."""
    trash_search_refused: int = 0
    """1 when Notion refused the trash search (`filter.in_trash` is recent in the API): the
    run goes on, and the daily reconciliation finds trashed pages by their absence."""


class _Stopped(Exception):
    """Another page reader failed for good: this one gives up before its next call."""


@dataclass
class _PageRead:
    lines: list[str]
    blocks: int = 0
    skipped: int = 0


# A page's read: its text, a tombstone (it is gone or in the trash) or None (changed mid-read).
_Read = _PageRead | Tombstone | None


def doc_id(connection_id: str, page_id: str) -> str:
    return Document.make_id(SOURCE, connection_id, page_id)


def scope(connection_id: str) -> str:
    """The doc_id prefix of every page of a connection."""
    return doc_id(connection_id, "")


def is_page(item: object) -> bool:
    return isinstance(item, dict) and item.get("object") == "page" and bool(item.get("id"))


def edited_at(page: dict) -> float:
    """The page's last_edited_time in epoch seconds: its partition time."""
    value = page.get("last_edited_time")
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        raise MalformedResponseError(
            f"notion last_edited_time is not an ISO time: {value!r}"
        ) from None


def trash_signal(page: dict) -> str | None:
    """'in_trash' when Notion says the page is in the trash, 'archived' when only the flag's
    older name says so (pages of older API versions), else None."""
    if page.get("in_trash") is True:
        return "in_trash"
    if page.get("archived") is True:
        return "archived"
    return None


def plain_text(rich_text: object) -> str:
    """The concatenated `plain_text` of a rich-text array (mentions read as Notion shows them)."""
    if not isinstance(rich_text, list):
        return ""
    return "".join(
        str(part.get("plain_text") or "") for part in rich_text if isinstance(part, dict)
    )


def block_line(block: dict, number: int) -> str | None:
    """One block as a line of text; None for block types whose content is not text."""
    kind = block.get("type")
    if kind not in TEXT_BLOCK_TYPES:
        return None
    payload = block.get(kind) or {}
    text = plain_text(payload.get("rich_text"))
    if not text.strip():
        return ""
    if kind == "to_do":
        return ("[x] " if payload.get("checked") else "[ ] ") + text
    if kind == "numbered_list_item":
        return f"{number}. {text}"
    return _PREFIX[kind] + text


def page_title(page: dict) -> str:
    """The page's title property, whatever its name (databases name it as they like)."""
    for prop in (page.get("properties") or {}).values():
        if isinstance(prop, dict) and prop.get("type") == "title":
            return plain_text(prop.get("title")).strip()
    return ""


def parent_label(parent: object) -> str:
    """`database:<id>`, `page:<id>`, `block:<id>` or `workspace`."""
    if not isinstance(parent, dict):
        return ""
    kind = parent.get("type")
    if kind in ("database_id", "data_source_id"):
        return f"database:{parent.get('database_id') or parent.get(kind)}"
    if kind in ("page_id", "block_id"):
        return f"{kind[:-3]}:{parent.get(kind)}"
    return str(kind or "")


class NotionSync:
    """One run's reader: search down to the window, then each page's blocks, into documents;
    then the trash, into tombstones."""

    def __init__(self, client: NotionClient, connection_id: str, max_workers: int = 4):
        self.client = client
        self.connection_id = connection_id
        self.max_workers = max_workers
        self._stop = threading.Event()

    def run(
        self, window: SyncWindow, high_water_mark: float | None, now: float | None = None
    ) -> NotionSyncResult:
        bounds = window.bounds(high_water_mark, INCREMENTAL_OVERLAP_S, now)
        result = NotionSyncResult(documents=[], high_water_mark=bounds.upper, mode=bounds.mode)
        pages = self._pages_between(bounds.lower, bounds.upper, result)
        if pages:
            self._read_into(pages, bounds.now, result)
        self._trashed_since(bounds.lower, result)
        # A page may show twice (trashed while read, then in the trash): its latest tombstone.
        _, result.tombstones = settle([], result.tombstones)
        result.pages_vanished = sum(t.reason == MISSING_REASON for t in result.tombstones)
        result.pages_trashed = len(result.tombstones) - result.pages_vanished
        return result

    def _pages_between(self, lower: float, upper: float, result: NotionSyncResult) -> list[dict]:
        """Pages edited in [lower, upper): search newest first, stop below `lower`."""
        found: dict[str, dict] = {}
        for page in self.client.search_pages():
            result.pages_listed += 1
            if not is_page(page):
                continue
            edited = edited_at(page)
            if edited < lower:
                break
            if self._tombstoned(page, edited, result):
                continue
            if edited >= upper:
                result.pages_newer_than_window += 1
                continue
            found.setdefault(page["id"], page)
        return list(found.values())

    def _trashed_since(self, lower: float, result: NotionSyncResult) -> None:
        """The trash, newest edit first, down to `lower`: every page in it is a tombstone.
        A refused trash search loses only this signal, never the run."""
        try:
            for page in self.client.search_pages(in_trash=True):
                if not is_page(page):
                    continue
                edited = edited_at(page)
                if edited < lower:
                    break
                self._tombstoned(page, edited, result)
        except NotionRequestRefused as exc:
            log.warning(f"{exc}: trashed pages are left to the daily reconciliation")
            result.trash_search_refused = 1

    def _tombstoned(self, page: dict, edited: float, result: NotionSyncResult) -> bool:
        """A tombstone for a page in the trash (True); False for a live page."""
        reason = trash_signal(page)
        if reason is None:
            return False
        tomb = Tombstone(doc_id(self.connection_id, page["id"]), reason, edited)
        result.tombstones.append(tomb)
        return True

    def _read_into(self, pages: list[dict], now: float, result: NotionSyncResult) -> None:
        users = self.client.user_names()
        result.user_cache_size = len(users)
        for page, read in zip(pages, self._read_pages(pages, now), strict=True):
            if isinstance(read, Tombstone):
                result.tombstones.append(read)
            elif read is None:
                result.pages_changed_mid_read += 1
            else:
                result.blocks_read += read.blocks
                result.blocks_skipped += read.skipped
                result.documents.append(self._document(page, read, users))

    def _read_pages(self, pages: list[dict], now: float) -> list[_Read]:
        """Pages read in parallel; once one fails for good the others stop calling the API."""
        self._stop.clear()
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            futures = [pool.submit(self._read_page, page, now) for page in pages]
        errors = [f.exception() for f in futures if f.exception() is not None]
        first = next((e for e in errors if not isinstance(e, _Stopped)), None)
        if first is not None:
            raise first
        return [f.result() for f in futures]

    def _read_page(self, page: dict, now: float) -> _Read:
        try:
            return self._read_or_recheck(page["id"], now)
        except BaseException:
            self._stop.set()
            raise

    def _read_or_recheck(self, page_id: str, now: float) -> _Read:
        """The page's text, or what a 404 on one of its reads means (see `_recheck`)."""
        read = _PageRead([])
        try:
            self._read_blocks(page_id, 0, read)
        except NotionObjectMissing:
            return self._recheck(page_id, now)
        return read

    def _recheck(self, page_id: str, now: float) -> Tombstone | None:
        """A read of the page answered 404: the page itself says whether it is gone (deleted
        or unshared: a tombstone seen `now`), in the trash (a tombstone at its last edit) or
        alive, a block removed under the reader (None: its edit puts it in a later run)."""
        try:
            page = self.client.retrieve_page(page_id)
        except NotionObjectMissing:
            return Tombstone(doc_id(self.connection_id, page_id), MISSING_REASON, now)
        reason = trash_signal(page)
        if reason is None:
            return None
        return Tombstone(doc_id(self.connection_id, page_id), reason, edited_at(page))

    def _read_blocks(self, block_id: str, depth: int, read: _PageRead) -> None:
        if self._stop.is_set():
            raise _Stopped
        number = 0
        for block in self.client.block_children(block_id):
            if not isinstance(block, dict):
                raise MalformedResponseError(f"notion block of {block_id} is not an object")
            read.blocks += 1
            kind = block.get("type")
            number = number + 1 if kind == "numbered_list_item" else 0
            line = block_line(block, number)
            if line is None:
                read.skipped += 1
            elif line:
                read.lines.append("  " * depth + line)
            if block.get("has_children") and kind not in SUBDOCUMENT_TYPES:
                self._read_blocks(block["id"], depth + 1, read)

    def _document(self, page: dict, read: _PageRead, users: dict[str, str]) -> Document:
        page_id = page["id"]
        title = page_title(page) or "Untitled"
        created_by = (page.get("created_by") or {}).get("id", "")
        edited_by = (page.get("last_edited_by") or {}).get("id", "")
        author = users.get(created_by, created_by)
        edited = edited_at(page)
        created_time = str(page.get("created_time") or page["last_edited_time"])
        url = str(page.get("url") or f"https://www.notion.so/{page_id.replace('-', '')}")
        parent = parent_label(page.get("parent"))
        return Document(
            doc_id=doc_id(self.connection_id, page_id),
            source=SOURCE,
            connection=self.connection_id,
            title=title,
            text="\n".join(read.lines) or title,
            url=url,
            author=author,
            created_at=created_time,
            updated_at=str(page["last_edited_time"]),
            timestamp_epoch=edited,
            access=(ACCESS_ALL,),
            metadata={
                "page_id": page_id,
                "title": title,
                "url": url,
                "created_time": created_time,
                "last_edited_time": str(page["last_edited_time"]),
                "parent": parent,
                "timestamp_epoch": edited,
                "created_by": author,
                "last_edited_by": users.get(edited_by, edited_by),
                "blocks": read.blocks,
            },
        )
