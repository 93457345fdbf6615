"""FakeSocketMode: a local websocket server that behaves like Slack's Socket Mode endpoint.

A FAKE, for tests: the bot connects to it with slack_sdk's own Socket Mode client, exactly as it
would to Slack. FakeSlack's ``apps.connections.open`` hands out its single-use ``ws://`` URLs (attach
it with ``fake_slack.attach_socket_mode(fake)``). What it does as Slack does:

- greets each connection with ``hello`` (and ``num_connections``);
- sends each envelope to ONE open connection (round robin, as Slack spreads load over an app's
  connections) and records the ack (``{"envelope_id": ...}``) with when and on which connection
  it came;
- ``request_reconnect(conn)`` sends ``{"type": "disconnect", "reason": "refresh_requested"}`` and
  ``drop(conn)`` closes the socket without a word, the two ways Slack ends a connection;
- a ticket opens one connection only; a used or unknown one is refused.

    with FakeSocketMode() as socket_mode:
        fake_slack.attach_socket_mode(socket_mode)
        ... start the bot with SLACK_APP_TOKEN=xapp-... and SLACK_API_URL=fake_slack.url ...
        envelope = socket_mode.send("slash_commands", payload)
        socket_mode.wait_for_ack(envelope)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.support.wait import wait_for


@dataclass
class SocketConnection:
    id: int
    ticket: str
    ws: web.WebSocketResponse
    opened_at: float
    closed_at: float | None = None
    received: list[dict[str, Any]] = field(default_factory=list)  # every message the client sent

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass
class Envelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    connection_id: int
    sent_at: float
    acked_at: float | None = None
    ack_connection_id: int | None = None
    ack_payload: dict[str, Any] | None = None

    @property
    def ack_delay_s(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.sent_at


class FakeSocketMode:
    def __init__(self, app_id: str = "A0FAKEAPP") -> None:
        self.app_id = app_id
        self._lock = threading.RLock()
        self._tickets: set[str] = set()
        self._connections: list[SocketConnection] = []
        self._envelopes: dict[str, Envelope] = {}
        self._ids = itertools.count(1)
        self._next = 0  # round robin over open connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeSocketMode:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/link/", self._handle)
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="FakeSocketMode", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        # Clients may still be connected (a bot stopped after us): close them, or cleanup waits for them.
        for conn in self.connections():
            self._call(conn.ws.close())
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------- what apps.connections.open calls
    def new_url(self) -> str:
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # --------------------------------------------------------------------- queries
    def connections(self, *, open_only: bool = True) -> list[SocketConnection]:
        with self._lock:
            return [c for c in self._connections if c.open or not open_only]

    def envelopes(self) -> list[Envelope]:
        with self._lock:
            return list(self._envelopes.values())

    def wait_for_connections(self, count: int, timeout: float = 30.0) -> list[SocketConnection]:
        return wait_for(
            lambda: (conns := self.connections()) and len(conns) == count and conns,
            timeout=timeout,
            message=lambda: f"expected {count} open connections, have {len(self.connections())}",
        )

    def wait_for_ack(self, envelope: Envelope, timeout: float = 10.0) -> Envelope:
        wait_for(lambda: envelope.acked_at is not None, timeout=timeout,
                 message=lambda: f"envelope {envelope.envelope_id} ({envelope.type}) was not acknowledged")
        return envelope

    # ---------------------------------------------------------------------- actions
    def send(self, type_: str, payload: dict[str, Any], *, connection: SocketConnection | None = None) -> Envelope:
        """Deliver one envelope to one open connection (round robin unless ``connection`` is given)."""
        with self._lock:
            if connection is None:
                open_now = [c for c in self._connections if c.open]
                if not open_now:
                    raise AssertionError("no open Socket Mode connection to deliver to")
                connection = open_now[self._next % len(open_now)]
                self._next += 1
            envelope = Envelope(uuid.uuid4().hex, type_, payload, connection.id, time.time())
            self._envelopes[envelope.envelope_id] = envelope
        message = {
            "envelope_id": envelope.envelope_id,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": type_ != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        self._call(connection.ws.send_str(json.dumps(message)))
        return envelope

    def request_reconnect(self, connection: SocketConnection, reason: str = "refresh_requested") -> None:
        """What Slack sends before it recycles a connection; the client should open a new one."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-socket-mode"}}
        self._call(connection.ws.send_str(json.dumps(message)))

    def drop(self, connection: SocketConnection) -> None:
        """Close the socket without a disconnect message first, as a network failure would."""
        self._call(connection.ws.close())

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None, "FakeSocketMode is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ---------------------------------------------------------------- the endpoint
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            if ticket not in self._tickets:
                return web.Response(status=401, text="invalid or used ticket")
            self._tickets.discard(ticket)
        # No server pings: the client pings, as with Slack, and aiohttp answers them.
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        with self._lock:
            conn = SocketConnection(next(self._ids), ticket, ws, time.time())
            self._connections.append(conn)
            count = len([c for c in self._connections if c.open])
        await ws.send_str(json.dumps({
            "type": "hello",
            "num_connections": count,
            "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                now = time.time()
                with self._lock:
                    conn.received.append(data)
                    envelope = self._envelopes.get(data.get("envelope_id", ""))
                    if envelope is not None and envelope.acked_at is None:
                        envelope.acked_at = now
                        envelope.ack_connection_id = conn.id
                        envelope.ack_payload = data.get("payload")
        finally:
            with self._lock:
                conn.closed_at = time.time()
        return ws
