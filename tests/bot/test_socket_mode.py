"""Socket Mode end to end: the real `serve` (slack_bolt + slack_sdk's own websocket client) against a
local fake of Slack's Socket Mode endpoint, one replica and two, through reconnects."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import create_engine, text

from tests.support.slack_signing import DEFAULT_TEAM_ID, block_actions_payload
from tests.support.wait import wait_for

APP_TOKEN = "xapp-1-A0FAKEAPP-1-test-app-token"
USER = "U0SOCKET"
_ids = itertools.count(1)


def slash_command(fake_slack, text_: str) -> tuple[dict, str]:
    """The ``payload`` of a ``slash_commands`` envelope: the same fields as the HTTP form body."""
    response_id = f"sm{next(_ids)}"
    return {
        "token": "fake-verification-token",
        "team_id": DEFAULT_TEAM_ID,
        "team_domain": "fake-workspace",
        "channel_id": "C0OPS",
        "channel_name": "ops",
        "user_id": USER,
        "user_name": "socket",
        "command": "/milvus",
        "text": text_,
        "api_app_id": "A0FAKEAPP",
        "is_enterprise_install": "false",
        "response_url": fake_slack.response_url(response_id),
        "trigger_id": f"{response_id}.faketrigger",
    }, response_id


def audit_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM audit_log WHERE user_id = :u"), {"u": USER}).scalar())
    finally:
        engine.dispose()


@pytest.fixture
def start_replica(postgres_url, bot_server, tmp_path):
    """Replicas share one PostgreSQL state store, as several replicas must. (The database is asked
    for first so that it outlives the bots at teardown.)"""

    def start(name: str, config: str | None = None):
        return bot_server(config, env={"SLACK_APP_TOKEN": APP_TOKEN, "MILVUS_CHATOPS_DATABASE_URL": postgres_url},
                          data_dir=tmp_path / name)

    return start


def run_commands(socket_mode, fake_slack, count: int) -> list:
    sent = []
    for i in range(count):
        payload, response_id = slash_command(fake_slack, "whoami" if i % 2 else "help plan")
        sent.append((socket_mode.send("slash_commands", payload), response_id))
    for envelope, response_id in sent:
        socket_mode.wait_for_ack(envelope)
        # Slack shows the user an error when an ack takes longer than 3 s.
        assert envelope.ack_delay_s < 3.0
        fake_slack.wait_for_response(response_id, timeout=30)
    return [envelope for envelope, _ in sent]


def test_one_replica_acks_envelopes_and_answers_through_the_response_url(
    start_replica, fake_socket_mode, fake_slack
):
    bot = start_replica("a")  # ready only once its Socket Mode connection is up
    (conn,) = fake_socket_mode.wait_for_connections(1)
    assert fake_slack.calls("apps.connections.open")[0].token == APP_TOKEN

    payload, response_id = slash_command(fake_slack, "whoami")
    envelope = fake_socket_mode.wait_for_ack(fake_socket_mode.send("slash_commands", payload))
    assert envelope.ack_connection_id == conn.id and envelope.ack_delay_s < 3.0
    reply = fake_slack.wait_for_response(response_id, timeout=30)
    assert USER in reply.all_text()
    assert bot.http.get("/readyz").status_code == 200


def test_reconnects_when_slack_asks_and_when_the_socket_drops(
    start_replica, fake_socket_mode, fake_slack, postgres_url
):
    bot = start_replica("a")
    (first,) = fake_socket_mode.wait_for_connections(1)

    fake_socket_mode.request_reconnect(first)
    (second,) = wait_for(
        lambda: [c for c in fake_socket_mode.connections() if c.id != first.id] if not first.open else None,
        timeout=30, message="the bot did not replace the connection Slack asked it to refresh",
    )
    run_commands(fake_socket_mode, fake_slack, 2)

    fake_socket_mode.drop(second)
    (third,) = wait_for(
        lambda: [c for c in fake_socket_mode.connections() if c.id not in (first.id, second.id)],
        timeout=30, message="the bot did not reconnect after its socket was dropped",
    )
    envelopes = run_commands(fake_socket_mode, fake_slack, 2)
    assert {e.ack_connection_id for e in envelopes} == {third.id}
    assert wait_for(lambda: audit_rows(postgres_url) == 4, timeout=10)
    assert bot.http.get("/readyz").status_code == 200


def test_two_replicas_share_the_envelopes_and_every_command_runs_once(
    start_replica, fake_socket_mode, fake_slack, postgres_url
):
    start_replica("a")
    start_replica("b")
    connections = fake_socket_mode.wait_for_connections(2)

    envelopes = run_commands(fake_socket_mode, fake_slack, 10)
    # Each envelope went to one connection and was acked there; both replicas took a share.
    assert all(e.ack_connection_id == e.connection_id for e in envelopes)
    assert {e.ack_connection_id for e in envelopes} == {c.id for c in connections}
    # Exactly one reply per command, and one audit row each: nothing ran twice.
    posts = fake_slack.responses()
    assert len(posts) == 10 and len({p.response_id for p in posts}) == 10
    assert wait_for(lambda: audit_rows(postgres_url) == 10, timeout=10)
    assert audit_rows(postgres_url) == 10

    # One replica's connection is recycled while the other keeps serving: still once each.
    fake_socket_mode.request_reconnect(connections[0])
    wait_for(lambda: len(fake_socket_mode.connections()) == 2 and not connections[0].open, timeout=30,
             message="the recycled replica did not come back")
    run_commands(fake_socket_mode, fake_slack, 4)
    assert len(fake_slack.responses()) == 14
    assert wait_for(lambda: audit_rows(postgres_url) == 14, timeout=10)


def test_a_button_press_over_socket_mode_opens_the_form(start_replica, fake_socket_mode, fake_slack, tmp_path):
    start_replica("a", config=(
        f"environments:\n  local:\n    milvus: {{uri: '{tmp_path / 'milvus.db'}'}}\n"
        f"access:\n  - {{role: viewer, users: [{USER}]}}\n"
    ))
    fake_socket_mode.wait_for_connections(1)
    payload = block_actions_payload(
        "plan_prefill", json.dumps({"vectors": "10M", "dim": 768}), user_id=USER,
        response_url=fake_slack.response_url("sm-button"), trigger_id="sm-button.faketrigger",
    )
    envelope = fake_socket_mode.wait_for_ack(fake_socket_mode.send("interactive", payload))
    assert envelope.ack_delay_s < 3.0
    call = fake_slack.wait_for_call("views.open", timeout=30)
    assert call.params["trigger_id"] == "sm-button.faketrigger"
    assert call.params["view"]["callback_id"] == "plan_modal"


def test_socket_mode_needs_no_signing_secret_and_then_refuses_unsigned_http(
    start_replica, bot_server, fake_socket_mode, fake_slack, postgres_url, tmp_path
):
    """Socket Mode requests come over the connection the app token opens; the signing secret only
    guards /slack/events, which without it answers 503 rather than trust an unsigned request."""
    bot = bot_server(None, env={"SLACK_APP_TOKEN": APP_TOKEN, "SLACK_SIGNING_SECRET": "",
                                "MILVUS_CHATOPS_DATABASE_URL": postgres_url}, data_dir=tmp_path / "nosecret")
    fake_socket_mode.wait_for_connections(1)
    payload, response_id = slash_command(fake_slack, "whoami")
    envelope = fake_socket_mode.wait_for_ack(fake_socket_mode.send("slash_commands", payload))
    assert envelope.ack_delay_s < 3.0
    assert USER in fake_slack.wait_for_response(response_id, timeout=30).all_text()
    refused = bot.http.post("/slack/events", content=b"command=%2Fmilvus&text=whoami",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 503 and "SLACK_SIGNING_SECRET" in refused.text
