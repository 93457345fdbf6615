"""Alert intake, grouping and the messages in Slack: real SQLite store, real outbox, FakeSlack."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from bot import schema
from commands.alerts.groups import channel_for, resolve_environment
from commands.alerts.worker import AlertWorker
from tests.commands.alerts.helpers import (
    TOKEN,
    alert,
    deliver,
    make_runtime,
    notification,
    resolved,
)
from tests.support.wait import wait_for


@pytest.fixture
def bot(tmp_path, fake_slack):
    runtime, outbox = make_runtime(tmp_path / "data", fake_slack.api_url)
    worker = AlertWorker(runtime, poll_interval=0.05)
    outbox.start()
    worker.start()
    yield runtime
    worker.stop()
    outbox.stop()


def stored(runtime) -> int:
    with runtime.store.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.alert_notifications)).scalar_one())


def refs_in(fake_slack, channel=None) -> list[str]:
    """The outbox tags each post with its ref in message metadata: duplicates show up here."""
    out = []
    for call in fake_slack.calls("chat.postMessage"):
        if call.ok and (channel is None or call.params.get("channel") == channel):
            metadata = call.params.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            out.append(metadata["event_payload"]["ref"])
    return out


# -- intake -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing bearer token"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401, "missing bearer token"),
        ({"Authorization": "Bearer wrong-token"}, 403, "wrong bearer token"),
    ],
)
def test_wrong_or_missing_token_is_refused_and_nothing_is_stored(tmp_path, fake_slack, headers, status, reason):
    runtime, _ = make_runtime(tmp_path / "d", fake_slack.api_url)
    from commands.alerts.intake import AlertIntake

    code, body = AlertIntake(runtime).handle(headers, json.dumps(notification([alert()])).encode())
    assert code == status and body["error"].startswith(reason)
    assert stored(runtime) == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"[]", "body must be a JSON object"),
        (json.dumps({**notification([alert()]), "version": "3"}).encode(), "unsupported webhook version"),
        (json.dumps({**notification([alert()]), "alerts": []}).encode(), "alerts must be a non-empty list"),
        (json.dumps({**notification([alert()]), "groupKey": ""}).encode(), "groupKey is missing"),
        (json.dumps({**notification([{**alert(), "status": "odd"}])}).encode(), "status must be firing or resolved"),
        (json.dumps({**notification([{**alert(), "labels": {"a": 1}}])}).encode(), "labels values must be strings"),
    ],
)
def test_malformed_webhook_gets_400_with_a_reason_and_changes_nothing(tmp_path, fake_slack, body, reason):
    runtime, _ = make_runtime(tmp_path / "d", fake_slack.api_url)
    code, answer = deliver(runtime, body)
    assert code == 400
    assert reason in answer["error"]
    assert stored(runtime) == 0


def test_without_a_configured_token_every_delivery_is_refused(tmp_path, fake_slack):
    runtime, _ = make_runtime(tmp_path / "d", fake_slack.api_url)
    runtime.settings.alertmanager_webhook_token = None
    code, answer = deliver(runtime, notification([alert()]))
    assert code == 503 and "ALERTMANAGER_WEBHOOK_TOKEN" in answer["error"]
    assert stored(runtime) == 0


def test_the_saved_real_payload_is_accepted_and_a_redelivery_is_a_no_op(tmp_path, fake_slack):
    from pathlib import Path

    runtime, _ = make_runtime(tmp_path / "d", fake_slack.api_url)
    body = (Path(__file__).parent / "alertmanager-webhook-example.json").read_bytes()
    first = deliver(runtime, body)
    again = deliver(runtime, body)
    assert first[0] == 200 and first[1]["status"] == "stored"
    assert again == (200, {"status": "duplicate", "group": first[1]["group"]})
    assert stored(runtime) == 1


# -- routing ----------------------------------------------------------------------------------


def test_environment_comes_from_labels_and_channel_from_severity(tmp_path, fake_slack):
    runtime, _ = make_runtime(tmp_path / "d", fake_slack.api_url)
    config = runtime.config

    def env_of(**labels):
        env = resolve_environment(config, [labels])
        return env.name if env else None

    assert env_of(environment="staging") == "staging"
    assert env_of(env="prod") == "prod"
    assert env_of(app_kubernetes_io_instance="prod-milvus", namespace="milvus") == "prod"
    assert env_of(cluster="prod-milvus") == "prod"
    # Same release name in another namespace is not prod.
    assert env_of(app_kubernetes_io_instance="prod-milvus", namespace="other") is None
    assert env_of(job="node") is None

    prod, staging = config.environments["prod"], config.environments["staging"]
    assert channel_for(config, prod, "critical") == "C0CRIT"
    assert channel_for(config, prod, "emergency") == "C0CRIT"  # no emergency channel: the next most urgent
    assert channel_for(config, prod, "warning") == "C0WARN"
    assert channel_for(config, prod, "info") == "C0DEFAULT"
    assert channel_for(config, staging, "info") == "C0STAGING"  # the environment's own default wins
    assert channel_for(config, staging, "critical") == "C0CRIT"


# -- messages ---------------------------------------------------------------------------------


def test_one_message_per_group_updated_in_place_with_thread_notes_and_green_when_resolved(bot, fake_slack):
    a1 = alert(pod="querynode-0", app_kubernetes_io_instance="prod-milvus", namespace="milvus",
               runbook="x", annotations={"summary": "memory is high", "runbook_url": "https://runbooks.example/mem"})
    a2 = alert(pod="querynode-1", app_kubernetes_io_instance="prod-milvus", namespace="milvus",
               annotations={"summary": "memory is high", "runbook_url": "https://runbooks.example/mem"},
               starts="2026-11-25T12:05:00Z")
    assert deliver(bot, notification([a1]))[0] == 200
    message = fake_slack.wait_for_message("C0CRIT", timeout=10)
    assert "FIRING (1): MilvusHighMemory" in message.all_text()
    assert "<https://runbooks.example/mem|Runbook>" in message.all_text()
    assert "Acknowledge" in json.dumps(message.blocks)

    deliver(bot, notification([a1, a2]))
    wait_for(lambda: "FIRING (2)" in fake_slack.message("C0CRIT", message.ts).all_text(), timeout=10)
    deliver(bot, notification([resolved(a1), resolved(a2, ends="2026-11-25T13:30:00Z")]))
    final = wait_for(
        lambda: (m := fake_slack.message("C0CRIT", message.ts)) and "RESOLVED" in m.all_text() and m,
        timeout=10,
    )
    text = final.all_text()
    assert ":large_green_circle: *Resolved*" in text and "after 1h 29m" in text, text  # 12:00:00.12 to 13:30
    assert "Acknowledge" not in json.dumps(final.blocks)  # nothing left to acknowledge
    notes = wait_for(lambda: len(r := fake_slack.replies("C0CRIT", message.ts)) == 2 and r, timeout=10)
    assert "1 firing" in notes[0].all_text() and "querynode-1" in notes[0].all_text()
    assert "2 resolved" in notes[1].all_text() and "the group is resolved" in notes[1].all_text()
    assert len(fake_slack.messages("C0CRIT")) == 1


def test_alert_text_cannot_mention_anyone_or_break_the_layout(bot, fake_slack):
    evil = alert(
        "Evil<!channel>",
        severity="warning",
        environment="prod",
        pod="<@U12345> & <!here>",
        annotations={"summary": "ping <!channel> <@U999|boss> `x` *bold*", "runbook_url": "javascript:alert(1)"},
    )
    deliver(bot, notification([evil]))
    message = fake_slack.wait_for_message("C0WARN", timeout=10)
    mrkdwn = [message.text or ""] + [
        t["text"] for b in message.blocks for t in [b.get("text") or {}, *b.get("fields", []), *b.get("elements", [])]
        if isinstance(t, dict) and t.get("type") == "mrkdwn"
    ]
    joined = "\n".join(mrkdwn)
    assert "<!channel>" not in joined and "<@U999" not in joined and "<!here>" not in joined
    assert "&lt;!channel&gt;" in joined and "&lt;@U12345&gt; &amp; &lt;!here&gt;" in joined
    assert "javascript:" not in json.dumps(message.blocks)


def test_a_group_with_many_alerts_is_summarised_within_slack_limits(bot, fake_slack):
    many = [
        alert("MilvusSegmentsHuge", severity="warning", environment="prod", segment=f"seg-{i:04d}-" + "x" * 80)
        for i in range(300)
    ]
    deliver(bot, notification(many))
    message = fake_slack.wait_for_message("C0WARN", timeout=10)
    assert len(message.blocks) <= 50
    assert len(json.dumps(message.blocks)) < 12_500
    assert "FIRING (300)" in message.all_text()
    assert "…and 280 more alert(s) not listed (280 firing, 0 resolved)" in message.all_text()
    # The buttons survive the summary.
    assert any(b["type"] == "actions" for b in message.blocks)


def test_a_group_that_fires_again_after_resolving_gets_a_new_message(bot, fake_slack):
    first = alert("MilvusComponentDown", environment="prod", pod="proxy-0")
    deliver(bot, notification([first]))
    one = fake_slack.wait_for_message("C0CRIT", timeout=10)
    deliver(bot, notification([resolved(first)]))
    wait_for(lambda: "RESOLVED" in fake_slack.message("C0CRIT", one.ts).all_text(), timeout=10)
    again = alert("MilvusComponentDown", environment="prod", pod="proxy-0", starts="2026-11-25T14:00:00Z")
    deliver(bot, notification([again]))
    wait_for(lambda: len(fake_slack.messages("C0CRIT")) == 2, timeout=10)
    assert "RESOLVED" in fake_slack.message("C0CRIT", one.ts).all_text()
    assert "FIRING (1)" in fake_slack.messages("C0CRIT")[1].all_text()


# -- faults -----------------------------------------------------------------------------------


def test_slack_429_and_500_are_retried_and_nothing_is_lost_or_doubled(bot, fake_slack):
    fake_slack.fail_next("chat.postMessage", 429, retry_after=1)
    fake_slack.fail_next("chat.postMessage", 500, times=2)
    fake_slack.fail_next("chat.update", 500)
    a = alert("MilvusWriteThrottled", severity="warning", environment="prod")
    deliver(bot, notification([a]))
    message = fake_slack.wait_for_message("C0WARN", timeout=20)
    deliver(bot, notification([resolved(a)]))
    wait_for(lambda: "RESOLVED" in fake_slack.message("C0WARN", message.ts).all_text(), timeout=20)
    statuses = [c.http_status for c in fake_slack.calls("chat.postMessage")]
    assert statuses[:3] == [429, 500, 500]
    assert refs_in(fake_slack, "C0WARN").count(refs_in(fake_slack, "C0WARN")[0]) == 1
    assert len(fake_slack.messages("C0WARN")) == 1


def test_notifications_stored_before_a_crash_reach_slack_once_after_restart(tmp_path, fake_slack):
    data = tmp_path / "data"
    # First life: the webhook is answered, then the process dies before any worker ran.
    first, _ = make_runtime(data, fake_slack.api_url)
    for i in range(3):
        assert deliver(first, notification([alert(f"Down{i}", environment="prod")]))[1]["status"] == "stored"
    first.store.engine.dispose()
    assert fake_slack.calls("chat.postMessage") == []

    # Second life: same state store, worker and outbox start.
    second, outbox = make_runtime(data, fake_slack.api_url)
    worker = AlertWorker(second, poll_interval=0.05)
    outbox.start()
    worker.start()
    try:
        wait_for(lambda: len(fake_slack.messages("C0CRIT")) == 3, timeout=15)
        # A redelivery after the restart still changes nothing.
        assert deliver(second, notification([alert("Down0", environment="prod")]))[1]["status"] == "duplicate"
        assert sorted(refs_in(fake_slack)) == sorted(set(refs_in(fake_slack)))
    finally:
        worker.stop()
        outbox.stop()


class _Killed(BaseException):
    """Stands for SIGKILL at one exact point: nothing after it runs, nothing catches it."""


class _DiesAfterFirstCall:
    """The real outbox, but the process 'dies' right after the worker's first message was queued."""

    def __init__(self, real):
        self.real = real

    def post(self, *args, **kwargs):
        self.real.post(*args, **kwargs)
        raise _Killed()

    def update(self, *args, **kwargs):
        self.real.update(*args, **kwargs)
        raise _Killed()

    def upload(self, *args, **kwargs):
        raise AssertionError("alerts never upload")

    def backlog(self, channel):
        return self.real.backlog(channel)

    def withdraw(self, ref):
        return self.real.withdraw(ref)


def test_killed_between_queueing_the_message_and_recording_it_posts_once(tmp_path, fake_slack):
    data = tmp_path / "data"
    first, outbox = make_runtime(data, fake_slack.api_url)
    a = alert("MilvusConsumeLagHigh", severity="warning", environment="prod")
    deliver(first, notification([a]))
    first.messenger = _DiesAfterFirstCall(outbox)
    with pytest.raises(_Killed):
        AlertWorker(first).run_once()
    # The post is queued, but the group was never recorded and the notification is still unfinished.
    deliver(first, notification([a, alert("MilvusConsumeLagHigh", severity="warning", environment="prod", x="2")]))
    first.store.engine.dispose()

    second, outbox2 = make_runtime(data, fake_slack.api_url)
    worker = AlertWorker(second, poll_interval=0.05)
    outbox2.start()
    worker.start()
    try:
        # The queued post goes out at once; the dead worker's lease must run out (LEASE_TTL_S) before
        # the batch is redone and the second notification is shown.
        message = fake_slack.wait_for_message("C0WARN", timeout=15)
        wait_for(lambda: "FIRING (2)" in fake_slack.message("C0WARN", message.ts).all_text(), timeout=40)
        wait_for(lambda: len(fake_slack.replies("C0WARN", message.ts)) == 1, timeout=15)
        with second.store.begin() as conn:
            states = conn.execute(select(schema.alert_notifications.c.state)).scalars().all()
        assert states == ["done", "done"]
        assert len(fake_slack.messages("C0WARN")) == 1
        assert len(refs_in(fake_slack)) == len(set(refs_in(fake_slack))) == 2  # the group post and one note
    finally:
        worker.stop()
        outbox2.stop()


def test_token_is_never_in_an_answer(tmp_path, fake_slack):
    runtime, _ = make_runtime(tmp_path / "d", fake_slack.api_url)
    for token in (None, "nope", TOKEN[:-1]):
        _, body = deliver(runtime, notification([alert()]), token=token)
        assert TOKEN not in json.dumps(body)


def test_old_processed_notifications_and_resolved_groups_are_pruned(tmp_path, fake_slack):
    import datetime as dt

    from sqlalchemy import update

    runtime, _ = make_runtime(tmp_path / "d", fake_slack.api_url)
    a = alert("PruneMe", environment="prod")
    deliver(runtime, notification([a]))
    deliver(runtime, notification([resolved(a)]))
    worker = AlertWorker(runtime, settle=0)
    assert worker.run_once() == 2
    n, g = schema.alert_notifications, schema.alert_groups
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    with runtime.store.begin() as conn:
        conn.execute(update(n).values(processed_at=long_ago))
        conn.execute(update(g).values(updated_at=long_ago))
    fresh = deliver(runtime, notification([alert("KeepMe", environment="prod")]))
    assert fresh[1]["status"] == "stored"
    worker.reconcile()
    with runtime.store.begin() as conn:
        assert conn.execute(select(n.c.state)).scalars().all() == ["pending"]
        assert conn.execute(select(func.count()).select_from(g)).scalar_one() == 0
    worker.stop()


def test_a_critical_group_overtakes_a_queue_of_warnings_in_a_shared_channel(tmp_path, fake_slack):
    from tests.commands.alerts.helpers import config_dict

    config = config_dict()
    config["channels"]["alerts"] = {"default": "C0SHARED"}  # every severity in one channel
    config["alert_storm"] = {"enabled": False}  # the queue itself is the point here, not its digest
    runtime, outbox = make_runtime(tmp_path / "data", fake_slack.api_url, config=config)
    worker = AlertWorker(runtime, poll_interval=0.05)
    for i in range(6):
        deliver(runtime, notification([alert(f"Warning{i}", severity="warning", environment="prod")]))
    worker.run_once()
    outbox.start()
    try:
        fake_slack.wait_for_message("C0SHARED", lambda m: "Warning0" in (m.text or ""), timeout=10)
        deliver(runtime, notification([alert("MilvusDown", severity="critical", environment="prod")]))
        worker.run_once()
        wait_for(lambda: len(fake_slack.messages("C0SHARED")) == 7, timeout=30)
    finally:
        outbox.stop()
    names = [m.text.split("] ", 1)[1].split(" ", 1)[0] for m in fake_slack.messages("C0SHARED")]
    # Warning0 was already on its way; the critical group is next, ahead of the five still queued.
    assert names == ["Warning0", "MilvusDown", "Warning1", "Warning2", "Warning3", "Warning4", "Warning5"]
