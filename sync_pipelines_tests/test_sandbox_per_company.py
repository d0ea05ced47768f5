"""The emulators' per-company store (sandbox per_company.py): one value per company object,
built once even when threads ask at the same moment, gone with its company, replaceable."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.per_company import PerCompany


class Store:
    def __init__(self, company: Company, size: int = 0):
        self.company_seed = company.seed
        self.size = size


def test_one_value_per_company_built_once_under_concurrent_requests():
    stores: PerCompany[Store] = PerCompany()
    company, other = Company(), Company()
    builds = []
    start = threading.Barrier(8)

    def build(c: Company) -> Store:
        builds.append(c)
        time.sleep(0.01)  # a slow build: without the lock, every thread would build its own
        return Store(c)

    def ask(_: int) -> Store:
        start.wait()
        return stores.get(company, build)

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(ask, range(8)))
    assert len({id(s) for s in got}) == 1 and builds == [company]
    assert stores.get(other, build) is not got[0] and builds == [company, other]


def test_a_dropped_company_takes_its_value_with_it():
    stores: PerCompany[Store] = PerCompany()
    company = Company()
    value = weakref.ref(stores.get(company, Store))
    assert value() is stores.get(company, Store)
    del company
    gc.collect()
    assert value() is None


def test_rebuild_replaces_the_shared_value():
    stores: PerCompany[Store] = PerCompany()
    company = Company()
    first = stores.get(company, Store)
    sized = stores.rebuild(company, lambda c: Store(c, size=200))
    assert sized is not first and stores.get(company, Store) is sized and sized.size == 200
