"""The Genius emulator: a Genius-like MariaDB database behind a fault-injecting MySQL proxy.

Not HTTP, so it registers `serve` (emulator.Emulator): the sandbox starts the proxy on the
emulator's port and `Sandbox.urls["genius"]` is the SQLAlchemy URL a client connects with
(`mysql+pymysql://<user>@127.0.0.1:<proxy port>/<database>`, the password apart:
SANDBOX_GENIUS_PASSWORD). The database is seeded on first use and dropped when the sandbox
stops (db.py); the proxy applies the knobs (proxy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.genius.db import SANDBOX_GENIUS_PASSWORD, GeniusDatabase
from sync_pipelines_sandbox.genius.proxy import ANSWERS, MysqlProxy
from sync_pipelines_sandbox.knobs import Knobs


@dataclass
class Served:
    proxy: MysqlProxy
    url: str

    @property
    def port(self) -> int:
        return self.proxy.port

    def stop(self) -> None:
        self.proxy.stop()


def url_of(db: GeniusDatabase, port: int) -> str:
    return f"mysql+pymysql://{db.name}@127.0.0.1:{port}/{db.name}"


def serve(db: GeniusDatabase, knobs: Knobs, port: int) -> Served:
    proxy = MysqlProxy(db, knobs, port).start()
    return Served(proxy, url_of(db, proxy.port))


def _no_app(state: Any) -> Any:
    raise TypeError("the genius emulator speaks the MySQL protocol: it is served by `serve`")


def _fault(kind: str) -> tuple[int, dict]:
    """What the proxy answers for a fault kind: (MariaDB error number or 0 for a reset, body)."""
    answer = ANSWERS.get(kind, "reset")
    if isinstance(answer, str):
        return 0, {"action": answer}
    errno, sqlstate, message = answer
    return errno, {"sqlstate": sqlstate, "message": message}


def make_state(company: Company, options: Any) -> GeniusDatabase:
    return GeniusDatabase(company)


EMULATOR = Emulator(
    name="genius",
    port_offset=14,
    make_state=make_state,
    make_app=_no_app,
    route_of=lambda scope: "session",
    fault_body=_fault,
    client_url=lambda root: root,
    env=lambda url, db: {"GENIUS_BASE_URL": url, "GENIUS_DB_PASSWORD": SANDBOX_GENIUS_PASSWORD},
    serve=serve,
)
