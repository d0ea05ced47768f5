"""One shared value per `Company` object: what an emulator's `of(company)` returns.

Why: an emulator and the tests' ground truth must see the same generated state (and the same
edits) for a company, while a company a test drops must take its state with it. So the value
is built on first use, under one lock (two threads asking at once get one value, built once),
and held by a weak reference to the company.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from sync_pipelines_sandbox.company import Company

T = TypeVar("T")


class PerCompany(Generic[T]):
    """The values of one kind (one emulator's store), one per company object."""

    def __init__(self) -> None:
        self._values: weakref.WeakKeyDictionary[Company, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, company: Company, build: Callable[[Company], T]) -> T:
        """The company's value; `build(company)` makes it the first time."""
        with self._lock:
            value = self._values.get(company)
            if value is None:
                value = self._values[company] = build(company)
            return value

    def rebuild(self, company: Company, build: Callable[[Company], T]) -> T:
        """Replaces the company's value with a new `build(company)` (a benchmark's size)."""
        with self._lock:
            value = self._values[company] = build(company)
            return value
