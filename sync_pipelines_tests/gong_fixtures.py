"""What the Gong tests share: the `acme` connection on the emulator, its calls, day windows,
a scripted HTTP layer, and the harness set up for the Gong asset.

A test module imports the fixtures `connection` and `data` as `fixture_connection` and
`fixture_data` (`# noqa: F401`): pytest finds them by their fixture names, and a test's
`connection` argument does not shadow an imported name.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sync_pipelines_sandbox.company import Person
from sync_pipelines_sandbox.gong.data import (
    SANDBOX_GONG_ACCESS_KEY,
    SANDBOX_GONG_ACCESS_KEY_SECRET,
    GongData,
)

from sync_pipelines import resilience
from sync_pipelines.connections import Connection
from sync_pipelines.partitions import SyncWindow
from sync_pipelines.sources.gong.client import GongClient, GongResource
from sync_pipelines_tests.conftest import day, today

KEY_ENV, SECRET_ENV = "TEST_GONG_KEY", "TEST_GONG_SECRET"
SCOPE = "gong:acme:"  # the scope of the `acme` connection's listings


def use_credentials(monkeypatch) -> None:
    """The sandbox's key and secret in the variables the connection names."""
    monkeypatch.setenv(KEY_ENV, SANDBOX_GONG_ACCESS_KEY)
    monkeypatch.setenv(SECRET_ENV, SANDBOX_GONG_ACCESS_KEY_SECRET)


@pytest.fixture(name="connection")
def fixture_connection(sandbox, monkeypatch) -> Connection:
    use_credentials(monkeypatch)
    return Connection(
        "acme", "gong", credentials={"access_key": KEY_ENV, "access_key_secret": SECRET_ENV},
        base_url=sandbox.urls["gong"],
    )  # fmt: skip


@pytest.fixture(name="data")
def fixture_data(sandbox) -> GongData:
    return GongData.of(sandbox.company)


def use_gong(harness, sandbox, monkeypatch, page_size: int = 20, options: str = ""):
    """The harness with one `acme` Gong connection on the emulator, unpaced; `options` is the
    connection's options as YAML flow (e.g. "{access: all}")."""
    use_credentials(monkeypatch)
    harness.registry.write_text(
        "connections:\n  - id: acme\n    source: gong\n"
        f"    base_url: {sandbox.urls['gong']}\n"
        f"    credentials: {{access_key: {KEY_ENV}, access_key_secret: {SECRET_ENV}}}\n"
        + (f"    options: {options}\n" if options else "")
    )
    harness.extra_resources = {"gong": GongResource(rate_per_s=0, page_size=page_size)}
    return harness


def client_for(connection, **settings) -> GongClient:
    """An unpaced client of the connection (`settings`: GongResource's)."""
    return GongResource(rate_per_s=0, timeout_s=10, **settings).client_for(connection)


def window(first: int, last: int) -> SyncWindow:
    """The `acme` window of the days `first` to `last` (offsets from today, inclusive)."""
    days = tuple(day(o) for o in range(first, last + 1))
    return SyncWindow("acme", today() + timedelta(days=first),
                      today() + timedelta(days=last + 1), days)  # fmt: skip


def people(sandbox, n: int) -> list[Person]:
    """The company's first `n` humans (bots never join a call)."""
    return [p for p in sandbox.company.people if not p.is_bot][:n]


class Scripted:
    """The HTTP layer of a GongClient answering from scripted bodies, checked as the real one
    checks them (`check`), each malformed body retried as the shared client does."""

    label = "gong connection 'acme'"

    def __init__(self, *bodies):
        self.bodies = list(bodies)
        self.stats = resilience.CallStats()

    def request(self, method, path, check=None, **kwargs):
        body = self.bodies.pop(0)
        check(body)
        return body
