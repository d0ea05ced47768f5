"""What one vendor emulator registers with the sandbox server.

Adding a vendor means writing one folder `sync_pipelines_sandbox/<source>/` whose `__init__.py`
exports an `EMULATOR`; the server discovers it and gives it a port, the knobs middleware and its
entry in `Sandbox.env()`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import ASGIApp

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.knobs import FaultBody, Knobs, RouteOf


class Served(Protocol):
    """A running non-HTTP emulator (e.g. a database behind a proxy): its port, the URL a
    client is configured with (Sandbox.urls), and stop()."""

    port: int
    url: str

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Emulator:
    name: str  # also the Sandbox attribute holding its state: sandbox.acme, sandbox.pinecone
    port_offset: int  # port = --port-base + offset when ports are fixed
    make_state: Callable[[Company, Mapping[str, Any]], Any]  # (company, Sandbox options) -> state
    make_app: Callable[[Any], ASGIApp]  # state -> app, without the knobs middleware
    route_of: RouteOf  # request -> knob route name
    fault_body: FaultBody  # "429" | "401" | "500" | "503" -> (status, body) as the vendor sends
    client_url: Callable[[str], str]  # "http://127.0.0.1:P" -> the URL a client is configured with
    env: Callable[[str, Any], dict[str, str]]  # (client_url, state) -> env vars for a client
    # A non-HTTP emulator serves itself: (state, knobs, port or 0) -> a started Served, which
    # applies the knobs itself; make_app, route_of, fault_body and client_url are then unused.
    serve: Callable[[Any, Knobs, int], Served] | None = None
