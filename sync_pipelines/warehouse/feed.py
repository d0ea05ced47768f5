"""Pages read by a background thread while the loader loads the ones before them.

A CRM run is paced by the vendor's API; dlt's extract, normalize and load cost CPU per row.
Done one after the other (every page read, then everything loaded) the run takes the sum of
both; with the reading in a thread ahead of the loader it takes about the larger of the two.
The thread holds at most `limit` rows (whole pages) that the loader has not taken, so memory
stays flat in the number of records; an error of the reading is raised where the loader
takes (after the pages read before it), as the source raised it: its 401 stays permanent,
its reset transient.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Self

Page = Sequence[Any]
Batch = dict[str, list[Page]]  # table name -> its pages, in the order they were read


class PageFeed:
    """The pages of `sources` ((table name, pages)), read ahead by one thread."""

    def __init__(self, sources: Iterable[tuple[str, Iterable[Page]]], limit: int):
        if limit < 1:
            raise ValueError(f"a page feed holds at least one row, got limit={limit}")
        self._sources, self._limit = sources, limit
        self._pages: deque[tuple[str, Page]] = deque()
        self._held = 0
        self._ended = self._stopped = False
        self._error: BaseException | None = None
        self.ended_at = 0.0  # time.monotonic() when the reading ended (0: not yet)
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="crm-page-feed", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop reading (the thread ends at its next page) and wait for it a while."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _read(self) -> None:
        """A page of each table in turn (as dlt's round robin did): a source whose tables
        are read by threads of their own (one reader per object type) keeps every one of them busy."""
        turns = deque((name, iter(pages)) for name, pages in self._sources)
        try:
            while turns:
                name, iterator = turns.popleft()
                page = next(iterator, _END)
                if page is _END:
                    _close(iterator)
                    continue
                turns.append((name, iterator))
                if not self._put(name, page):
                    return
        except BaseException as exc:  # noqa: BLE001 - raised in the loader's thread by take()
            with self._changed:
                self._error = exc
        finally:
            for _, iterator in turns:
                _close(iterator)  # a generator's own cleanup runs in the thread that ran it
            with self._changed:
                self._ended = True
                self.ended_at = time.monotonic()
                self._changed.notify_all()

    def _put(self, name: str, page: Page) -> bool:
        with self._changed:
            while self._held >= self._limit and not self._stopped:
                self._changed.wait()
            if self._stopped:
                return False
            self._pages.append((name, page))
            self._held += len(page)
            self._changed.notify_all()
            return True

    def take(self, at_least: int) -> Batch | None:
        """Wait until `at_least` rows are held (or the reading ended), then answer every
        page held; None once everything was taken. The pages read before an error are
        answered first (loading them is harmless: merged again by the next run), then the
        error is raised."""
        with self._changed:
            while not self._ended and self._held < at_least:
                self._changed.wait()
            if not self._pages:
                if self._error is not None:
                    raise self._error
                return None
            batch: Batch = {}
            while self._pages:
                name, page = self._pages.popleft()
                batch.setdefault(name, []).append(page)
            self._held = 0
            self._changed.notify_all()
            return batch


_END = object()


def _close(iterator) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
