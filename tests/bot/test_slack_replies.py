"""Replies that Slack's response_url refuses at first (429 with Retry-After, 5xx) still arrive, and the
bot's log says what happened: the real `serve` against the fake Slack."""

from __future__ import annotations

import pytest

from tests.support.bot_server import BotServer
from tests.support.wait import wait_for

ADMIN = "ULOCALOPERATOR"


@pytest.fixture(scope="module")
def bot(fake_slack_server, tmp_path_factory):
    server = BotServer(tmp_path_factory.mktemp("bot"), fake_slack_server.url, None, {})
    server.start()
    yield server
    server.close()


def delivered(fake_slack, response_id):
    return fake_slack.wait_for_response(response_id, lambda p: p.http_status == 200, timeout=30)


def test_a_rate_limited_reply_is_sent_again_after_retry_after(bot, fake_slack):
    fake_slack.fail_next("response_url", status=429, retry_after=2, times=1)
    bot.slack.slash_command("whoami", user_id=ADMIN, response_url=fake_slack.response_url("limited"))
    reply = delivered(fake_slack, "limited")
    first, *_ = fake_slack.responses("limited")
    assert first.http_status == 429 and "admin" in reply.all_text()
    assert reply.at - first.at >= 1.9  # Slack asked for two seconds
    wait_for(lambda: "reply via response_url failed (HTTP 429); attempt 1, retrying in 2 s" in bot.log(), timeout=5)


def test_a_reply_refused_with_server_errors_is_retried_until_it_lands(bot, fake_slack):
    fake_slack.fail_next("response_url", status=500, times=2)
    bot.slack.slash_command("whoami", user_id=ADMIN, response_url=fake_slack.response_url("flaky"))
    delivered(fake_slack, "flaky")
    assert [p.http_status for p in fake_slack.responses("flaky")] == [500, 500, 200]
    assert "reply via response_url failed (HTTP 500); attempt 2" in bot.log()
