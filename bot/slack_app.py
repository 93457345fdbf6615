"""Slack transport: Bolt listeners that ack at once and hand the work to the Dispatcher.

Slash commands and buttons are acknowledged before any handler runs (Bolt then keeps the listener
going in its thread pool), so the 3-second limit holds however slow Milvus or S3 are. Replies go
back through the request's ``response_url``; channel messages go through the outbox.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bot.blocks import fit_blocks, fit_text
from bot.context import GroupDirectory, Runtime
from bot.dispatch import Dispatcher, Outcome
from bot.redact import hush_request_logs

log = logging.getLogger("milvus_chatops.slack")

PROGRESS_INTERVAL_S = 5.0
PROGRESS_MAX_POSTS = 3  # response_url takes 5 posts; keep room for the final reply
# Handlers block on I/O (backups, rollouts, a cluster that does not answer) for minutes. Each
# environment gets its own workers and its own bounded queue, so a hung cluster ties up only its own
# lane: commands for other environments, and those that name none (help, whoami), never wait for it.
ENV_WORKERS = 8
ENV_WAITING = 64
GENERAL_WORKERS = 8
GENERAL_WAITING = 64
GENERAL_LANE = ""


class Lane:
    """A bounded queue with its own threads: at most ``workers`` running and ``waiting`` queued."""

    def __init__(self, name: str, workers: int, waiting: int) -> None:
        self.name = name
        self.capacity = workers + waiting
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lane-{name or 'general'}")
        self._lock = threading.Lock()
        self.load = 0  # running plus waiting

    def submit(self, fn: Any, *args: Any) -> bool:
        """Queue ``fn(*args)``; False (and nothing queued) when the lane is full."""
        with self._lock:
            if self.load >= self.capacity:
                return False
            self.load += 1

        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("background handler failed")
            finally:
                with self._lock:
                    self.load -= 1

        self._pool.submit(run)
        return True


class Lanes:
    def __init__(self, environments: Any) -> None:
        self.lanes = {name: Lane(name, ENV_WORKERS, ENV_WAITING) for name in environments}
        self.lanes[GENERAL_LANE] = Lane(GENERAL_LANE, GENERAL_WORKERS, GENERAL_WAITING)

    def lane(self, environment: str | None) -> Lane:
        # Names nobody configured share the general lane: user text must not be able to create lanes.
        return self.lanes.get(environment or GENERAL_LANE) or self.lanes[GENERAL_LANE]


# Slack accepts posts to a response_url for 30 minutes; retrying longer cannot succeed.
RESPONSE_URL_LIFETIME_S = 30 * 60
MAX_RESPONSE_BACKOFF_S = 60.0


@dataclass(order=True)
class _Retry:
    due: float
    seq: int
    respond: Any = field(compare=False)
    message: dict[str, Any] = field(compare=False)
    deadline: float = field(compare=False)
    attempts: int = field(compare=False, default=0)


class ResponseSender:
    """Replies through a request's ``response_url``, retried until they land or the URL expires.

    Slack answers 429 (with Retry-After) and 5xx there too; Bolt's ``respond`` returns those answers
    without raising, so an unchecked call lost the reply without a trace. The first attempt is made in
    the caller's thread (the usual case costs nothing extra); retries wait in one background thread,
    not in a worker of the environment's lane. Every retry and every give-up is logged. Retries live in
    memory: a restart in the middle drops them (the audit row of the command is written regardless).
    """

    def __init__(self, lifetime_s: float = RESPONSE_URL_LIFETIME_S) -> None:
        self.lifetime_s = lifetime_s
        self._queue: list[_Retry] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def send(self, respond: Any, **message: Any) -> None:
        now = time.monotonic()
        self._attempt(_Retry(now, next(self._seq), respond, message, now + self.lifetime_s))

    def _attempt(self, retry: _Retry) -> None:
        retry.attempts += 1
        delay, reason = self._post(retry)
        if delay is None:
            return
        if time.monotonic() + delay > retry.deadline:
            log.error("reply via response_url given up after %d attempts (%s): the URL has expired", retry.attempts,
                      reason)
            return
        log.warning("reply via response_url failed (%s); attempt %d, retrying in %.0f s", reason, retry.attempts, delay)
        retry.due = time.monotonic() + delay
        with self._cond:
            heapq.heappush(self._queue, retry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="response-retries", daemon=True)
                self._thread.start()
            self._cond.notify()

    @staticmethod
    def _post(retry: _Retry) -> tuple[float | None, str]:
        """(seconds until the next try, why) or (None, "") when done, delivered or not retryable."""
        from bot.outbox import header_value, retry_after_seconds

        backoff = min(MAX_RESPONSE_BACKOFF_S, 2.0 ** (retry.attempts - 1))
        try:
            response = retry.respond(**retry.message)
        except Exception as exc:  # refused connection, timeout: Slack may be back in a moment
            return backoff, type(exc).__name__
        status = int(getattr(response, "status_code", 200) or 200)
        if status < 300:
            return None, ""
        if status == 429:
            return retry_after_seconds(header_value(getattr(response, "headers", {}), "Retry-After")), "HTTP 429"
        if status >= 500:
            return backoff, f"HTTP {status}"
        body = str(getattr(response, "body", ""))[:100]
        log.warning("reply via response_url refused with HTTP %d (%s); not retried", status, body)
        return None, ""

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue or self._queue[0].due > time.monotonic():
                    self._cond.wait(timeout=(self._queue[0].due - time.monotonic()) if self._queue else None)
                retry = heapq.heappop(self._queue)
            try:
                self._attempt(retry)
            except Exception:
                log.exception("retrying a reply via response_url failed")


def busy_text(lane: Lane) -> str:
    where = f"Environment `{lane.name}`" if lane.name else "The bot"
    return (
        f":hourglass: {where} is busy: {lane.load} requests are already running or waiting there, so this "
        "one was not started. Try again in a minute."
    )


SIGNATURE_WINDOW_S = 300  # Slack's documented replay window for X-Slack-Request-Timestamp
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class ReplayGuard:
    """Each signed request is accepted once.

    A signature is an HMAC of the timestamp and the body, so an identical copy (a captured request
    sent again inside the 5-minute window) carries the same one. Signatures seen are remembered for as
    long as their timestamp is acceptable:

    - on a shared store (PostgreSQL, the only way to run several replicas) each is claimed there too,
      so a copy sent to another replica is refused; claims older than the window are swept;
    - on SQLite (one replica) memory is enough, and a claim per request would cost an fsync on the
      request path (SQLite commits with synchronous=FULL; at 100 commands a second that write lock,
      shared with the audit log, made acks take seconds). What a restart forgets is covered by
      refusing requests signed before this process started: Slack sends at once, so the only such
      requests are copies.
    """

    def __init__(self, store: Any, window_s: float = SIGNATURE_WINDOW_S) -> None:
        self.store = store
        self.shared = not str(store.url).startswith("sqlite")
        self.started = int(time.time())
        self.keep_s = 2 * window_s  # a timestamp up to one window ahead stays valid for two
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def first_time(self, signature: str, timestamp: int) -> bool:
        if not self.shared and timestamp < self.started:
            return False
        now = time.monotonic()
        with self._lock:
            if self._seen.get(signature, 0.0) > now:
                return False
            self._seen[signature] = now + self.keep_s
            sweep = now >= self._next_sweep
            if sweep:
                self._next_sweep = now + 60
                self._seen = {k: v for k, v in self._seen.items() if v > now}
        if not self.shared:
            return True
        from sqlalchemy.exc import SQLAlchemyError

        try:
            if sweep:
                self._sweep_store()
            return bool(self.store.claim(f"slack-request:{signature}", "slack"))
        except SQLAlchemyError:
            log.warning("replay check could not write the state store; only this replica's memory applies")
            return True

    def _sweep_store(self) -> None:
        import datetime as dt

        from sqlalchemy import delete

        from bot import schema
        from bot.state import utcnow

        claims = schema.claims
        cutoff = utcnow() - dt.timedelta(seconds=self.keep_s)
        with self.store.begin() as conn:
            conn.execute(delete(claims).where(claims.c.key.like("slack-request:%"), claims.c.claimed_at < cutoff))


class SlackRequestGuard:
    """Slack's v0 request signing, checked before Bolt sees a request (so Bolt's own check, which logs
    the whole body of a refused request, never runs), plus the replay check Slack leaves to apps."""

    def __init__(self, signing_secret: str, replay: ReplayGuard, window_s: float = SIGNATURE_WINDOW_S) -> None:
        self._secret = signing_secret.encode()
        self.replay = replay
        self.window_s = window_s

    def check_headers(self, headers: Any) -> str | None:
        """A reason to refuse from the headers alone, so a body that cannot be genuine is never read."""
        timestamp = headers.get("x-slack-request-timestamp") or ""
        signature = headers.get("x-slack-signature") or ""
        if not timestamp or not signature:
            return "no Slack signature"
        if not _TIMESTAMP.fullmatch(timestamp):
            return "malformed X-Slack-Request-Timestamp"
        if abs(time.time() - int(timestamp)) > self.window_s:
            return "timestamp outside the 5-minute window"
        if not _SIGNATURE.fullmatch(signature):
            return "malformed X-Slack-Signature"
        return None

    def verify(self, headers: Any, body: bytes) -> str | None:
        """None when the request is genuine and seen for the first time, else why it is refused."""
        refusal = self.check_headers(headers)
        if refusal:
            return refusal
        timestamp, signature = headers["x-slack-request-timestamp"], headers["x-slack-signature"]
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "invalid signature"
        if not self.replay.first_time(signature, int(timestamp)):
            return "replayed request (this signature was already used)"
        return None


class SlackGroupDirectory(GroupDirectory):
    """User group membership from usergroups.users.list, cached so role checks stay fast."""

    def __init__(self, client: Any, group_ids: set[str], ttl_s: float = 300.0) -> None:
        self.client = client
        self.group_ids = group_ids
        self.ttl_s = ttl_s
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def _members_of(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._members.get(group)
        if cached and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group).get("users", []))
        except Exception:
            log.warning("could not read members of user group %s; treating it as empty for now", group)
            users = cached[1] if cached else frozenset()
        with self._lock:
            self._members[group] = (time.monotonic(), users)
        return users

    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset(g for g in self.group_ids if user_id in self._members_of(g))


def referenced_groups(runtime_config: Any) -> set[str]:
    groups = {g for grant in runtime_config.access for g in grant.groups}
    for env in runtime_config.environments.values():
        groups.update(a for a in env.approval.approvers if a.startswith("S"))
    return groups


class ResponseProgress:
    """Progress for one request, shown by replacing one ephemeral message, throttled."""

    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.posts = 0
        self.last = 0.0

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if self.posts >= PROGRESS_MAX_POSTS or (self.posts and now - self.last < PROGRESS_INTERVAL_S):
            return
        self.posts += 1
        self.last = now
        try:
            self.respond(text=f":hourglass_flowing_sand: {fit_text(text)}", replace_original=True)
        except Exception:
            log.warning("progress update failed", exc_info=True)


def _hushed(respond: Any) -> Any:
    """``respond`` that keeps the HTTP client from logging the body, on the first try and on retries
    (they run in another thread, so the hush goes with the call, not with this thread)."""

    def send(**message: Any) -> Any:
        with hush_request_logs():
            return respond(**message)

    return send


def _send_reply(
    runtime: Runtime,
    sender: ResponseSender,
    outcome: Outcome,
    respond: Any,
    client: Any,
    channel: str | None,
    trigger_id: str | None,
    replace: bool,
) -> None:
    reply = outcome.reply
    if reply.modal and trigger_id:
        modal = dict(reply.modal)
        metadata = json.loads(modal.get("private_metadata") or "{}")
        metadata.setdefault("channel", channel)
        modal["private_metadata"] = json.dumps(metadata)
        client.views_open(trigger_id=trigger_id, view=modal)
        if not reply.text:
            return
    sender.send(
        _hushed(respond) if reply.sensitive else respond,
        text=fit_text(reply.text),
        blocks=fit_blocks(reply.blocks) or None,
        response_type=reply.response_type,
        replace_original=replace or reply.replace_original,
    )
    if reply.files and channel:
        runtime.messenger.upload(channel, reply.files, comment=fit_text(reply.text)[:200])




def _dm(client: Any, user_id: str) -> Any:
    """A ``respond``-like callable for a modal, which has no response_url: a direct message."""

    def respond(text: str, **_: Any) -> None:
        client.chat_postMessage(channel=user_id, text=text)

    return respond


def _decode_value(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"value": raw}
    return value if isinstance(value, dict) else {"value": value}


def _view_values(view: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for block in view.get("state", {}).get("values", {}).values():
        for action_id, element in block.items():
            if "selected_option" in element:
                values[action_id] = (element["selected_option"] or {}).get("value")
            elif "selected_options" in element:
                values[action_id] = [o.get("value") for o in element["selected_options"]]
            else:
                values[action_id] = element.get("value")
    return values


def build_bolt_app(runtime: Runtime, dispatcher: Dispatcher, client: Any) -> Any:
    from slack_bolt import App

    settings = runtime.settings
    # Handlers run in lanes, not in Bolt's listener threads: a listener only acks and hands over, so a
    # burst of slow commands (a status against a busy Milvus) can never delay the next ack past 3 s.
    lanes = Lanes(runtime.config.environments)
    sender = ResponseSender()
    notices = ThreadPoolExecutor(max_workers=1, thread_name_prefix="busy-notice")

    def in_lane(environment: Any, respond: Any, fn: Any, *args: Any) -> None:
        lane = lanes.lane(environment if isinstance(environment, str) else None)
        if not lane.submit(fn, *args):
            log.warning("lane %s is full (%d); refused a request", lane.name or "general", lane.load)
            notices.submit(sender.send, respond, text=busy_text(lane), response_type="ephemeral")

    app = App(
        client=client,
        # Unused here (verification is off, see below); Socket Mode may run without one.
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "",
        token_verification_enabled=False,
        # SlackRequestGuard checks signature, window and replays before the body reaches Bolt (HTTP);
        # Socket Mode requests come over Slack's authenticated connection and are not signed.
        request_verification_enabled=False,
        # Listeners only ack and hand over to `work`, so run them inline: Bolt's other mode hops to a
        # thread and polls for the ack every 10 ms, which capped acks at ~190/s on two cores.
        process_before_response=True,
        ignoring_self_events_enabled=False,
    )

    @app.command("/milvus")
    def on_command(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        lane = lanes.lane(dispatcher.environment_of(body.get("text", "")))
        if lane.submit(run_command, body, respond, client):
            ack()
        else:
            log.warning("lane %s is full (%d); refused a slash command", lane.name or "general", lane.load)
            ack(text=busy_text(lane))  # the acknowledgement itself says so: nothing else to wait for

    def run_command(body: dict[str, Any], respond: Any, client: Any) -> None:
        user = runtime.identity(body["user_id"])
        channel = body.get("channel_id")
        outcome = dispatcher.run_command(
            body.get("text", ""),
            user,
            channel=channel,
            progress=ResponseProgress(respond),
            trigger_id=body.get("trigger_id"),
        )
        _send_reply(runtime, sender, outcome, respond, client, channel, body.get("trigger_id"), replace=False)

    @app.action(re.compile(r"^(?!link).*"))
    def on_action(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        values = [_decode_value(a.get("value")).get("env") for a in body.get("actions", [])]
        in_lane(values[0] if values else None, respond, run_actions, body, respond, client)

    def run_actions(body: dict[str, Any], respond: Any, client: Any) -> None:
        user = runtime.identity(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id")
        for act in body.get("actions", []):
            payload = _decode_value(act.get("value") or (act.get("selected_option") or {}).get("value"))
            payload.setdefault("_message_ts", (body.get("message") or {}).get("ts"))
            outcome = dispatcher.run_action(
                act["action_id"],
                payload,
                user,
                channel=channel,
                progress=ResponseProgress(respond),
                trigger_id=body.get("trigger_id"),
            )
            _send_reply(runtime, sender, outcome, respond, client, channel, body.get("trigger_id"), replace=False)

    @app.action(re.compile(r"^link"))
    def on_link(ack: Any) -> None:
        ack()  # URL buttons also send an action; there is nothing to do but acknowledge it

    @app.view(re.compile(".*"))
    def on_view(ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        ack()
        metadata = _decode_value(view.get("private_metadata"))
        notify = _dm(client, body["user"]["id"])
        in_lane(metadata.get("env"), notify, run_view, body, view, client)

    def run_view(body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        user = runtime.identity(body["user"]["id"])
        metadata = _decode_value(view.get("private_metadata"))
        payload = {**metadata, **_view_values(view)}
        channel = metadata.get("channel") if isinstance(metadata.get("channel"), str) else None
        outcome = dispatcher.run_action(
            view["callback_id"], payload, user, channel=channel, kind="modal", trigger_id=body.get("trigger_id")
        )
        reply = outcome.reply
        text, blocks = fit_text(reply.text), fit_blocks(reply.blocks) or None
        if channel:
            client.chat_postEphemeral(channel=channel, user=user.user_id, text=text, blocks=blocks)
        else:
            client.chat_postMessage(channel=user.user_id, text=text, blocks=blocks)
        if reply.files:
            runtime.messenger.upload(channel or user.user_id, reply.files, comment=text[:200])

    return app
