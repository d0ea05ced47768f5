"""Latency, rate limits and faults shared by every emulator, changeable while they run.

`Knobs` decides, per request and per route (the vendor's method name: "conversations.history",
"embeddings", "upsert", ...), whether the request passes; `KnobsMiddleware` applies that decision
in front of each emulator app, answering in the vendor's own error shape (or as a gateway in
front of the vendor would: an HTML page). Benchmarks read the per-route counters to report how
many calls and 429s a sync cost.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FAULT_KINDS = ("500", "503", "timeout", "malformed")
# Injected only, never drawn at random: what a gateway in front of the vendor answers (a 200
# HTML login page, a 502 HTML error page) and 4xx answers that will not change on retry.
GATEWAY_KINDS = ("html", "502")
PERMANENT_KINDS = ("400", "404", "405", "410", "422")
INJECT_KINDS = ("429", "401") + FAULT_KINDS + GATEWAY_KINDS + PERMANENT_KINDS
_LOGIN_PAGE = b"<!doctype html><html><head><title>Sign in</title></head><body>Please sign in"
_GATEWAY_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway"
WINDOW_S = 60.0


@dataclass(frozen=True)
class Fault:
    kind: str  # one of INJECT_KINDS
    retry_after: int = 1


class Knobs:
    """Runtime-mutable knobs; every decision is taken under one lock so threads may share it.

    latency_ms: added to every request. rate_limits: route -> max requests per sliding minute;
    default_rate_limit: the same for every route not named there (None = unlimited).
    fault_rate: probability (0..1) of a random fault drawn from fault_kinds. timeout_s: how long a
    "timeout" fault stalls before answering. seed: seeds the fault RNG (reseeds when set).
    """

    def __init__(
        self,
        latency_ms: float = 0.0,
        rate_limits: dict[str, int] | None = None,
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        timeout_s: float = 30.0,
        seed: int = 0,
        default_rate_limit: int | None = None,
    ):
        self.latency_ms = latency_ms
        self.rate_limits: dict[str, int] = dict(rate_limits or {})
        self.default_rate_limit = default_rate_limit
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds)
        self.timeout_s = timeout_s
        self.calls: Counter[str] = Counter()
        self.count_429: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._injected: dict[str, deque[Fault | None]] = {}  # None: let one through
        self._seed = seed
        self._rng = random.Random(seed)
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {FAULT_KINDS}")

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        with self._lock:
            self._seed = value
            self._rng = random.Random(value)

    def inject(
        self, route: str, kind: str, count: int = 1, retry_after: int = 1, after: int = 0
    ) -> None:
        """Make the next `count` requests to `route` fail as `kind` (one of INJECT_KINDS),
        once `after` more requests were served (e.g. after=1: the listing's second page)."""
        if kind not in INJECT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use {INJECT_KINDS}")
        with self._lock:
            queue = self._injected.setdefault(route, deque())
            queue.extend([None] * after)
            queue.extend(Fault(kind, max(1, int(retry_after))) for _ in range(count))

    def reset(self) -> None:
        """Forget counters, rate-limit windows and pending injections (the settings stay)."""
        with self._lock:
            self.calls.clear()
            self.count_429.clear()
            self._windows.clear()
            self._injected.clear()

    def admit(self, route: str) -> Fault | None:
        """Count one request to `route` and say how it must fail, or None to serve it.

        Injected faults come first, then the rate limit (only served requests fill the window,
        as with the vendors), then the random fault draw.
        """
        with self._lock:
            self.calls[route] += 1
            fault = self._next_injected(route) or self._rate_limited(route)
            if fault is None and self.fault_rate > 0 and self.fault_kinds:
                if self._rng.random() < self.fault_rate:
                    fault = Fault(self._rng.choice(self.fault_kinds))
            if fault is not None and fault.kind == "429":
                self.count_429[route] += 1
            return fault

    def _next_injected(self, route: str) -> Fault | None:
        """The next injected fault, or None (nothing injected, or a request let through)."""
        queue = self._injected.get(route)
        return queue.popleft() if queue else None

    def _rate_limited(self, route: str) -> Fault | None:
        limit = self.rate_limits.get(route, self.default_rate_limit)
        if limit is None:
            return None
        now = time.monotonic()
        window = self._windows.setdefault(route, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        if len(window) >= limit:
            wait = window[0] + WINDOW_S - now if window else WINDOW_S
            return Fault("429", max(1, math.ceil(wait)))
        window.append(now)
        return None


# kind ("429", "401", "500", "503") -> (HTTP status, JSON body) in the vendor's shape
FaultBody = Callable[[str], tuple[int, dict]]
# ASGI scope -> knob route name
RouteOf = Callable[[Scope], str]


class KnobsMiddleware:
    """ASGI middleware applying `Knobs` to one emulator: latency, then the admitted fault."""

    def __init__(self, app: ASGIApp, knobs: Knobs, route_of: RouteOf, fault_body: FaultBody):
        self.app = app
        self.knobs = knobs
        self.route_of = route_of
        self.fault_body = fault_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self.knobs.admit(self.route_of(scope))
        if self.knobs.latency_ms > 0:
            await asyncio.sleep(self.knobs.latency_ms / 1000)
        if fault is None:
            await self.app(scope, receive, send)
        elif fault.kind == "timeout":
            # stall, then answer: the client gives up first, or gets the answer late
            await asyncio.sleep(self.knobs.timeout_s)
            await self.app(scope, receive, send)
        elif fault.kind == "malformed":
            await self._truncated(scope, receive, send)
        elif fault.kind in GATEWAY_KINDS:
            status, page = (200, _LOGIN_PAGE) if fault.kind == "html" else (502, _GATEWAY_PAGE)
            await Response(page + b"</body></html>", status, media_type="text/html")(
                scope, receive, send
            )
        elif fault.kind in PERMANENT_KINDS:
            message = f"injected HTTP {fault.kind}"
            body = {"error": message, "message": message}
            await JSONResponse(body, status_code=int(fault.kind))(scope, receive, send)
        else:
            status, body = self.fault_body(fault.kind)
            headers = {"Retry-After": str(fault.retry_after)} if fault.kind == "429" else None
            await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)

    async def _truncated(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the real answer cut in half, with status 200: a body no JSON parser accepts."""
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        await Response(body[: len(body) // 2] or b"{", 200, media_type="application/json")(
            scope, receive, send
        )
