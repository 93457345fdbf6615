"""FakeSlack: a local HTTP server that speaks enough of the Slack Web API for tests.

It is a FAKE: no Slack code runs here.  It exists because the bot must be
tested through the same HTTP boundary it uses in production (slack_sdk's
``WebClient(base_url=fake.api_url)`` and Bolt's ``respond()`` to a
``response_url``), without a Slack workspace.  It keeps enough state to answer
like Slack where the bot's behaviour depends on the answer: unique increasing
``ts`` values, ``message_not_found`` for updates of unknown messages,
``msg_too_long`` for ``chat.update`` text over 4,000 characters,
``invalid_blocks`` over 50 blocks, single-use ``trigger_id``, 429 with
``Retry-After`` on demand, at most five posts per ``response_url``, and (when
``limit_posts`` is called) Slack's pace of one ``chat.postMessage`` per second
per channel, answering 429 with ``Retry-After`` beyond it.

    with FakeSlack() as slack:
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        client.chat_postMessage(channel="C1", text="hi")
        assert slack.messages("C1")[0].text == "hi"
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.wait import wait_for

# Form posts carry these as JSON strings; decode them so tests see structures.
_JSON_PARAMS = ("blocks", "attachments", "view", "files", "metadata", "users", "channels")
MAX_MESSAGE_BLOCKS = 50
MAX_UPDATE_TEXT = 4000
MAX_RESPONSE_URL_POSTS = 5


class SlackApiFailure(Exception):
    """Raised inside a handler to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class SlackCall:
    """One Web API request as the fake received it."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]  # keys lower-cased
    at: float  # time.time() when received
    http_status: int
    response: dict[str, Any] | None

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:]
        token = self.params.get("token")
        return str(token) if token else None

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))


@dataclass
class SlackMessage:
    """A message as it stands after every ``chat.update`` applied to it."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    thread_ts: str | None
    user: str
    params: dict[str, Any]  # the params of the post, then of each update merged in
    updates: list[dict[str, Any]] = field(default_factory=list)  # params of each chat.update
    deleted: bool = False

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text or ""}
        if self.blocks:
            out["blocks"] = self.blocks
        if self.attachments:
            out["attachments"] = self.attachments
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.params.get("metadata"):
            out["metadata"] = self.params["metadata"]  # Slack returns it with include_all_metadata
        return out

    def all_text(self) -> str:
        """The text plus every text string inside blocks, for loose assertions."""
        parts = [self.text or ""]
        parts.extend(_texts_in(self.blocks))
        parts.extend(_texts_in(self.attachments))
        return "\n".join(p for p in parts if p)


@dataclass(frozen=True)
class EphemeralMessage:
    channel: str
    user: str
    message_ts: str
    text: str | None
    blocks: list[dict[str, Any]]
    params: dict[str, Any]


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a slash command's or an action's ``response_url``."""

    response_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    http_status: int

    @property
    def text(self) -> str | None:
        value = self.body.get("text")
        return str(value) if value is not None else None

    def all_text(self) -> str:
        parts = [self.text or ""]
        parts.extend(_texts_in(self.body.get("blocks") or []))
        return "\n".join(p for p in parts if p)


@dataclass
class SlackView:
    id: str
    view: dict[str, Any]
    user: str | None
    trigger_id: str | None
    external_id: str | None
    history: list[dict[str, Any]] = field(default_factory=list)  # every version, oldest first


@dataclass
class SlackFile:
    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None
    completed: bool = False


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    error: str | None
    delay: float
    remaining: int


def _texts_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts_in(item)


def _decode_body(content_type: str, raw: bytes) -> dict[str, Any]:
    ctype = content_type.split(";")[0].strip().lower()
    if not raw:
        return {}
    if ctype == "application/json":
        data = json.loads(raw.decode("utf-8"))
        return data if isinstance(data, dict) else {"_body": data}
    if ctype == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        params: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if part.get_filename():
                params[str(name)] = payload
            else:
                params[str(name)] = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        return params
    return _flatten(parse_qs(raw.decode("utf-8"), keep_blank_values=True))


def _flatten(query: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in query.items()}


def _decode_json_params(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for key in _JSON_PARAMS:
        value = out.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            # Left raw when not JSON: the test may be checking what was sent.
            with contextlib.suppress(ValueError):
                out[key] = json.loads(value)
    return out


class FakeSlack:
    """A threaded HTTP server on 127.0.0.1 answering the Slack Web API.

    ``bot_token``: when set, any other token gets ``invalid_auth``; a request
    with no token at all always gets ``not_authed`` (as Slack answers).
    """

    def __init__(
        self,
        *,
        bot_token: str | None = None,
        team_id: str = "T0FAKE",
        bot_user_id: str = "U0FAKEBOT",
        bot_id: str = "B0FAKEBOT",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ts_base = int(time.time())
        self._socket_mode: Any = None  # a FakeSocketMode, for apps.connections.open
        self._init_state()

    # ----------------------------------------------------------------- lifecycle
    def _init_state(self) -> None:
        self._calls: list[SlackCall] = []
        self._messages: dict[tuple[str, str], SlackMessage] = {}
        self._ephemerals: list[EphemeralMessage] = []
        self._responses: list[ResponsePost] = []
        self._views: dict[str, SlackView] = {}
        self._home_views: dict[str, dict[str, Any]] = {}
        self._files: dict[str, SlackFile] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._slow: dict[str, list[float]] = {}  # method -> delays of its next successful answers
        self._usergroups: dict[str, list[str]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._used_triggers: set[str] = set()
        self._seq = itertools.count(1)
        self._post_interval: float | None = None
        self._last_post: dict[str, float] = {}

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="FakeSlack", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every call, message, view, file, fault, user and usergroup."""
        with self._lock:
            self._init_state()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What to give ``WebClient(base_url=...)`` / ``SLACK_API_URL`` (ends in ``/api/``)."""
        return f"{self.url}/api/"

    def response_url(self, response_id: str) -> str:
        """A ``response_url`` for slash command or action bodies; posts to it are recorded."""
        return f"{self.url}/response/{response_id}"

    # ------------------------------------------------------------ configuration
    def attach_socket_mode(self, socket_mode: Any) -> None:
        """``apps.connections.open`` hands out URLs of this FakeSocketMode (None: detach)."""
        self._socket_mode = socket_mode

    def set_usergroup(self, usergroup_id: str, members: list[str]) -> None:
        with self._lock:
            self._usergroups[usergroup_id] = list(members)

    def set_user(self, user_id: str, **fields: Any) -> None:
        """Answer ``users.info`` for this user (fields are merged over defaults)."""
        with self._lock:
            self._users[user_id] = fields

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = 1,
        times: int = 1,
        error: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail.

        ``status=429``: Slack's rate limit answer, ``Retry-After`` header and
        ``{"ok": false, "error": "ratelimited"}``.  ``status>=500``: a server
        error.  ``status=200, error="..."``: a normal Slack API error such as
        ``channel_not_found``.  ``delay``: seconds to wait before answering
        (for client timeouts).  ``method="response_url"`` targets posts to
        response URLs.
        """
        with self._lock:
            self._faults.setdefault(method, []).append(
                _Fault(status=status, retry_after=retry_after, error=error, delay=delay, remaining=times)
            )

    def answer_slowly(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` normally, but only after ``seconds``."""
        with self._lock:
            self._slow.setdefault(method, []).extend([seconds] * times)

    # ------------------------------------------------------------------ queries
    def limit_posts(self, per_second: float = 1.0) -> None:
        """Enforce Slack's posting limit: ``chat.postMessage`` to one channel at most ``per_second``;
        beyond it a 429 ``ratelimited`` with ``Retry-After`` (whole seconds, as Slack sends it)."""
        with self._lock:
            self._post_interval = 1.0 / per_second
            self._last_post = {}

    def ratelimited(self, method: str | None = None) -> list[SlackCall]:
        """Calls answered 429."""
        return [c for c in self.calls(method) if c.http_status == 429]

    def _rate_limited(self, method: str, params: dict[str, Any]) -> int | None:
        """Seconds to wait when this post exceeds the channel's pace; None when it may go."""
        if method != "chat.postMessage" or self._post_interval is None:
            return None
        channel = str(params.get("channel") or "")
        now = time.monotonic()
        with self._lock:
            last = self._last_post.get(channel)
            if last is not None and now - last < self._post_interval:
                return max(1, math.ceil(self._post_interval - (now - last)))
            self._last_post[channel] = now
        return None

    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str | None = None, *, include_deleted: bool = False) -> list[SlackMessage]:
        """Top-level messages (thread replies excluded), oldest first, updates applied."""
        with self._lock:
            return [
                m
                for m in sorted(self._messages.values(), key=lambda m: _ts_key(m.ts))
                if (channel is None or m.channel == channel)
                and (m.thread_ts is None or m.thread_ts == m.ts)
                and (include_deleted or not m.deleted)
            ]

    def messages_by_ts(self, channel: str | None = None) -> dict[str, SlackMessage]:
        return {m.ts: m for m in self.messages(channel)}

    def replies(self, channel: str, thread_ts: str) -> list[SlackMessage]:
        """Replies in one thread, oldest first (the parent excluded)."""
        with self._lock:
            return [
                m
                for m in sorted(self._messages.values(), key=lambda m: _ts_key(m.ts))
                if m.channel == channel and m.thread_ts == thread_ts and m.ts != thread_ts and not m.deleted
            ]

    def message(self, channel: str, ts: str) -> SlackMessage:
        with self._lock:
            return self._messages[(channel, ts)]

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[EphemeralMessage]:
        with self._lock:
            return [
                e
                for e in self._ephemerals
                if (channel is None or e.channel == channel) and (user is None or e.user == user)
            ]

    def responses(self, response_id: str | None = None) -> list[ResponsePost]:
        with self._lock:
            return [r for r in self._responses if response_id is None or r.response_id == response_id]

    def views(self) -> list[SlackView]:
        with self._lock:
            return list(self._views.values())

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._home_views.get(user_id)

    def files(self) -> list[SlackFile]:
        with self._lock:
            return list(self._files.values())

    def wait_for_call(
        self,
        method: str,
        predicate: Callable[[SlackCall], bool] | None = None,
        timeout: float = 10.0,
    ) -> SlackCall:
        """The first recorded call of ``method`` matching ``predicate``, waiting for it."""

        def found() -> SlackCall | None:
            for call in self.calls(method):
                if predicate is None or predicate(call):
                    return call
            return None

        return wait_for(
            found,
            timeout=timeout,
            message=lambda: f"no matching {method} call; calls so far: {[c.method for c in self.calls()]}",
        )

    def wait_for_message(
        self,
        channel: str | None = None,
        predicate: Callable[[SlackMessage], bool] | None = None,
        timeout: float = 10.0,
    ) -> SlackMessage:
        def found() -> SlackMessage | None:
            for msg in self.messages(channel):
                if predicate is None or predicate(msg):
                    return msg
            return None

        return wait_for(
            found,
            timeout=timeout,
            message=lambda: f"no matching message in {channel}; have {[m.all_text()[:80] for m in self.messages()]}",
        )

    def wait_for_response(
        self,
        response_id: str,
        predicate: Callable[[ResponsePost], bool] | None = None,
        timeout: float = 10.0,
    ) -> ResponsePost:
        def found() -> ResponsePost | None:
            for post in self.responses(response_id):
                if predicate is None or predicate(post):
                    return post
            return None

        return wait_for(
            found,
            timeout=timeout,
            message=lambda: f"no matching post to response_url {response_id}; got {self.responses(response_id)}",
        )

    # ---------------------------------------------------------------- internals
    def _next_ts(self) -> str:
        n = next(self._seq)
        return f"{self._ts_base + n // 1_000_000}.{n % 1_000_000:06d}"

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return fault

    def _handle_api(
        self, method: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        fault = self._take_fault(method)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)  # the fault itself is "answer slowly"
            extra: dict[str, str] = {}
            if fault.status == 429:
                if fault.retry_after is not None:
                    extra["Retry-After"] = str(fault.retry_after)
                body = {"ok": False, "error": fault.error or "ratelimited"}
            elif fault.status >= 500:
                body = {"ok": False, "error": fault.error or "fatal_error"}
            else:
                body = {"ok": False, "error": fault.error or "fatal_error"}
            self._record(method, params, headers, fault.status, body)
            return fault.status, extra, body

        with self._lock:
            slow = self._slow.get(method)
            delay = slow.pop(0) if slow else 0.0
        if delay:
            time.sleep(delay)
        wait = self._rate_limited(method, params)
        if wait is not None:
            body = {"ok": False, "error": "ratelimited"}
            self._record(method, params, headers, 429, body)
            return 429, {"Retry-After": str(wait)}, body

        token = SlackCall(method, params, headers, 0, 0, None).token
        try:
            if not token:
                raise SlackApiFailure("not_authed")
            if method == "apps.connections.open":
                # Only an app-level token opens a Socket Mode connection, as with Slack.
                if not token.startswith("xapp-"):
                    raise SlackApiFailure("not_allowed_token_type")
                if self._socket_mode is None:
                    raise SlackApiFailure("not_allowed_token_type")
                body = {"ok": True, "url": self._socket_mode.new_url()}
                self._record(method, params, headers, 200, body)
                return 200, {}, body
            if self.bot_token is not None and token != self.bot_token:
                raise SlackApiFailure("invalid_auth")
            handler = _HANDLERS.get(method)
            with self._lock:
                result = handler(self, params) if handler else {}
            body = {"ok": True, **result}
        except SlackApiFailure as failure:
            body = {"ok": False, "error": failure.error}
        self._record(method, params, headers, 200, body)
        return 200, {}, body

    def _record(
        self, method: str, params: dict[str, Any], headers: dict[str, str], status: int, body: dict[str, Any]
    ) -> None:
        with self._lock:
            self._calls.append(SlackCall(method, params, headers, time.time(), status, body))

    def _handle_response_url(
        self, response_id: str, raw: bytes, content_type: str, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        fault = self._take_fault("response_url")
        try:
            body = _decode_body(content_type or "application/json", raw)
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        with self._lock:
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                status, text = fault.status, (fault.error or "server_error")
            elif len(self.responses(response_id)) >= MAX_RESPONSE_URL_POSTS:
                # Slack allows five posts per response_url; later ones are refused.
                status, text = 404, "used_url"
            else:
                status, text = 200, "ok"
            self._responses.append(ResponsePost(response_id, body, headers, time.time(), status))
        extra = {"Retry-After": str(fault.retry_after)} if fault and fault.status == 429 and fault.retry_after else {}
        return status, text.encode(), extra

    def _handle_upload(self, file_id: str, raw: bytes) -> tuple[int, bytes]:
        with self._lock:
            upload = self._files.get(file_id)
            if upload is None:
                return 404, b"file not found"
            upload.content = raw
        return 200, f"OK - {len(raw)}".encode()


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


# ---------------------------------------------------------------- API methods
def _require(params: dict[str, Any], name: str, error: str | None = None) -> str:
    value = params.get(name)
    if value in (None, ""):
        raise SlackApiFailure(error or "invalid_arguments")
    return str(value)


def _as_list(value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return value
    return [value]


def _api_test(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    return {"args": {k: v for k, v in params.items() if k != "token"}}


def _auth_test(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": "https://fake-workspace.slack.com/",
        "team": "Fake Workspace",
        "user": "milvus-bot",
        "team_id": fake.team_id,
        "user_id": fake.bot_user_id,
        "bot_id": fake.bot_id,
        "is_enterprise_install": False,
    }


def _check_blocks(blocks: list[Any]) -> None:
    if len(blocks) > MAX_MESSAGE_BLOCKS:
        raise SlackApiFailure("invalid_blocks")


def _chat_post_message(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel = _require(params, "channel", "channel_not_found")
    blocks = _as_list(params.get("blocks"))
    attachments = _as_list(params.get("attachments"))
    text = params.get("text")
    if not text and not blocks and not attachments:
        raise SlackApiFailure("no_text")
    _check_blocks(blocks)
    ts = fake._next_ts()
    thread_ts = params.get("thread_ts") or None
    msg = SlackMessage(
        channel=channel,
        ts=ts,
        text=text,
        blocks=blocks,
        attachments=attachments,
        thread_ts=str(thread_ts) if thread_ts else None,
        user=fake.bot_user_id,
        params=dict(params),
    )
    fake._messages[(channel, ts)] = msg
    return {"channel": channel, "ts": ts, "message": {**msg.as_api(), "bot_id": fake.bot_id}}


def _chat_update(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel = _require(params, "channel", "channel_not_found")
    ts = _require(params, "ts", "message_not_found")
    msg = fake._messages.get((channel, ts))
    if msg is None or msg.deleted:
        raise SlackApiFailure("message_not_found")
    text = params.get("text")
    if isinstance(text, str) and len(text) > MAX_UPDATE_TEXT:
        raise SlackApiFailure("msg_too_long")
    if "blocks" in params:
        blocks = _as_list(params.get("blocks"))
        _check_blocks(blocks)
        msg.blocks = blocks
    if "attachments" in params:
        msg.attachments = _as_list(params.get("attachments"))
    if text is not None:
        msg.text = text
    msg.updates.append(dict(params))
    msg.params.update(params)
    return {"channel": channel, "ts": ts, "text": msg.text or "", "message": msg.as_api()}


def _chat_delete(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel = _require(params, "channel", "channel_not_found")
    ts = _require(params, "ts", "message_not_found")
    msg = fake._messages.get((channel, ts))
    if msg is None or msg.deleted:
        raise SlackApiFailure("message_not_found")
    msg.deleted = True
    return {"channel": channel, "ts": ts}


def _chat_post_ephemeral(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel = _require(params, "channel", "channel_not_found")
    user = _require(params, "user", "user_not_in_channel")
    blocks = _as_list(params.get("blocks"))
    if not params.get("text") and not blocks and not params.get("attachments"):
        raise SlackApiFailure("no_text")
    _check_blocks(blocks)
    ts = fake._next_ts()
    fake._ephemerals.append(EphemeralMessage(channel, user, ts, params.get("text"), blocks, dict(params)))
    return {"message_ts": ts}


def _chat_get_permalink(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel = _require(params, "channel", "channel_not_found")
    ts = _require(params, "message_ts", "message_not_found")
    return {
        "channel": channel,
        "permalink": f"https://fake-workspace.slack.com/archives/{channel}/p{ts.replace('.', '')}",
    }


def _conversations_replies(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel = _require(params, "channel", "channel_not_found")
    ts = _require(params, "ts", "thread_not_found")
    parent = fake._messages.get((channel, ts))
    if parent is None:
        raise SlackApiFailure("thread_not_found")
    replies = fake.replies(channel, ts)
    head = parent.as_api()
    if replies:
        head["reply_count"] = len(replies)
        head["thread_ts"] = ts
    return {"messages": [head, *(r.as_api() for r in replies)], "has_more": False}


def _conversations_history(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel = _require(params, "channel", "channel_not_found")
    msgs = [m.as_api() for m in reversed(fake.messages(channel))]
    return {"messages": msgs, "has_more": False}


def _conversations_open(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    users = params.get("users")
    if isinstance(users, list):
        users = ",".join(users)
    if not users and not params.get("channel"):
        raise SlackApiFailure("users_list_not_supplied")
    channel_id = params.get("channel") or "D" + str(users).replace(",", "").upper()[:10]
    return {"channel": {"id": channel_id}}


def _conversations_info(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    channel = _require(params, "channel", "channel_not_found")
    return {"channel": {"id": channel, "name": channel.lower(), "is_channel": channel.startswith("C")}}


def _users_info(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    user = _require(params, "user", "user_not_found")
    fields = fake._users.get(user, {})
    profile = {"real_name": fields.get("real_name", user), "display_name": fields.get("name", user.lower())}
    out = {
        "id": user,
        "team_id": fake.team_id,
        "name": user.lower(),
        "real_name": user,
        "tz": "UTC",
        "is_bot": False,
        "deleted": False,
        "profile": profile,
    }
    out.update(fields)
    return {"user": out}


def _usergroups_users_list(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    group = _require(params, "usergroup", "no_such_subteam")
    if group not in fake._usergroups:
        raise SlackApiFailure("no_such_subteam")
    return {"users": list(fake._usergroups[group])}


def _usergroups_list(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    groups = []
    for gid, members in fake._usergroups.items():
        group: dict[str, Any] = {"id": gid, "team_id": fake.team_id, "handle": gid.lower(), "user_count": len(members)}
        if str(params.get("include_users", "")).lower() in ("1", "true"):
            group["users"] = list(members)
        groups.append(group)
    return {"usergroups": groups}


def _new_view(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    trigger_id = params.get("trigger_id") or params.get("interactivity_pointer")
    if not trigger_id:
        raise SlackApiFailure("invalid_arguments")
    if trigger_id in fake._used_triggers:
        # A trigger_id opens one view only.
        raise SlackApiFailure("trigger_exchanged")
    view = params.get("view")
    if not isinstance(view, dict):
        raise SlackApiFailure("invalid_arguments")
    fake._used_triggers.add(str(trigger_id))
    view_id = f"V{next(fake._seq):08d}"
    stored = SlackView(view_id, view, None, str(trigger_id), view.get("external_id"), [view])
    fake._views[view_id] = stored
    return {"view": _view_api(fake, stored)}


def _view_api(fake: FakeSlack, stored: SlackView) -> dict[str, Any]:
    return {
        **stored.view,
        "id": stored.id,
        "team_id": fake.team_id,
        "hash": f"{len(stored.history)}.{stored.id}",
        "state": {"values": {}},
        "app_id": "A0FAKEAPP",
        "bot_id": fake.bot_id,
    }


def _views_update(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    view = params.get("view")
    if not isinstance(view, dict):
        raise SlackApiFailure("invalid_arguments")
    stored: SlackView | None = None
    if params.get("view_id"):
        stored = fake._views.get(str(params["view_id"]))
    elif params.get("external_id"):
        stored = next((v for v in fake._views.values() if v.external_id == params["external_id"]), None)
    if stored is None:
        raise SlackApiFailure("not_found")
    stored.view = view
    stored.history.append(view)
    return {"view": _view_api(fake, stored)}


def _views_publish(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    user = _require(params, "user_id", "invalid_arguments")
    view = params.get("view")
    if not isinstance(view, dict):
        raise SlackApiFailure("invalid_arguments")
    fake._home_views[user] = view
    return {"view": {**view, "id": f"VH{user}", "team_id": fake.team_id}}


def _files_get_upload_url(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    filename = _require(params, "filename", "invalid_arguments")
    length = params.get("length")
    if length in (None, ""):
        raise SlackApiFailure("invalid_arguments")
    file_id = f"F{next(fake._seq):08d}"
    fake._files[file_id] = SlackFile(id=file_id, filename=filename, length=int(length))
    return {"upload_url": f"{fake.url}/upload/{file_id}", "file_id": file_id}


def _files_complete_upload(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    entries = params.get("files")
    if not isinstance(entries, list) or not entries:
        raise SlackApiFailure("invalid_arguments")
    out = []
    for entry in entries:
        upload = fake._files.get(str(entry.get("id")))
        if upload is None or upload.content is None:
            raise SlackApiFailure("file_not_found")
        upload.title = entry.get("title") or upload.filename
        upload.channel = params.get("channel_id") or params.get("channels")
        upload.initial_comment = params.get("initial_comment")
        upload.thread_ts = params.get("thread_ts")
        upload.completed = True
        out.append(_file_api(upload))
    return {"files": out}


def _file_api(upload: SlackFile) -> dict[str, Any]:
    return {
        "id": upload.id,
        "name": upload.filename,
        "title": upload.title,
        "size": len(upload.content or b""),
        "channels": [upload.channel] if upload.channel else [],
        "permalink": f"https://fake-workspace.slack.com/files/{upload.id}",
    }


def _files_info(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    upload = fake._files.get(_require(params, "file", "file_not_found"))
    if upload is None or not upload.completed:
        raise SlackApiFailure("file_not_found")
    return {"file": _file_api(upload)}


_HANDLERS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "api.test": _api_test,
    "auth.test": _auth_test,
    "chat.postMessage": _chat_post_message,
    "chat.update": _chat_update,
    "chat.delete": _chat_delete,
    "chat.postEphemeral": _chat_post_ephemeral,
    "chat.getPermalink": _chat_get_permalink,
    "conversations.replies": _conversations_replies,
    "conversations.history": _conversations_history,
    "conversations.open": _conversations_open,
    "conversations.info": _conversations_info,
    "users.info": _users_info,
    "usergroups.users.list": _usergroups_users_list,
    "usergroups.list": _usergroups_list,
    "views.open": _new_view,
    "views.push": _new_view,
    "views.update": _views_update,
    "views.publish": _views_publish,
    "files.getUploadURLExternal": _files_get_upload_url,
    "files.completeUploadExternal": _files_complete_upload,
    "files.info": _files_info,
}


# ---------------------------------------------------------------- HTTP layer
def _make_handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; every request is recorded instead

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            raw = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            content_type = self.headers.get("Content-Type", "")
            path = parts.path
            if path.startswith("/api/"):
                method = path[len("/api/") :].strip("/")
                try:
                    params = _flatten(parse_qs(parts.query, keep_blank_values=True))
                    params.update(_decode_body(content_type, raw))
                except ValueError:
                    self._send(400, b'{"ok":false,"error":"invalid_json"}', "application/json")
                    return
                status, extra, body = fake._handle_api(method, _decode_json_params(params), headers)
                self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", extra)
            elif path.startswith("/response/") and self.command == "POST":
                status, text, extra = fake._handle_response_url(path[len("/response/") :], raw, content_type, headers)
                self._send(status, text, "text/plain", extra)
            elif path.startswith("/upload/") and self.command == "POST":
                status, text = fake._handle_upload(path[len("/upload/") :], raw)
                self._send(status, text, "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

        do_GET = _dispatch
        do_POST = _dispatch

    return Handler
