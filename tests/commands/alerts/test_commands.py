"""Acknowledge / Silence / Unsilence and /milvus alerts, with a real Alertmanager sending real
webhooks to the bot's intake, the real outbox posting to FakeSlack, and presses going through the
dispatcher (role check and audit included)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import uuid
from typing import Any

import pytest

from bot.access import Identity
from bot.dispatch import Dispatcher
from commands.alerts.worker import AlertWorker
from tests.commands.alerts.helpers import (
    OPERATOR,
    PROD_ONLY,
    VIEWER,
    am_get,
    am_post_alerts,
    am_state,
    make_runtime,
)
from tests.support.wait import wait_for


@pytest.fixture
def bot(tmp_path, fake_slack, alertmanager, harness):
    runtime, outbox = make_runtime(tmp_path / "data", fake_slack.api_url, alertmanager_url=alertmanager.url)
    worker = AlertWorker(runtime, poll_interval=0.05, reconcile_interval=0.3, missing_confirmations=2)
    outbox.start()
    worker.start()
    harness.runtime = runtime
    yield runtime
    harness.runtime = None
    worker.stop()
    outbox.stop()


def fire(am_url: str, name: str, pods: list[str], severity: str = "critical", minutes: int = 10) -> None:
    now = dt.datetime.now(dt.UTC)
    am_post_alerts(am_url, [
        {
            "labels": {"alertname": name, "environment": "prod", "severity": severity, "pod": pod},
            "annotations": {"summary": f"{name} on {pod}", "runbook_url": "https://runbooks.example/x"},
            "startsAt": now.isoformat(),
            "endsAt": (now + dt.timedelta(minutes=minutes)).isoformat(),
        }
        for pod in pods
    ])


def resolve(am_url: str, name: str, pods: list[str], severity: str = "critical") -> None:
    now = dt.datetime.now(dt.UTC)
    am_post_alerts(am_url, [
        {
            "labels": {"alertname": name, "environment": "prod", "severity": severity, "pod": pod},
            "annotations": {"summary": f"{name} on {pod}", "runbook_url": "https://runbooks.example/x"},
            "startsAt": (now - dt.timedelta(minutes=1)).isoformat(),
            "endsAt": now.isoformat(),
        }
        for pod in pods
    ])


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def buttons(message) -> dict[str, dict[str, Any]]:
    out = {}
    for block in message.blocks:
        if block["type"] == "actions":
            for element in block["elements"]:
                if "value" in element:
                    out[element["action_id"]] = json.loads(element["value"])
    return out


def message_for(fake_slack, name: str, channel: str = "C0CRIT", firing: int | None = None):
    def find():
        for m in fake_slack.messages(channel):
            text = m.all_text()
            if name in text and (firing is None or f"FIRING ({firing})" in text):
                return m
        return None

    return wait_for(
        find, timeout=20, message=lambda: f"no message for {name}: {[m.text for m in fake_slack.messages()]}"
    )


def press(runtime, action_id: str, value: dict[str, Any], user: str):
    return Dispatcher(runtime).run_action(action_id, value, Identity(user), channel="C0CRIT")


def run(runtime, text: str, user: str = OPERATOR):
    return Dispatcher(runtime).run_command(text, Identity(user), channel="C0CRIT")


def silences_for(am_url: str, name: str) -> list[dict[str, Any]]:
    return [
        s for s in am_get(am_url, "/api/v2/silences")
        if any(m["name"] == "alertname" and m["value"] == name for m in s["matchers"])
    ]


def states(am_url: str, name: str) -> dict[str, str]:
    return {a["labels"]["pod"]: a["status"]["state"] for a in am_state(am_url, name)}


def test_acknowledge_silences_exactly_the_groups_alerts_and_records_who(bot, fake_slack, alertmanager):
    name, other = unique("AckTest"), unique("Bystander")
    fire(alertmanager.url, name, ["qn-0", "qn-1"])
    fire(alertmanager.url, other, ["qn-0"])
    message = message_for(fake_slack, name, firing=2)
    value = buttons(message)["alert_ack"]

    outcome = press(bot, "alert_ack", value, OPERATOR)
    assert outcome.exit_code == 0, outcome.reply.text
    assert "You acknowledged" in outcome.reply.text
    wait_for(lambda: states(alertmanager.url, name) == {"qn-0": "suppressed", "qn-1": "suppressed"}, timeout=10)
    assert states(alertmanager.url, other) == {"qn-0": "active"}
    created = silences_for(alertmanager.url, name)
    assert len(created) == 2 and {s["createdBy"] for s in created} == {OPERATOR}
    assert all({m["name"] for m in s["matchers"]} == {"alertname", "environment", "severity", "pod"} for s in created)

    wait_for(lambda: f"Acknowledged by <@{OPERATOR}>" in fake_slack.message("C0CRIT", message.ts).all_text(), 10)
    assert "alert_ack" not in buttons(fake_slack.message("C0CRIT", message.ts))
    wait_for(lambda: any("Acknowledged by" in r.all_text() for r in fake_slack.replies("C0CRIT", message.ts)), 10)

    # A second press (a double click, or a colleague) changes nothing.
    again = press(bot, "alert_ack", value, OPERATOR)
    assert again.exit_code == 1 and "already acknowledged" in again.reply.text
    assert len(silences_for(alertmanager.url, name)) == 2
    audit = bot.audit.recent(limit=5)
    assert [(e.action, e.kind, e.outcome, e.user_id) for e in audit[:2]] == [
        ("alert_ack", "button", "rejected", OPERATOR), ("alert_ack", "button", "ok", OPERATOR)
    ]


def test_only_operators_of_the_groups_environment_may_silence(bot, fake_slack, alertmanager):
    name = unique("RoleTest")
    fire(alertmanager.url, name, ["p"])
    value = buttons(message_for(fake_slack, name))["alert_silence:1h"]
    for user in (VIEWER, PROD_ONLY):  # PROD_ONLY operates staging, only views prod
        outcome = press(bot, "alert_silence:1h", value, user)
        assert outcome.exit_code == 1 and "needs the operator role in `prod`" in outcome.reply.text
    short = value["group"][:8]
    assert run(bot, f"/milvus silence {short} 1h", user=PROD_ONLY).exit_code == 1
    assert silences_for(alertmanager.url, name) == []
    assert [e.outcome for e in bot.audit.recent(limit=3)] == ["denied", "denied", "denied"]


def test_silence_for_4h_then_unsilence_by_command(bot, fake_slack, alertmanager):
    name = unique("SilenceTest")
    fire(alertmanager.url, name, ["dn-0"], severity="warning")
    message = message_for(fake_slack, name, channel="C0WARN")
    short = buttons(message)["alert_ack"]["group"][:8]

    outcome = run(bot, f"/milvus silence {short} 4h planned etcd defrag")
    assert outcome.exit_code == 0, outcome.reply.text
    [created] = silences_for(alertmanager.url, name)
    ends = dt.datetime.fromisoformat(created["endsAt"].replace("Z", "+00:00"))
    assert abs((ends - dt.datetime.now(dt.UTC)) - dt.timedelta(hours=4)) < dt.timedelta(minutes=1)
    assert created["comment"].startswith("planned etcd defrag") and created["createdBy"] == OPERATOR
    wait_for(lambda: states(alertmanager.url, name) == {"dn-0": "suppressed"}, timeout=10)

    listing = run(bot, "/milvus alerts prod", user=VIEWER)
    [group] = [g for g in listing.reply.data["groups"] if g["name"] == name]
    assert group["silenced_until"] and group["silences"] == [created["id"]] and group["acknowledged_by"] is None
    assert "silenced until" in listing.reply.text
    wait_for(lambda: "Silenced until" in fake_slack.message("C0WARN", message.ts).all_text(), 10)

    outcome = run(bot, f"/milvus unsilence {short}")
    assert outcome.exit_code == 0 and "1 silence(s) expired" in outcome.reply.text
    wait_for(lambda: states(alertmanager.url, name) == {"dn-0": "active"}, timeout=10)
    assert [s["status"]["state"] for s in silences_for(alertmanager.url, name)] == ["expired"]
    wait_for(lambda: "alert_unsilence" not in buttons(fake_slack.message("C0WARN", message.ts)), 10)

    assert run(bot, f"/milvus unsilence {short}").exit_code == 1  # nothing left to unsilence
    bad = run(bot, f"/milvus silence {short} forever")
    assert bad.exit_code == 1 and "is not a duration" in bad.reply.text


def test_alertmanager_down_on_a_press_is_explained_and_the_press_can_be_retried(bot, fake_slack, alertmanager):
    name = unique("DownTest")
    fire(alertmanager.url, name, ["px-0"])
    value = buttons(message_for(fake_slack, name))["alert_ack"]
    os.kill(alertmanager.process.pid, signal.SIGSTOP)  # alive but not answering: the client's timeout
    try:
        outcome = press(bot, "alert_ack", value, OPERATOR)
    finally:
        os.kill(alertmanager.process.pid, signal.SIGCONT)
    assert outcome.exit_code == 2
    assert f"Alertmanager at {alertmanager.url} is unreachable" in outcome.reply.text
    assert "Nothing was changed. Try again" in outcome.reply.text
    [group] = [g for g in run(bot, "/milvus alerts").reply.data["groups"] if g["name"] == name]
    assert group["acknowledged_by"] is None and group["silences"] == []

    retry = press(bot, "alert_ack", value, OPERATOR)
    assert retry.exit_code == 0, retry.reply.text
    wait_for(lambda: states(alertmanager.url, name) == {"px-0": "suppressed"}, timeout=10)


def test_the_acknowledgement_is_lifted_and_the_message_turns_green_when_the_alerts_resolve(
    bot, fake_slack, alertmanager
):
    name = unique("ResolveTest")
    fire(alertmanager.url, name, ["qc-0"])
    message = message_for(fake_slack, name)
    assert press(bot, "alert_ack", buttons(message)["alert_ack"], OPERATOR).exit_code == 0
    wait_for(lambda: states(alertmanager.url, name) == {"qc-0": "suppressed"}, timeout=10)

    resolve(alertmanager.url, name, ["qc-0"])
    wait_for(lambda: "RESOLVED" in fake_slack.message("C0CRIT", message.ts).all_text(), timeout=20)
    wait_for(
        lambda: [s["status"]["state"] for s in silences_for(alertmanager.url, name)] == ["expired"], timeout=20,
        message=lambda: str(silences_for(alertmanager.url, name)),
    )
    # Updates are no longer held behind the channel's queued posts, so the message shows the resolution
    # first and drops the Unsilence button a moment later, once the silence is expired.
    wait_for(lambda: "alert_unsilence" not in buttons(fake_slack.message("C0CRIT", message.ts)), timeout=10)
    assert any(e.user_id == "alertmanager" and e.action == "alert unsilence" for e in bot.audit.recent(limit=10))
