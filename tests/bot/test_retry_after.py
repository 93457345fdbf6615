"""Retry-After as servers really send it (an HTTP date, absurdly large) against the outbox and the fake Slack."""

from __future__ import annotations

import email.utils
import logging
import time

import pytest
from slack_sdk import WebClient

from bot.outbox import Outbox
from bot.reply import Message
from bot.state import Store
from tests.support.wait import wait_for


@pytest.fixture
def outbox(fake_slack, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    box = Outbox(store, WebClient(token="xoxb-test", base_url=fake_slack.api_url, timeout=5))
    yield box
    box.stop()


def test_a_retry_after_given_as_an_http_date_is_obeyed(outbox, fake_slack, caplog):
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=when, times=1)  # type: ignore[arg-type]
    outbox.start()
    outbox.post("C1", Message("later"))
    fake_slack.wait_for_message("C1", lambda m: m.text == "later", timeout=20)
    attempts = [c for c in fake_slack.calls("chat.postMessage") if c.params.get("channel") == "C1"]
    # One retry, after the date (HTTP dates have whole seconds), not one a second.
    assert [c.http_status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.5
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_huge_retry_after_is_capped_not_a_crash_loop(outbox, fake_slack, caplog):
    caplog.set_level(logging.INFO, logger="milvus_chatops.outbox")
    fake_slack.fail_next("chat.postMessage", status=429, retry_after="1e400", times=1)  # type: ignore[arg-type]
    outbox.start()
    outbox.post("C2", Message("parked"))
    wait_for(lambda: any("delayed 900.0s" in r.getMessage() for r in caplog.records), timeout=10)
    assert len([c for c in fake_slack.calls("chat.postMessage") if c.params.get("channel") == "C2"]) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
