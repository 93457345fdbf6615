"""Requests built here are the ones Slack sends: slack_sdk verifies the signature and Bolt routes them."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from tests.support.fake_slack import FakeSlack
from tests.support.slack_signing import (
    block_action_body,
    sign,
    slash_command_body,
    view_submission_body,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def test_signature_verifies_with_slack_sdk_and_breaks_on_tampering() -> None:
    body = slash_command_body("status prod", user_id="U1")
    headers = sign(body, SECRET)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert not verifier.is_valid(body + b"x", headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert not SignatureVerifier("other").is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    stale = sign(body, SECRET, timestamp=int(time.time()) - 301)
    assert not verifier.is_valid(body, stale["X-Slack-Request-Timestamp"], stale["X-Slack-Signature"])


def test_known_vector_from_slacks_documentation() -> None:
    # The worked example in Slack's "Verifying requests from Slack" guide.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = sign(body, SECRET, timestamp=1531420618)
    assert headers["X-Slack-Signature"] == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def _dispatch(app: App, body: bytes) -> Any:
    headers: dict[str, str | Sequence[str]] = {k: [v] for k, v in sign(body, SECRET).items()}
    headers["content-type"] = ["application/x-www-form-urlencoded"]
    return app.dispatch(BoltRequest(body=body.decode(), headers=headers))


def test_bolt_routes_each_body_to_the_right_listener_with_slacks_fields(fake_slack: FakeSlack) -> None:
    # Bolt authorizes each request with auth.test: point it at the fake.
    client = WebClient(token="xoxb-fake", base_url=fake_slack.api_url)
    app = App(signing_secret=SECRET, client=client, token_verification_enabled=False)
    seen: dict[str, Any] = {}

    @app.command("/milvus")
    def on_command(ack: Any, command: dict[str, Any]) -> None:
        seen["command"] = command
        ack()

    @app.action("approve")
    def on_action(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        seen["action"] = (body, action)
        ack()

    @app.view("deploy_modal")
    def on_view(ack: Any, view: dict[str, Any]) -> None:
        seen["view"] = view
        ack()

    assert _dispatch(app, slash_command_body("plan 10M 768", user_id="U1", channel_id="C9")).status == 200
    assert seen["command"]["text"] == "plan 10M 768" and seen["command"]["user_id"] == "U1"
    assert seen["command"]["channel_id"] == "C9" and seen["command"]["trigger_id"]

    body = block_action_body("approve", "req-42", user_id="U2", channel_id="C9", message_ts="171.000200")
    assert _dispatch(app, body).status == 200
    payload, action = seen["action"]
    assert action["value"] == "req-42" and payload["user"]["id"] == "U2"
    assert payload["container"]["message_ts"] == "171.000200" and payload["channel"]["id"] == "C9"

    body = view_submission_body("deploy_modal", {"env": {"name": "prod"}}, private_metadata='{"req": 1}')
    assert _dispatch(app, body).status == 200
    assert seen["view"]["state"]["values"]["env"]["name"]["value"] == "prod"
    assert json.loads(seen["view"]["private_metadata"]) == {"req": 1}

    forged = slash_command_body("plan", user_id="U1")
    signed: dict[str, str | Sequence[str]] = {k: [v] for k, v in sign(forged, "wrong-secret").items()}
    signed["content-type"] = ["application/x-www-form-urlencoded"]
    assert app.dispatch(BoltRequest(body=forged.decode(), headers=signed)).status == 401


def test_interactivity_bodies_are_a_single_payload_form_field() -> None:
    fields = parse_qs(block_action_body("approve", "v").decode())
    assert list(fields) == ["payload"]
    assert json.loads(fields["payload"][0])["type"] == "block_actions"
