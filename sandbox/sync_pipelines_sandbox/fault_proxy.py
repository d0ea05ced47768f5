"""A seeded fault-injecting reverse proxy, placed in front of any emulator (or any HTTP API).

Why: the emulators' knobs fail a request *instead of* serving it. Networks and vendors also
fail *around* a request that was served (the write landed but the client saw a 502; a retried
POST was delivered twice) and below HTTP (a reset connection, a hang). This proxy draws those
per request from a seeded RNG and counts what it fired, so the reliability suite and
`sync-pipelines sandbox --faults RATE --fault-seed N` replay the outside fault-injection review
inside the project.

    with FaultProxy(sandbox.urls["acme"], FaultPlan(rate=0.1), seed=3) as proxy:
        client = AcmeClient(token=..., base_url=proxy.url_for(sandbox.urls["acme"]))
    proxy.fired  # Counter({"503": 4, "twice": 2, ...})

Seeded: the same sequence of requests meets the same faults (requests sent concurrently may
meet them in another order). It speaks HTTP/1.1 with keep-alive (h11) on a plain asyncio
server in its own thread, because a reset or a hang must act on the socket itself, which an
ASGI app never sees. The Host header is forwarded as the client sent it, so links an emulator
builds (a next-page link, a record's `self` URL) point back at the proxy.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import urlsplit

import h11
import httpx

HOST = "127.0.0.1"
FAULT_KINDS = (
    "500",
    "502",
    "503",
    "504",  # answered at once, nothing forwarded
    "429",  # Retry-After in whole seconds, nothing forwarded
    "html",  # 200 with an HTML page (a captive portal or a proxy's error page), nothing forwarded
    "truncated",  # forwarded, then the real answer cut in half, status 200
    "reset",  # the socket closed with RST before any byte of the answer
    "hang",  # no answer for `hang_s`, then the socket dropped
    "landed_502",  # forwarded (the write landed), then 502 to the client
    "twice",  # forwarded twice, the second answer returned
)
MAX_HANG_S = 600.0
UPSTREAM_TIMEOUT_S = 120.0
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",  # set again for the body actually sent
    "content-encoding",
    "accept-encoding",  # keep bodies plain so "truncated" cuts JSON, not gzip
}
_HTML = b"<html><head><title>%d</title></head><body><h1>%d %s</h1><hr>fault-proxy</body></html>"


@dataclass(frozen=True)
class FaultPlan:
    """How often and which faults: `rate` of requests (0..1) get a fault, drawn by `weights`.

    `retry_after_s` bounds the Retry-After of a 429 (drawn from 1..retry_after_s); `hang_s` is
    how long a hang holds the socket: set it above the client's timeout to exercise that path.
    """

    rate: float = 0.1
    weights: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 1.0))
    retry_after_s: int = 1
    hang_s: float = 61.0  # past every client timeout the project sets by default (60 s max)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        unknown = set(self.weights) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {FAULT_KINDS}")
        if any(w < 0 for w in self.weights.values()) or not sum(self.weights.values()) > 0:
            raise ValueError(f"fault weights must be >= 0 with a positive sum, got {self.weights}")
        if not isinstance(self.retry_after_s, int) or self.retry_after_s < 1:
            raise ValueError(f"retry_after_s must be a whole number >= 1, got {self.retry_after_s}")
        if not 0 < self.hang_s <= MAX_HANG_S:
            raise ValueError(f"hang_s must be in (0, {MAX_HANG_S}], got {self.hang_s}")


@dataclass
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


class FaultProxy:
    """One upstream origin behind one local port; a context manager (start/stop)."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None, seed: int | str = 0):
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream must be an http(s) URL, got {upstream!r}")
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.plan = plan or FaultPlan()
        self.port = 0
        self._rng = random.Random(str(seed))  # str seeds hash the same in every process
        self._fired: Counter[str] = Counter()
        self._requests = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url_for(self, upstream_url: str) -> str:
        """`upstream_url` (an emulator's client URL, path and all) through this proxy."""
        parts = urlsplit(upstream_url)
        return self.url + upstream_url[len(f"{parts.scheme}://{parts.netloc}") :]

    @property
    def fired(self) -> Counter[str]:
        with self._lock:
            return Counter(self._fired)

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _open(self) -> None:
        self._client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S)
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        self._server.close()
        for task in list(self._tasks):  # hangs and open keep-alive connections
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    def _draw(self) -> tuple[str | None, int]:
        """The fault for the next request (None: pass through) and a 429's Retry-After."""
        with self._lock:
            self._requests += 1
            if self._rng.random() >= self.plan.rate:
                return None, 0
            kinds = list(self.plan.weights)
            kind = self._rng.choices(kinds, [self.plan.weights[k] for k in kinds])[0]
            self._fired[kind] += 1
            return kind, self._rng.randint(1, self.plan.retry_after_s)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            while (request := await _read_request(conn, reader)) is not None:
                kind, retry_after = self._draw()
                if kind in ("reset", "hang"):
                    if kind == "hang":
                        await asyncio.sleep(self.plan.hang_s)
                    _abort(writer)
                    return
                status, headers, body = await self._answer(request, kind, retry_after)
                headers.append(("content-length", str(len(body))))
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
                writer.write(conn.send(h11.Data(data=body)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(
        self, request: _Request, kind: str | None, retry_after: int
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if kind in ("500", "502", "503", "504"):
            return _html(int(kind))
        if kind == "html":
            return _html(200, "Please sign in to continue")
        if kind == "429":
            body = b'{"ok":false,"error":"ratelimited","message":"rate limited (fault proxy)"}'
            return (
                429,
                [("retry-after", str(retry_after)), ("content-type", "application/json")],
                body,
            )
        status, headers, body = await self._forward(request)
        if kind == "twice":
            status, headers, body = await self._forward(request)
        elif kind == "landed_502":
            return _html(502)
        elif kind == "truncated":
            return 200, [("content-type", "application/json")], body[: len(body) // 2] or b"{"
        return status, headers, body

    async def _forward(self, request: _Request) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(k, v) for k, v in request.headers if k not in _HOP_BY_HOP]
        try:
            response = await self._client.request(
                request.method,
                self.upstream + request.target,
                headers=headers,
                content=request.body,
            )
        except httpx.HTTPError as exc:  # the upstream itself is down: a real gateway says 502
            return _html(502, f"upstream unreachable: {type(exc).__name__}")
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
        return response.status_code, kept, response.content


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> _Request | None:
    """The next whole request on a keep-alive connection, or None once the client closed it."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            headers = [(k.decode().lower(), v.decode("latin-1")) for k, v in head.headers]
            return _Request(head.method.decode(), head.target.decode(), headers, bytes(body))
        else:  # ConnectionClosed, PAUSED after a close
            return None


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (linger 0), as a crashed or reset peer does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _html(status: int, reason: str = "") -> tuple[int, list[tuple[str, str]], bytes]:
    body = _HTML % (status, status, (reason or HTTPStatus(status).phrase).encode())
    return status, [("content-type", "text/html")], body


class FaultProxies:
    """One `FaultProxy` per named upstream, seeded from one seed; a context manager.

    `urls` maps each name to its client URL through the proxy; `fired` sums every proxy's
    faults by kind.
    """

    def __init__(self, urls: Mapping[str, str], plan: FaultPlan | None = None, seed: int = 0):
        self.plan = plan or FaultPlan()
        self.proxies = {
            name: FaultProxy(url, self.plan, seed=f"{seed}:{name}") for name, url in urls.items()
        }
        self._upstream_urls = dict(urls)
        self._stack = ExitStack()

    @classmethod
    def for_sandbox(
        cls, sandbox: Any, plan: FaultPlan | None = None, seed: int = 0, names: Iterable[str] = ()
    ) -> FaultProxies:
        """Proxies in front of a started `Sandbox`'s HTTP emulators (all of them by default;
        a database emulator has its own fault proxy)."""
        wanted = [
            n for n in (list(names) or list(sandbox.urls)) if sandbox.urls[n].startswith("http")
        ]
        return cls({name: sandbox.urls[name] for name in wanted}, plan, seed)

    @property
    def urls(self) -> dict[str, str]:
        return {n: p.url_for(self._upstream_urls[n]) for n, p in self.proxies.items()}

    @property
    def fired(self) -> Counter[str]:
        return sum((p.fired for p in self.proxies.values()), Counter())

    @property
    def requests(self) -> int:
        return sum(p.requests for p in self.proxies.values())

    def sandbox_env(self, sandbox: Any) -> dict[str, str]:
        """`sandbox.env()` with every proxied emulator reached through its proxy."""
        from sync_pipelines_sandbox.server import emulators

        urls = {**sandbox.urls, **self.urls}
        out: dict[str, str] = {}
        for emulator in emulators():
            out.update(emulator.env(urls[emulator.name], sandbox.states[emulator.name]))
        return out

    def __enter__(self) -> Self:
        try:
            for proxy in self.proxies.values():
                self._stack.enter_context(proxy)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
