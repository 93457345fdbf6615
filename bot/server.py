"""``milvus-chatops serve``: Slack, the Alertmanager webhook, health, metrics and the scheduler."""

from __future__ import annotations

import gc
import logging
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from bot.registry import Registry, RouteHandler, Worker
from bot.settings import Settings

log = logging.getLogger("milvus_chatops.server")

# Slack's own requests are a few KB; the largest, a button press, carries its message (at most 50
# blocks), well under this. Anything bigger is not Slack and is refused before it is read.
MAX_SLACK_BODY_BYTES = 1024 * 1024
# Other routes (the Alertmanager webhook) may declare their own cap; this is the default.
MAX_ROUTE_BODY_BYTES = 5 * 1024 * 1024
# No payload we accept nests deeper than a handful of levels; json.loads recurses once per level and a
# body of 100k "[" would end in RecursionError (a 500 and a traceback per request) instead of a 400.
MAX_JSON_DEPTH = 64


def slack_client(settings: Settings) -> Any:
    from slack_sdk import WebClient

    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    kwargs: dict[str, Any] = {"token": token, "timeout": 10}
    if settings.slack_api_base:
        kwargs["base_url"] = settings.slack_api_base
    return WebClient(**kwargs)


class Service:
    """Everything `serve` runs, started and stopped together."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        from bot.app import build_runtime
        from bot.dispatch import Dispatcher
        from bot.outbox import Outbox
        from bot.slack_app import ReplayGuard, SlackGroupDirectory, SlackRequestGuard, build_bolt_app, referenced_groups
        from bot.state import Store

        self.settings = settings
        self.client = slack_client(settings)
        self.outbox: Outbox | None = None

        def outbox_on(store: Store) -> Outbox:
            self.outbox = Outbox(store, self.client)
            return self.outbox

        self.runtime = build_runtime(settings, outbox_on, registry)
        assert self.outbox is not None
        self.runtime.directory = SlackGroupDirectory(self.client, referenced_groups(self.runtime.config))
        self.dispatcher = Dispatcher(self.runtime)
        signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
        # Over HTTP every request must be signed; in Socket Mode requests come over the connection the
        # app token opened, so the signing secret is needed only for /slack/events.
        self.slack_enabled: bool = bool(settings.slack_bot_token and (signing_secret or app_token))
        self.slack_guard: SlackRequestGuard | None = (
            SlackRequestGuard(signing_secret, ReplayGuard(self.runtime.store))
            if self.slack_enabled and signing_secret
            else None
        )
        self.bolt: Any = build_bolt_app(self.runtime, self.dispatcher, self.client) if self.slack_enabled else None
        self.socket_handler: Any = None
        self.routes: dict[str, tuple[RouteHandler, int]] = {
            r.path: (r.factory(self.runtime), r.max_body_bytes or MAX_ROUTE_BODY_BYTES) for r in registry.routes
        }
        self.workers: list[Worker] = [make(self.runtime) for make in registry.workers]
        from bot.scheduler import Scheduler

        self.scheduler: Scheduler = Scheduler(self.runtime)

    def start(self) -> None:
        assert self.outbox is not None
        # Start-up leaves ~170k long-lived objects (imports, config); a full GC pass over them paused
        # every thread for 100-300 ms under load. Freezing moves them out of the collector's way.
        gc.freeze()
        # Each store call releases the GIL and then waits up to the switch interval (5 ms by default)
        # to get it back while the HTTP thread parses webhooks; a worker round makes dozens of them,
        # so an urgent alert's path paid that wait dozens of times. 1 ms keeps the convoy short.
        sys.setswitchinterval(0.001)
        self.outbox.start()
        for worker in self.workers:
            worker.start()
        self.scheduler.start()
        if self.bolt is not None and self.settings.slack_app_token:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            self.socket_handler = SocketModeHandler(self.bolt, self.settings.slack_app_token.get_secret_value())
            self.socket_handler.connect()
        # matplotlib's first import takes seconds; pay such costs now, off the request path, not in
        # the first report someone asks for.
        if self.runtime.registry.warm_ups:
            threading.Thread(target=_warm_up, args=(self.runtime.registry.warm_ups,), name="warm-up",
                             daemon=True).start()

    def stop(self) -> None:
        stoppers: list[Any] = [
            self.socket_handler.close if self.socket_handler else None,
            self.scheduler.stop,
            *(worker.stop for worker in reversed(self.workers)),
            self.outbox.stop if self.outbox else None,
            self.runtime.services.close_all,
        ]
        for stop in stoppers:
            if stop is None:
                continue
            try:
                stop()
            except Exception:
                log.exception("error while stopping")

    def ready(self) -> tuple[bool, str]:
        if not self.runtime.store.ping():
            return False, "state store unreachable"
        if self.socket_handler is not None and not self.socket_handler.client.is_connected():
            return False, "Slack Socket Mode connection down"
        return True, "ready"


def _warm_up(warm_ups: list[Callable[[], object]]) -> None:
    for fn in warm_ups:
        try:
            fn()
        except Exception:
            log.warning("warm-up %s failed; its first use will be slower", getattr(fn, "__qualname__", fn),
                        exc_info=True)
    # The warm-ups' imports (matplotlib alone ~100k objects) come after start()'s freeze: without a
    # second one, a full collection walks them all, ~70 ms here with every thread paused, which may
    # land in the middle of an alert storm.
    gc.freeze()


def build_asgi(service: Service) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from bot.metrics import REGISTRY

    async def slack_events(request: Request) -> Response:
        if service.bolt is None or service.slack_guard is None:
            # Without the signing secret nothing here could tell Slack's requests from anyone's.
            return PlainTextResponse(
                "Slack over HTTP is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET", 503
            )
        from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response

        guard = service.slack_guard
        # Headers first: a request without a fresh signature is refused before a byte of its body is read.
        refusal = guard.check_headers(request.headers)
        if refusal is not None:
            return _unauthorized(request, refusal)
        body = await read_capped(request, MAX_SLACK_BODY_BYTES)
        if body is None:
            return _too_large(request, MAX_SLACK_BODY_BYTES)
        def verify_and_dispatch() -> Any:
            # One trip to a worker thread for all of it: the replay check may write the state store, the
            # depth scan is linear in the body, and Bolt's dispatch waits for ack(); none of it may hold
            # up the event loop, and only a signed request gets past the first step.
            refused = guard.verify(request.headers, body)
            if refused is not None:
                return _unauthorized(request, refused)
            if _json_too_deep(request, body):
                return PlainTextResponse(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", 400)
            # Bolt parses the body when the request is built: only now, once it is known to be Slack's.
            return service.bolt.dispatch(to_bolt_request(request, body))

        outcome = await run_in_threadpool(verify_and_dispatch)
        return outcome if isinstance(outcome, Response) else to_starlette_response(outcome)

    def endpoint(handle: RouteHandler, max_bytes: int) -> Any:
        async def route(request: Request) -> Response:
            body = await read_capped(request, max_bytes)
            if body is None:
                return _too_large(request, max_bytes)
            headers = dict(request.headers)

            def checked() -> tuple[int, dict[str, Any]]:
                # In the worker thread: the depth scan is linear in a body of up to the cap.
                if _json_too_deep(request, body):
                    return 400, {"error": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"}
                return handle(headers, body)

            status, result = await run_in_threadpool(checked)
            return JSONResponse(result, status)

        return route

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        ok, reason = await run_in_threadpool(service.ready)
        return PlainTextResponse(reason, 200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            *(Route(path, endpoint(*route), methods=["POST"]) for path, route in service.routes.items()),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


async def read_capped(request: Any, limit: int) -> bytes | None:
    """The body, or None once it is known to exceed ``limit``: from Content-Length before reading
    anything, or while streaming a chunked body, so at most ``limit`` bytes are ever held."""
    declared = request.headers.get("content-length")
    if declared is not None and (not re.fullmatch(r"[0-9]{1,15}", declared) or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    stream: AsyncIterator[bytes] = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _unauthorized(request: Any, reason: str) -> Any:
    from starlette.responses import PlainTextResponse

    # Who and why, never the body: it is the attacker's text, and may be large.
    log.info("refused %s from %s: %s", request.url.path, _client(request), reason)
    # Close rather than drain whatever body the client is still sending.
    return PlainTextResponse(reason, 401, headers={"Connection": "close"})


def _too_large(request: Any, limit: int) -> Any:
    from starlette.responses import PlainTextResponse

    log.info("refused %s from %s: body over %d bytes", request.url.path, _client(request), limit)
    # Closing tells the client to stop sending the rest of a body we will never read.
    return PlainTextResponse(f"request body over {limit} bytes", 413, headers={"Connection": "close"})


def _client(request: Any) -> str:
    return request.client.host if request.client else "?"


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _json_too_deep(request: Any, body: bytes) -> bool:
    if "json" not in request.headers.get("content-type", "") and body.lstrip()[:1] not in (b"{", b"["):
        return False
    return json_depth_exceeds(body, MAX_JSON_DEPTH)


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``, without parsing (which recurses)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        # Cannot nest deeper than it has openings: the common case (an alert webhook), at a
        # twentieth of the scan's cost, which the intake pays for every webhook of a storm.
        return False
    depth = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in (0x5B, 0x7B) else -1
        if depth > limit:
            return True
    return False


def serve(settings: Settings, registry: Registry, *, host: str, port: int) -> int:
    import uvicorn

    service = Service(settings, registry)
    if not service.slack_enabled:
        log.warning("Slack not configured (SLACK_BOT_TOKEN with SLACK_SIGNING_SECRET or SLACK_APP_TOKEN): "
                    "/slack/events answers 503")
    elif service.slack_guard is None:
        log.info("Socket Mode without SLACK_SIGNING_SECRET: /slack/events answers 503")
    service.start()
    server = uvicorn.Server(
        uvicorn.Config(build_asgi(service), host=host, port=port, log_level="warning", access_log=False)
    )
    log.info("serving on http://%s:%d (environments: %s)", host, port, ", ".join(service.runtime.config.environments))
    try:
        server.run()
    finally:
        service.stop()
    return 0
