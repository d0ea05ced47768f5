"""A MySQL-protocol TCP proxy in front of the sandbox's Genius database, obeying the Knobs.

Why a proxy: the Genius source speaks SQL to MariaDB, not HTTP, so the knobs middleware of the
HTTP emulators cannot see it. The proxy copies bytes both ways and reads only the client's
command packets: a COM_QUERY (packet sequence 0, command byte 0x03) is one "request", its
route the table it reads (`... FROM <table>`; any other statement is route "session"). It
counts `knobs.calls[route]`, adds the knobs' latency and answers the knobs' faults the way
MariaDB and the network fail:

    "429" (and the knobs' rate limits)  ->  error packet 1040 Too many connections
    "401"                               ->  error packet 1045 Access denied
    "400", "405", "410", "422"          ->  error packet 1064 SQL syntax error
    "404"                               ->  error packet 1146 table doesn't exist
    "500", "502", "503", "malformed", "html"  ->  the connection reset (RST): client 2013
    "timeout"                           ->  the query held `knobs.timeout_s`, then served

An error packet leaves the session usable, as MariaDB's own errors do. Before the first
connection is forwarded the database is created and seeded (db.GeniusDatabase.ensure_seeded).
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
from typing import Any

from sync_pipelines_sandbox.genius.data import TABLES
from sync_pipelines_sandbox.genius.db import GeniusDatabase
from sync_pipelines_sandbox.knobs import Knobs

HOST = "127.0.0.1"
COM_QUERY = 0x03
SESSION_ROUTE = "session"
_FROM = re.compile(r"\bFROM\s+`?([A-Za-z_][A-Za-z0-9_]*)`?", re.IGNORECASE)
RESET = "reset"
# fault kind -> (MariaDB error number, SQLSTATE, message), or RESET
ANSWERS: dict[str, tuple[int, str, str] | str] = {
    "429": (1040, "08004", "Too many connections"),
    "401": (1045, "28000", "Access denied for user (using password: YES)"),
    "400": (1064, "42000", "You have an error in your SQL syntax; check the manual"),
    "404": (1146, "42S02", "Table doesn't exist"),
    **dict.fromkeys(("405", "410", "422"), (1064, "42000", "You have an error in your SQL syntax")),
    **dict.fromkeys(("500", "502", "503", "malformed", "html"), RESET),
}


def route_of(query: str) -> str:
    """The knob route of a statement: the known table it reads, else "session"."""
    match = _FROM.search(query)
    if match and match.group(1).lower() in TABLES:
        return match.group(1).lower()
    return SESSION_ROUTE


def error_packet(errno: int, sqlstate: str, message: str, seq: int = 1) -> bytes:
    payload = b"\xff" + struct.pack("<H", errno) + b"#" + sqlstate.encode() + message.encode()
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (linger 0), as a server that drops the connection does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class MysqlProxy:
    """Listens on 127.0.0.1:`port` (0: a free one) in its own thread and event loop."""

    def __init__(self, db: GeniusDatabase, knobs: Knobs, port: int = 0):
        self.db = db
        self.knobs = knobs
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"genius-proxy-{self.port}", daemon=True
        )
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> MysqlProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving, cut every open session, then drop the sandbox's database."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()
        self.sock.close()
        self.db.drop()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._track, sock=self.sock)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client left, or the proxy is stopping
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.db.ensure_seeded)
        up_reader, up_writer = await asyncio.open_connection(self.db.host, self.db.port)
        down = asyncio.create_task(_pipe(up_reader, writer))
        try:
            await self._commands(reader, writer, up_writer)
        finally:
            down.cancel()
            up_writer.close()

    async def _commands(self, reader: Any, writer: Any, up_writer: Any) -> None:
        """Client -> server, packet by packet; COM_QUERY packets meet the knobs."""
        while True:
            header = await reader.readexactly(4)
            payload = await reader.readexactly(int.from_bytes(header[:3], "little"))
            if header[3] == 0 and payload[:1] == bytes([COM_QUERY]):
                route = route_of(payload[1:].decode("utf-8", "replace"))
                fault = self.knobs.admit(route)
                if self.knobs.latency_ms > 0:
                    await asyncio.sleep(self.knobs.latency_ms / 1000)
                if fault is not None and fault.kind == "timeout":
                    await asyncio.sleep(self.knobs.timeout_s)
                elif fault is not None:
                    answer = ANSWERS.get(fault.kind, RESET)
                    if answer == RESET:
                        _abort(writer)
                        return
                    writer.write(error_packet(*answer))
                    await writer.drain()
                    continue
            up_writer.write(header + payload)
            await up_writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Server -> client, byte for byte; the client's side closes when the server's does."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if not writer.is_closing():
            writer.close()
