"""``milvus-chatops serve``: Slack, the Alertmanager webhook, health, metrics and the scheduler."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from bot.registry import Registry, RouteHandler, Worker
from bot.settings import Settings

log = logging.getLogger("milvus_chatops.server")


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
        from bot.slack_app import SlackGroupDirectory, build_bolt_app, referenced_groups
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
        self.slack_enabled: bool = bool(settings.slack_signing_secret and settings.slack_bot_token)
        self.bolt: Any = build_bolt_app(self.runtime, self.dispatcher, self.client) if self.slack_enabled else None
        self.socket_handler: Any = None
        self.routes: dict[str, RouteHandler] = {r.path: r.factory(self.runtime) for r in registry.routes}
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
        for warm_up in self.runtime.registry.warm_ups:
            threading.Thread(target=_warm_up, args=(warm_up,), name="warm-up", daemon=True).start()

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


def _warm_up(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception:
        log.warning("warm-up %s failed; its first use will be slower", getattr(fn, "__qualname__", fn), exc_info=True)


def build_asgi(service: Service) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from bot.metrics import REGISTRY

    async def slack_events(request: Request) -> Response:
        if service.bolt is None:
            return PlainTextResponse("Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET", 503)
        from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response

        body = await request.body()
        # Bolt's dispatch verifies the signature and waits for ack(); keep it off the event loop.
        bolt_response = await run_in_threadpool(service.bolt.dispatch, to_bolt_request(request, body))
        return to_starlette_response(bolt_response)

    def endpoint(handle: RouteHandler) -> Any:
        async def route(request: Request) -> Response:
            body = await request.body()
            status, result = await run_in_threadpool(handle, dict(request.headers), body)
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
            *(Route(path, endpoint(handle), methods=["POST"]) for path, handle in service.routes.items()),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


def serve(settings: Settings, registry: Registry, *, host: str, port: int) -> int:
    import uvicorn

    service = Service(settings, registry)
    if not service.slack_enabled:
        log.warning("SLACK_BOT_TOKEN / SLACK_SIGNING_SECRET not set: /slack/events answers 503")
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
