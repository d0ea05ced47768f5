"""Run every emulator on 127.0.0.1, each its own uvicorn server in a background thread.

    with Sandbox() as sandbox:
        client = AcmeClient(token=SANDBOX_ACME_TOKEN, base_url=sandbox.urls["acme"])

One knobs middleware wraps every app, so latency, rate limits and faults behave the same for
all vendors. A source's emulator is found by its folder (`sync_pipelines_sandbox/<source>/`,
exporting `EMULATOR`); nothing here lists the vendors.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import uvicorn

import sync_pipelines_sandbox as sandbox_package
from sync_pipelines_sandbox import openai_api, pinecone_api
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.knobs import Knobs, KnobsMiddleware

# The services the vector index talks to; every source's emulator is discovered (below).
INDEX_EMULATORS: tuple[Emulator, ...] = (openai_api.EMULATOR, pinecone_api.EMULATOR)


@functools.cache
def emulators() -> tuple[Emulator, ...]:
    """The index services plus every subpackage of the sandbox exporting an `EMULATOR` (one
    per source, named like it), in port order."""
    found = list(INDEX_EMULATORS)
    for info in pkgutil.iter_modules(sandbox_package.__path__):
        if info.ispkg:
            module = importlib.import_module(f"{sandbox_package.__name__}.{info.name}")
            emulator = getattr(module, "EMULATOR", None)
            if isinstance(emulator, Emulator):
                if emulator.name != info.name:
                    raise ValueError(
                        f"sandbox/{info.name} exports an emulator named {emulator.name!r}: "
                        "the folder and the emulator must have the same name"
                    )
                found.append(emulator)
    offsets = [e.port_offset for e in found]
    if len(set(offsets)) != len(offsets):
        raise ValueError(f"two emulators share a port offset: {sorted(offsets)}")
    return tuple(sorted(found, key=lambda e: e.port_offset))


HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 5.0


def fixed_ports(base: int) -> dict[str, int]:
    """Ports for a long-running sandbox: base + each emulator's offset (8701 for offset 1)."""
    return {emulator.name: base + emulator.port_offset for emulator in emulators()}


class _Server:
    """One emulator app on its own socket, uvicorn event loop and thread."""

    def __init__(self, app: Any, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.sock.listen(128)  # connections queue from now on, even before uvicorn serves
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.sock]},
            name=f"sandbox-{port}",
            daemon=True,
        )

    def start(self) -> None:
        self.thread.start()

    def wait_started(self, deadline: float) -> None:
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on port {self.port} did not start")
            time.sleep(0.005)

    def signal(self) -> None:
        self.server.should_exit = True

    def stop(self) -> None:
        self.signal()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.sock.close()


class _SelfServed:
    """A non-HTTP emulator (Emulator.serve), started at once, behind the _Server interface."""

    def __init__(self, emulator: Emulator, state: Any, knobs: Knobs, port: int):
        self.served = emulator.serve(state, knobs, port)
        self.port = self.served.port
        self.url = self.served.url

    def start(self) -> None:
        pass

    def wait_started(self, deadline: float) -> None:
        pass

    def signal(self) -> None:
        pass

    def stop(self) -> None:
        self.served.stop()


class Sandbox:
    """All emulators, seeded with one company and driven by one set of knobs.

    Attributes: company, knobs, `states`/`urls` by emulator name, the same states as attributes
    (`sandbox.acme`, `sandbox.openai`, `sandbox.pinecone`) and the client URLs below.
    `ports` maps emulator names to fixed ports; missing names get a free port.
    """

    def __init__(
        self,
        company: Company | None = None,
        knobs: Knobs | None = None,
        ports: Mapping[str, int] | None = None,
        pinecone_dimension: int = 384,
    ):
        self.company = company or Company.generate()
        self.knobs = knobs or Knobs()
        self.ports = dict(ports or {})
        options = {"pinecone_dimension": pinecone_dimension}
        self.states: dict[str, Any] = {
            e.name: e.make_state(self.company, options) for e in emulators()
        }
        self.urls: dict[str, str] = {}
        self._servers: list[_Server | _SelfServed] = []

    def __getattr__(self, name: str) -> Any:
        states = self.__dict__.get("states", {})
        if name in states:
            return states[name]
        raise AttributeError(name)

    @property
    def openai_base_url(self) -> str:
        return self.urls["openai"]

    @property
    def pinecone_host(self) -> str:
        return self.urls["pinecone"]

    def env(self) -> dict[str, str]:
        """Environment variables pointing a client at every emulator."""
        out: dict[str, str] = {}
        for emulator in emulators():
            out.update(emulator.env(self.urls[emulator.name], self.states[emulator.name]))
        return out

    def start(self) -> Sandbox:
        """Bind every port, start the servers, return once all of them serve."""
        try:
            for emulator in emulators():
                port = self.ports.get(emulator.name, 0)
                if emulator.serve is not None:
                    state = self.states[emulator.name]
                    server = _SelfServed(emulator, state, self.knobs, port)
                else:
                    server = _Server(self._app(emulator), port)
                self._servers.append(server)
                self.urls[emulator.name] = (
                    server.url
                    if isinstance(server, _SelfServed)
                    else emulator.client_url(f"http://{HOST}:{server.port}")
                )
                server.start()
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            for server in self._servers:
                server.wait_started(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _app(self, emulator: Emulator) -> KnobsMiddleware:
        app = emulator.make_app(self.states[emulator.name])
        return KnobsMiddleware(app, self.knobs, emulator.route_of, emulator.fault_body)

    def stop(self) -> None:
        for server in self._servers:  # signal all first: they wind down in parallel
            server.signal()
        for server in self._servers:
            server.stop()
        self._servers.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
