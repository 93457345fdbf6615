"""Build and sign requests exactly as Slack sends them to ``POST /slack/events``.

Slack signs each request with ``X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:{timestamp}:{raw body}">`` and ``X-Slack-Request-Timestamp``.  Slash
commands arrive form-encoded; interactivity (buttons, modals) arrives as a
form with one ``payload`` field holding JSON; the Events API sends JSON.
Bodies here follow those shapes so the bot's Bolt app parses them as it would
Slack's.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx

DEFAULT_TEAM_ID = "T0FAKE"
DEFAULT_USER_ID = "U0TESTER"
DEFAULT_CHANNEL_ID = "C0OPS"
DEFAULT_APP_ID = "A0FAKEAPP"
# Not a secret: the legacy verification token field Slack still sends.
_VERIFICATION_TOKEN = "fake-verification-token"
_counter = itertools.count(1)


def _trigger_id() -> str:
    return f"{int(time.time())}.{next(_counter)}.faketrigger"


def sign(body: bytes, secret: str, timestamp: int | str | None = None) -> dict[str, str]:
    """Headers Slack adds to a request with this body.

    ``timestamp`` defaults to now; pass an old one to test the replay window.
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def slash_command_body(
    text: str,
    *,
    user_id: str = DEFAULT_USER_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    response_url: str = "http://127.0.0.1:9/response/unused",
    team_id: str = DEFAULT_TEAM_ID,
    trigger_id: str | None = None,
    command: str = "/milvus",
    user_name: str | None = None,
    channel_name: str = "ops",
) -> bytes:
    """A slash command body, form-encoded in the field order Slack uses."""
    fields = {
        "token": _VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": "fake-workspace",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": DEFAULT_APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    }
    return urlencode(fields).encode()


def _user(user_id: str, team_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id}


def block_actions_payload(
    action_id: str,
    value: str | None = None,
    *,
    user_id: str = DEFAULT_USER_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    message_ts: str = "1700000000.000100",
    response_url: str = "http://127.0.0.1:9/response/unused",
    block_id: str = "actions",
    team_id: str = DEFAULT_TEAM_ID,
    trigger_id: str | None = None,
    message: dict[str, Any] | None = None,
    action_type: str = "button",
    selected_option: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``block_actions`` payload Slack sends when a button in a message is pressed."""
    now = f"{time.time():.6f}"
    action: dict[str, Any] = {"action_id": action_id, "block_id": block_id, "type": action_type, "action_ts": now}
    if value is not None:
        action["value"] = value
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": action_id, "emoji": True}
    if selected_option is not None:
        action["selected_option"] = selected_option
    return {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": DEFAULT_APP_ID,
        "token": _VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": "fake-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "ops"},
        "message": message or {"type": "message", "ts": message_ts, "text": "", "user": "U0FAKEBOT"},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def block_action_body(
    action_id: str,
    value: str | None = None,
    *,
    user_id: str = DEFAULT_USER_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    message_ts: str = "1700000000.000100",
    response_url: str = "http://127.0.0.1:9/response/unused",
    block_id: str = "actions",
    **extra: Any,
) -> bytes:
    """A button press as Slack posts it: ``payload=<json>`` form-encoded."""
    payload = block_actions_payload(
        action_id,
        value,
        user_id=user_id,
        channel_id=channel_id,
        message_ts=message_ts,
        response_url=response_url,
        block_id=block_id,
        **extra,
    )
    return urlencode({"payload": json.dumps(payload)}).encode()


def view_state_values(values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Expand ``{block_id: {action_id: "text"}}`` into Slack's view state shape.

    A plain string becomes a ``plain_text_input`` value; a dict is used as is
    (e.g. ``{"type": "static_select", "selected_option": {...}}``).
    """
    out: dict[str, dict[str, Any]] = {}
    for block_id, actions in values.items():
        out[block_id] = {}
        for action_id, value in actions.items():
            if isinstance(value, dict):
                out[block_id][action_id] = value
            else:
                out[block_id][action_id] = {"type": "plain_text_input", "value": value}
    return out


def view_submission_payload(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    *,
    user_id: str = DEFAULT_USER_ID,
    private_metadata: str = "",
    view_id: str = "V0FAKEVIEW",
    team_id: str = DEFAULT_TEAM_ID,
    trigger_id: str | None = None,
    title: str = "Milvus",
    blocks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``view_submission`` payload Slack sends when a modal is submitted."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "fake-workspace"},
        "user": _user(user_id, team_id),
        "api_app_id": DEFAULT_APP_ID,
        "token": _VERIFICATION_TOKEN,
        "trigger_id": trigger_id or _trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "title": {"type": "plain_text", "text": title},
            "blocks": blocks or [],
            "state": {"values": view_state_values(values)},
            "hash": "1.fakehash",
            "app_id": DEFAULT_APP_ID,
            "bot_id": "B0FAKEBOT",
            "external_id": "",
            "root_view_id": view_id,
            "previous_view_id": None,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission_body(callback_id: str, values: dict[str, dict[str, Any]], **kwargs: Any) -> bytes:
    """A modal submission as Slack posts it: ``payload=<json>`` form-encoded."""
    payload = view_submission_payload(callback_id, values, **kwargs)
    return urlencode({"payload": json.dumps(payload)}).encode()


def event_body(event: dict[str, Any], *, team_id: str = DEFAULT_TEAM_ID) -> bytes:
    """An Events API ``event_callback`` JSON body wrapping ``event``."""
    body = {
        "token": _VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": DEFAULT_APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{next(_counter):08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "U0FAKEBOT", "is_bot": True}],
    }
    return json.dumps(body).encode()


FORM = "application/x-www-form-urlencoded"


class SignedSlackClient:
    """Posts signed Slack requests to the bot's ``/slack/events``.

    Each helper returns the ``httpx.Response`` so tests can assert on the
    ack (status within Slack's 3 s, body) as Slack would see it.
    """

    def __init__(self, base_url: str, secret: str, *, path: str = "/slack/events", timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.path = path
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SignedSlackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def post(
        self,
        body: bytes,
        *,
        content_type: str = FORM,
        timestamp: int | str | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Sign ``body`` (with another ``secret`` or an old ``timestamp`` to test rejection) and post it."""
        sent = {"Content-Type": content_type, **sign(body, secret or self.secret, timestamp)}
        sent.update(headers or {})
        return self._http.post(self.path, content=body, headers=sent)

    def post_unsigned(
        self, body: bytes, *, content_type: str = FORM, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self._http.post(self.path, content=body, headers={"Content-Type": content_type, **(headers or {})})

    def slash_command(self, text: str, **kwargs: Any) -> httpx.Response:
        return self.post(slash_command_body(text, **kwargs))

    def block_action(self, action_id: str, value: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.post(block_action_body(action_id, value, **kwargs))

    def view_submission(self, callback_id: str, values: dict[str, dict[str, Any]], **kwargs: Any) -> httpx.Response:
        return self.post(view_submission_body(callback_id, values, **kwargs))

    def event(self, event: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.post(event_body(event, **kwargs), content_type="application/json")
