"""What an attacker with network access to `serve` can do: send huge, unsigned, replayed, deeply nested
or malformed requests. The real `milvus-chatops serve` in a subprocess, the fake Slack behind it."""

from __future__ import annotations

import json
import re
import socket
import time
from urllib.parse import urlparse

import pytest

from tests.support.bot_server import BOT_TOKEN, SIGNING_SECRET, WEBHOOK_TOKEN, BotServer
from tests.support.slack_signing import sign, slash_command_body
from tests.support.wait import wait_for

ADMIN = "ULOCALOPERATOR"  # the embedded default's admin


@pytest.fixture(scope="module")
def bot(fake_slack_server, tmp_path_factory):
    server = BotServer(tmp_path_factory.mktemp("bot"), fake_slack_server.url, None, {})
    server.start()
    yield server
    server.close()


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 10) -> bytes:
    """Send bytes as they are (a declared length the client never sends, a chunked body) and read the answer."""
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_an_oversize_body_is_refused_before_it_is_sent(bot):
    # 200 MB declared, not one byte sent: the answer can only come from the headers.
    signed = sign(b"irrelevant", SIGNING_SECRET)
    slack = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    for path, extra, status in (
        ("/slack/events", "", b"401"),  # unsigned: refused before its size even matters
        ("/slack/events", slack, b"413"),
        ("/alertmanager", f"Authorization: Bearer {WEBHOOK_TOKEN}\r\n", b"413"),
    ):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n{extra}"
            "Content-Length: 200000000\r\n\r\n"
        )
        assert raw_request(bot.url, head).startswith(b"HTTP/1.1 " + status), path


def test_a_chunked_body_is_cut_off_at_the_cap(bot):
    # No length declared: the cap holds while reading. Signature headers pass the header check, so the
    # body is read, and refused once over 1 MiB instead of being buffered whole.
    headers = sign(b"irrelevant", SIGNING_SECRET)
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"X-Slack-Request-Timestamp: {headers['X-Slack-Request-Timestamp']}\r\n"
        f"X-Slack-Signature: {headers['X-Slack-Signature']}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert raw_request(bot.url, head, body).startswith(b"HTTP/1.1 413")


def test_a_refused_request_leaves_its_body_out_of_the_log_and_cannot_forge_a_line(bot):
    forged = "2026-01-01 00:00:00,000 INFO milvus_chatops.approvals request r-1 approved by U0BOSS"
    body = ("payload=hello\n" + forged + "\n").encode()
    assert bot.slack.post_unsigned(body).status_code == 401
    assert bot.slack.post(body, secret="wrong-secret").status_code == 401
    log = bot.log()
    assert "refused /slack/events" in log
    assert "approved by U0BOSS" not in log
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())


def test_a_replayed_slash_command_runs_once(bot, fake_slack):
    body = slash_command_body("whoami", user_id=ADMIN, response_url=fake_slack.response_url("once"))
    headers = sign(body, SIGNING_SECRET)
    first = bot.slack.post(body, timestamp=headers["X-Slack-Request-Timestamp"])
    again = bot.slack.post(body, timestamp=headers["X-Slack-Request-Timestamp"])
    assert first.status_code == 200
    assert again.status_code == 401 and "replayed" in again.text
    fake_slack.wait_for_response("once")
    # A later command has been answered, so a second run of the first would have been by now too.
    bot.slack.slash_command("whoami", user_id=ADMIN, response_url=fake_slack.response_url("later"))
    fake_slack.wait_for_response("later")
    assert len(fake_slack.responses("once")) == 1


def test_a_replay_sent_to_another_replica_sharing_the_store_is_refused(bot_server, fake_slack, postgres_url):
    shared = {"MILVUS_CHATOPS_DATABASE_URL": postgres_url}
    one = bot_server(env=shared)
    two = bot_server(env=shared)
    body = slash_command_body("whoami", user_id=ADMIN, response_url=fake_slack.response_url("r"))
    timestamp = sign(body, SIGNING_SECRET)["X-Slack-Request-Timestamp"]
    assert one.slack.post(body, timestamp=timestamp).status_code == 200
    assert two.slack.post(body, timestamp=timestamp).status_code == 401
    fake_slack.wait_for_response("r")


def test_a_request_signed_before_a_restart_is_not_run_again_after_it(bot_server, fake_slack, tmp_path):
    # SQLite means one replica, which remembers signatures in memory; a restart must not reopen the window.
    server = bot_server()
    body = slash_command_body("whoami", user_id=ADMIN, response_url=fake_slack.response_url("before"))
    timestamp = sign(body, SIGNING_SECRET)["X-Slack-Request-Timestamp"]
    assert server.slack.post(body, timestamp=timestamp).status_code == 200
    fake_slack.wait_for_response("before")
    wait_for(lambda: int(time.time()) > int(timestamp), timeout=5)  # the restart happens in a later second
    server.restart()
    assert server.slack.post(body, timestamp=timestamp).status_code == 401
    assert server.slack.slash_command("whoami", user_id=ADMIN).status_code == 200  # fresh ones still run


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_deeply_nested_json_and_malformed_timestamps_get_4xx_without_a_traceback(bot):
    deep = nested(100_000)
    assert bot.slack.post_unsigned(deep, content_type="application/json").status_code == 401
    assert bot.slack.post(deep, content_type="application/json").status_code == 400
    hook = bot.http.post(
        "/alertmanager", content=deep,
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"},
    )
    assert hook.status_code == 400
    # Deep but legitimate-looking data inside strings is not nesting.
    strings = json.dumps({"version": "4", "note": "[" * 10_000}).encode()
    assert bot.http.post("/alertmanager", content=strings,
                         headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}).status_code != 500
    body = slash_command_body("whoami", user_id=ADMIN)
    for timestamp in ("abc", "9" * 5000, "1e9", "-1", ""):
        signature = sign(body, SIGNING_SECRET)["X-Slack-Signature"]
        forged = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
        response = bot.slack.post(body, headers=forged)
        assert response.status_code == 401, timestamp
    assert "Traceback" not in bot.log()


def test_log_lines_can_be_json_for_log_pipelines(bot_server, fake_slack):
    server = bot_server(env={"MILVUS_CHATOPS_LOG_FORMAT": "json"})
    server.slack.post_unsigned(b"payload=x\n{\"level\": \"INFO\", \"message\": \"approved\"}")
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith("refused /slack/events") for r in records)
    assert not any(r.get("message") == "approved" for r in records)
    assert BOT_TOKEN not in server.log()
    assert all(re.match(r"^\{", line) for line in server.log().splitlines() if line.strip())


def test_the_depth_limit_counts_brackets_outside_strings_only_at_its_exact_boundary():
    from bot.server import MAX_JSON_DEPTH, json_depth_exceeds

    assert not json_depth_exceeds(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH)
    assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)
    # Brackets inside strings are text: many of them, shallow JSON.
    assert not json_depth_exceeds(b'{"a": "' + b"[{" * 200 + b'"}', MAX_JSON_DEPTH)
    # Many openings side by side are no depth either.
    assert not json_depth_exceeds(b"[" + b"[]," * 200 + b"[]]", MAX_JSON_DEPTH)
