"""The outbox against the FAKE Slack Web API: order, rate limits, retries, restarts."""

from __future__ import annotations

import itertools
import time

import pytest
from slack_sdk import WebClient
from sqlalchemy import select, update

from bot import schema
from bot.outbox import Outbox
from bot.reply import Attachment, Message
from bot.state import Store
from tests.support.wait import wait_for


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    return store


@pytest.fixture
def client(fake_slack):
    return WebClient(token="xoxb-test", base_url=fake_slack.api_url, timeout=5)


@pytest.fixture
def outbox(store, client):
    box = Outbox(store, client)
    yield box
    box.stop()


def texts(fake_slack, channel):
    return [m.text for m in fake_slack.messages(channel)]


def test_messages_reach_slack_in_order_and_updates_apply_in_place(outbox, fake_slack):
    outbox.start()
    ref = outbox.post("C1", Message("first"), ref="group:1")
    outbox.post("C1", Message("second"))
    outbox.update(ref, Message("first, resolved"))
    outbox.post("C1", Message("in the thread"), thread_ref=ref)
    wait_for(lambda: outbox.pending() == 0, timeout=15)
    top = fake_slack.messages("C1")
    assert [m.text for m in top] == ["first, resolved", "second"]
    assert [m.text for m in fake_slack.replies("C1", top[0].ts)] == ["in the thread"]


def test_posts_to_one_channel_are_spaced_a_second_apart(outbox, fake_slack):
    outbox.start()
    for i in range(3):
        outbox.post("C2", Message(f"m{i}"))
    wait_for(lambda: len(fake_slack.messages("C2")) == 3, timeout=15)
    times = [c.at for c in fake_slack.calls("chat.postMessage") if c.params.get("channel") == "C2"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.95 for gap in gaps), gaps


def test_a_429_waits_retry_after_and_nothing_is_dropped(outbox, fake_slack):
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=2, times=1)
    outbox.start()
    started = time.time()
    outbox.post("C3", Message("after the rate limit"))
    message = fake_slack.wait_for_message("C3", lambda m: m.text == "after the rate limit", timeout=15)
    assert message is not None
    attempts = [c for c in fake_slack.calls("chat.postMessage") if c.params.get("channel") == "C3"]
    assert [c.http_status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.9
    assert time.time() - started < 10


def test_server_errors_are_retried_with_backoff(outbox, fake_slack):
    fake_slack.fail_next("chat.postMessage", status=500, times=2)
    outbox.start()
    outbox.post("C4", Message("eventually"))
    fake_slack.wait_for_message("C4", lambda m: m.text == "eventually", timeout=20)
    assert len(texts(fake_slack, "C4")) == 1


def test_a_dedupe_key_posts_once_however_often_it_is_queued(outbox, fake_slack):
    first = outbox.post("C5", Message("once"), dedupe_key="alert:abc")
    second = outbox.post("C5", Message("once"), dedupe_key="alert:abc")
    assert first == second
    outbox.start()
    fake_slack.wait_for_message("C5", lambda m: m.text == "once")
    wait_for(lambda: outbox.pending() == 0)
    assert texts(fake_slack, "C5") == ["once"]


def test_a_crash_after_slack_accepted_does_not_post_twice(store, client, fake_slack):
    """The row was in flight (attempted) when the process died; Slack already has the message."""
    first = Outbox(store, client)
    ref = first.post("C6", Message("posted before the crash"), ref="crash:1")
    # What a crash between Slack's answer and our commit leaves behind: the post exists in Slack
    # (with our ref in its metadata) and the row is still pending with one attempt.
    client.chat_postMessage(
        channel="C6",
        text="posted before the crash",
        metadata={"event_type": "milvus_chatops_message", "event_payload": {"ref": ref}},
    )
    with store.begin() as conn:
        conn.execute(update(schema.outbox).values(attempts=1))
    restarted = Outbox(store, client)
    restarted.start()
    try:
        wait_for(lambda: restarted.pending() == 0, timeout=10)
    finally:
        restarted.stop()
    assert texts(fake_slack, "C6") == ["posted before the crash"]
    assert restarted.ts_of(ref) == ("C6", fake_slack.messages("C6")[0].ts)


def test_a_channel_that_does_not_exist_fails_that_message_only(outbox, fake_slack, store):
    fake_slack.fail_next("chat.postMessage", status=200, error="channel_not_found", times=1)
    outbox.post("CGONE", Message("lost cause"))
    outbox.post("C7", Message("still delivered"))
    outbox.start()
    fake_slack.wait_for_message("C7", lambda m: m.text == "still delivered")
    wait_for(lambda: outbox.pending() == 0)
    with store.begin() as conn:
        row = conn.execute(select(schema.outbox).where(schema.outbox.c.channel == "CGONE")).mappings().one()
    assert (row["state"], row["last_error"]) == ("failed", "channel_not_found")


def test_files_are_uploaded_with_files_upload_v2(outbox, fake_slack):
    outbox.start()
    outbox.upload("C8", [Attachment("chart.png", b"\x89PNG fake bytes", "Memory")], comment="charts")
    wait_for(lambda: fake_slack.files(), timeout=10)
    uploaded = fake_slack.files()[0]
    assert uploaded.filename == "chart.png"
    assert fake_slack.calls("files.completeUploadExternal")


def test_oversized_messages_are_fitted_to_slack_limits_not_rejected(outbox, fake_slack):
    from bot import blocks as bk

    many = [bk.section(f"line {i} " + "x" * 200) for i in range(120)]
    outbox.start()
    outbox.post("C9", Message("big", many))
    message = fake_slack.wait_for_message("C9", lambda m: m.text == "big")
    assert len(message.blocks) <= 50
    assert "more block(s) not shown" in message.all_text()


def test_a_higher_priority_post_overtakes_the_queue_of_its_channel_and_equal_ones_keep_their_order(
    outbox, fake_slack
):
    for i in range(5):
        outbox.post("C10", Message(f"warning {i}"), priority=10)
    outbox.start()
    fake_slack.wait_for_message("C10", lambda m: m.text == "warning 0", timeout=10)
    outbox.post("C10", Message("critical"), priority=20)
    outbox.post("C10", Message("ordinary"))
    wait_for(lambda: len(fake_slack.messages("C10")) == 7, timeout=20)
    # The first warning was on its way already; the critical one goes next, the ordinary one last.
    assert texts(fake_slack, "C10") == [
        "warning 0", "critical", "warning 1", "warning 2", "warning 3", "warning 4", "ordinary",
    ]
    times = [c.at for c in fake_slack.calls("chat.postMessage") if c.params.get("channel") == "C10"]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))


def test_an_urgent_reply_or_update_waits_for_the_post_it_belongs_to(outbox, fake_slack):
    outbox.post("C11", Message("queued first"), priority=10)
    parent = outbox.post("C11", Message("parent"), ref="parent:1")
    outbox.post("C11", Message("urgent reply"), thread_ref=parent, priority=30)
    outbox.update(parent, Message("parent, updated"))
    outbox.start()
    wait_for(lambda: outbox.pending() == 0, timeout=20)
    top = fake_slack.messages("C11")
    assert [m.text for m in top] == ["queued first", "parent, updated"]
    assert [m.text for m in fake_slack.replies("C11", top[1].ts)] == ["urgent reply"]


def test_a_429_on_an_urgent_post_still_waits_retry_after_for_the_whole_channel(outbox, fake_slack):
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=2, times=1)
    outbox.post("C12", Message("urgent"), priority=20)
    outbox.post("C12", Message("routine"))
    outbox.start()
    wait_for(lambda: len(fake_slack.messages("C12")) == 2, timeout=20)
    assert texts(fake_slack, "C12") == ["urgent", "routine"]
    attempts = [c for c in fake_slack.calls("chat.postMessage") if c.params.get("channel") == "C12"]
    assert [c.http_status for c in attempts] == [429, 200, 200]
    assert attempts[1].at - attempts[0].at >= 1.9


def test_a_store_from_before_priorities_is_migrated_and_its_queue_still_drains(tmp_path, client, fake_slack):
    from sqlalchemy import inspect

    from bot.migrations import upgrade

    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    # What a store created by the previous release looks like: no priority column, one row queued.
    upgrade(store.engine, target="0006_backups")
    with store.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO outbox (channel, op, ref, payload, state, attempts, not_before, created_at) "
            "VALUES ('C13', 'post', 'old:1', '{\"text\": \"queued before the upgrade\", \"blocks\": []}', "
            "'pending', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    assert store.migrate()[0] == "0007_outbox_priority"
    with store.begin() as conn:
        assert "priority" in {c["name"] for c in inspect(conn).get_columns("outbox")}
    box = Outbox(store, client)
    box.post("C13", Message("urgent after the upgrade"), priority=20)
    box.start()
    try:
        wait_for(lambda: box.pending() == 0, timeout=15)
    finally:
        box.stop()
    assert texts(fake_slack, "C13") == ["urgent after the upgrade", "queued before the upgrade"]


def test_routine_updates_leave_tokens_for_an_update_that_first_shows_something_urgent(outbox, fake_slack):
    # A storm queues many routine updates (digests, growing groups); the update that first shows a
    # critical group must not wait a quarter of a second per token behind them.
    from bot.outbox import PRIORITY_URGENT, UPDATE_BURST

    routine = UPDATE_BURST + 1
    refs = _posted(outbox, "C2", routine + 1)
    # The routine backlog is all there when sending starts, as in a storm.
    for ref in refs[:routine]:
        outbox.update(ref, Message(f"{ref}, routine update"))
    outbox.start()
    wait_for(lambda: len(fake_slack.calls("chat.update")) >= 3, timeout=10)
    outbox.update(refs[routine], Message("urgent: a critical group is waiting"), priority=PRIORITY_URGENT)
    wait_for(lambda: outbox.pending() == 0, timeout=30)
    updates = _update_texts(fake_slack)
    assert len(updates) == routine + 1
    # Spending the whole burst on routine updates would leave the urgent one waiting for a refill
    # behind all of them; it goes out while the routine ones wait.
    assert updates.index("urgent: a critical group is waiting") < UPDATE_BURST, updates


def test_an_urgent_update_queued_while_a_pass_sends_routine_ones_goes_next(outbox, fake_slack):
    # A pass plans its rows, then sends them one by one; the update that first shows a critical alert,
    # queued meanwhile, must not wait for the rest of the pass.
    from bot.outbox import PRIORITY_URGENT

    routine = 8
    refs = _posted(outbox, "C3", routine + 1)
    fake_slack.answer_slowly("chat.update", 0.1, times=routine)  # each routine update takes a while
    for ref in refs[:routine]:
        outbox.update(ref, Message(f"{ref}, routine update"))
    outbox.start()
    wait_for(lambda: len(fake_slack.calls("chat.update")) >= 1, timeout=10)
    outbox.update(refs[routine], Message("urgent: a critical group is waiting"), priority=PRIORITY_URGENT)
    wait_for(lambda: outbox.pending() == 0, timeout=30)
    updates = _update_texts(fake_slack)
    assert len(updates) == routine + 1
    assert updates.index("urgent: a critical group is waiting") <= 2, updates


def _posted(outbox, channel_prefix: str, count: int) -> list[str]:
    """Refs of ``count`` messages, one per channel, all in Slack; the outbox is left stopped, so
    what is queued next is all there when it starts again."""
    outbox.start()
    refs = [outbox.post(f"{channel_prefix}{i:02d}", Message(f"message {i}"), ref=f"{channel_prefix}:{i}")
            for i in range(count)]
    wait_for(lambda: outbox.pending() == 0, timeout=30)
    outbox.stop()
    return refs


def _update_texts(fake_slack) -> list[str]:
    return [c.params.get("text") or "" for c in fake_slack.calls("chat.update")]
