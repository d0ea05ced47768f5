"""Reading ahead in background threads, so HubSpot's two rate budgets are spent in parallel.

The search endpoints have their own budget (5/s) beside the general one (10/s). Read one
after the other, a table's properties, association and archived-list calls would leave the
search budget idle while they run (and the other way round). So every table of a run is read
by its own thread as soon as the loader asks for the first one, each a bounded queue ahead of
the loader (a few batches: memory stays flat in the number of records), and within a table
the next search pages are fetched while a batch's associations are read. Both paces are
shared by the connection's threads, so the vendor's limits hold; an error is raised where the
loader reads, and a closed client stops every reader.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

AHEAD = 2  # items a reader holds ready before it waits for the consumer


class Prefetch:
    """The items of `source`, read by a thread up to `depth` ahead of the consumer."""

    def __init__(
        self,
        source: Callable[[], Iterable],
        depth: int = AHEAD,
        alive: Callable[[], bool] = lambda: True,
        name: str = "hubspot-reader",
    ):
        self._source, self._alive = source, alive
        self._box: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._started = False

    def start(self) -> Prefetch:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def _put(self, item) -> bool:
        while not self._stop.is_set() and self._alive():
            try:
                self._box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for item in self._source():
                if not self._put(("item", item)):
                    return
            self._put(("done", None))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(("error", exc))

    def __iter__(self) -> Iterator:
        self.start()
        try:
            while True:
                kind, item = self._box.get()
                if kind == "item":
                    yield item
                elif kind == "error":
                    raise item
                else:
                    return
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._started:
            self._thread.join(timeout=5)


def ahead(items: Iterable, alive: Callable[[], bool], depth: int = AHEAD) -> Iterator:
    """`items` read ahead by a thread (e.g. search pages while associations are read)."""
    return iter(Prefetch(lambda: items, depth, alive, "hubspot-search"))


class RunReaders:
    """One Prefetch per table of a run, all started when the first table is asked for
    (after `preflight` succeeded in the loader's thread)."""

    def __init__(
        self,
        sources: dict[str, Callable[[], Iterable]],
        alive: Callable[[], bool],
        preflight: Callable[[], object] = lambda: None,
    ):
        self.preflight = preflight  # one call first, so bad credentials cost one request
        self.readers = {name: Prefetch(src, AHEAD, alive, f"hubspot-{name}") for name, src in sources.items()}  # fmt: skip
        self._lock = threading.Lock()
        self._started = False

    def pages(self, name: str) -> Iterator:
        with self._lock:
            if not self._started:
                self.preflight()
                self._started = True
                for reader in self.readers.values():
                    reader.start()
        return iter(self.readers[name])

    def stop(self) -> None:
        for reader in self.readers.values():
            reader.stop()
