"""Storm mode through a real Alertmanager and a FakeSlack that enforces one post per second per
channel (429 + Retry-After beyond it): one digest shows every group within seconds, critical groups
keep their own messages, the digest's menus create real silences, the end is summarised, and a
restarted bot updates the digest it posted rather than posting another."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from bot.access import Identity
from bot.dispatch import Dispatcher
from commands.alerts.worker import AlertWorker
from tests.commands.alerts.helpers import (
    OPERATOR,
    alert,
    am_post_alerts,
    am_state,
    deliver,
    make_runtime,
    notification,
    resolved,
)
from tests.support.wait import wait_for


def digests(fake_slack, channel: str) -> list[Any]:
    return [m for m in fake_slack.messages(channel) if (m.text or "").startswith("[ALERT STORM")]


def group_messages(fake_slack, channel: str) -> list[Any]:
    return [m for m in fake_slack.messages(channel) if (m.text or "").startswith(("[FIRING", "[RESOLVED"))]


def digest_text(fake_slack, channel: str) -> str:
    return "\n".join(m.all_text() for m in digests(fake_slack, channel))


def menu_value(message, action_prefix: str, name: str) -> dict[str, Any]:
    for block in message.blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"].startswith(action_prefix):
                for option in element.get("options", []):
                    if option["text"]["text"].startswith(name):
                        return {"value": option["value"]}  # what the Slack transport hands the action
    raise AssertionError(f"no {action_prefix} option for {name}")


def am_alerts(names: list[str], severity: str, *, ended: bool = False) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "labels": {"alertname": name, "environment": "prod", "severity": severity, "pod": "p-0"},
            "annotations": {"summary": f"{name} is unhappy"},
            "startsAt": (now - dt.timedelta(minutes=1)).isoformat(),
            "endsAt": (now if ended else now + dt.timedelta(minutes=10)).isoformat(),
        }
        for name in names
    ]


def test_a_storm_gets_one_digest_with_every_group_and_critical_groups_keep_their_own_messages(
    tmp_path, fake_slack, alertmanager, harness
):
    fake_slack.limit_posts(per_second=1)
    runtime, outbox = make_runtime(tmp_path / "data", fake_slack.api_url, alertmanager_url=alertmanager.url)
    runtime.config.channels.alerts.critical = None
    runtime.config.channels.alerts.warning = None
    runtime.config.channels.alerts.default = "C0STORM"  # every severity in one channel
    worker = AlertWorker(runtime, poll_interval=0.05, reconcile_interval=0.3)
    harness.runtime = runtime
    outbox.start()
    worker.start()
    tag = uuid.uuid4().hex[:5]
    warnings = [f"Warn{tag}{i:02d}" for i in range(30)]
    criticals = [f"Crit{tag}{i}" for i in range(3)]
    try:
        am_post_alerts(alertmanager.url, am_alerts(warnings, "warning") + am_alerts(criticals, "critical"))
        # Every group is on screen within seconds, at one post a second: in the digest.
        wait_for(lambda: all(n in digest_text(fake_slack, "C0STORM") for n in warnings + criticals), timeout=20,
                 message=lambda: f"{len(fake_slack.messages('C0STORM'))} messages in the channel")
        first = digests(fake_slack, "C0STORM")[0]
        assert ":cyclone: Alert storm" in first.all_text()
        # Critical groups still get their own messages; warnings do not flood the channel.
        wait_for(lambda: {m.text.split("] ")[1].split(" ")[0] for m in group_messages(fake_slack, "C0STORM")}
                 >= set(criticals), timeout=20)
        own = {m.text.split("] ")[1].split(" ")[0] for m in group_messages(fake_slack, "C0STORM")}
        assert len(own - set(criticals)) <= 6, own  # only what was posted before the storm was detected
        # Critical lines come first in the digest (ordered by severity).
        text = digest_text(fake_slack, "C0STORM")
        assert max(text.index(n) for n in criticals) < min(text.index(n) for n in warnings if n not in own)

        listing = Dispatcher(runtime).run_command("alerts", Identity(OPERATOR), channel="C0OPS")
        assert listing.reply.data["storms"][0]["channel"] == "C0STORM"
        assert "Alert storm" in listing.reply.text

        # Acknowledge from the digest's menu: the same real silence as the group message's button.
        target = next(n for n in warnings if n not in own)
        part = next(m for m in digests(fake_slack, "C0STORM") if target in m.all_text())
        value = menu_value(part, "alert_storm_ack", target)
        outcome = Dispatcher(runtime).run_action("alert_storm_ack:0", value, Identity(OPERATOR), channel="C0STORM")
        assert outcome.exit_code == 0, outcome.reply.text
        wait_for(lambda: [a["status"]["state"] for a in am_state(alertmanager.url, target)] == ["suppressed"],
                 timeout=20)
        wait_for(lambda: f":eyes: <@{OPERATOR}>" in digest_text(fake_slack, "C0STORM"), timeout=20)

        # Resolutions update the digest; when every group resolved, the storm is over and summarised.
        am_post_alerts(alertmanager.url, am_alerts(warnings, "warning", ended=True)
                       + am_alerts(criticals, "critical", ended=True))
        wait_for(lambda: "Alert storm over" in digest_text(fake_slack, "C0STORM"), timeout=40,
                 message=lambda: digest_text(fake_slack, "C0STORM")[:500])
        summary = digests(fake_slack, "C0STORM")[0].all_text()
        assert "33 group(s)" in summary
        assert f"<@{OPERATOR}> acknowledged 1 group(s)" in summary
        # Nothing was lost to the 429s, nothing posted twice.
        refs = [json.loads(c.params["metadata"])["event_payload"]["ref"] if isinstance(c.params["metadata"], str)
                else c.params["metadata"]["event_payload"]["ref"]
                for c in fake_slack.calls("chat.postMessage") if c.ok]
        assert len(refs) == len(set(refs))
    finally:
        harness.runtime = None
        worker.stop()
        outbox.stop()


def test_silence_all_silences_every_firing_group_of_the_storm_in_alertmanager(
    tmp_path, fake_slack, alertmanager, harness
):
    runtime, outbox = make_runtime(tmp_path / "data", fake_slack.api_url, alertmanager_url=alertmanager.url)
    worker = AlertWorker(runtime, poll_interval=0.05, reconcile_interval=0.3)
    harness.runtime = runtime
    outbox.start()
    worker.start()
    tag = uuid.uuid4().hex[:5]
    warnings = [f"Quiet{tag}{i:02d}" for i in range(12)]
    try:
        am_post_alerts(alertmanager.url, am_alerts(warnings, "warning"))
        wait_for(lambda: all(n in digest_text(fake_slack, "C0WARN") for n in warnings), timeout=20)
        button = next(
            e for b in digests(fake_slack, "C0WARN")[0].blocks if b["type"] == "actions" for e in b["elements"]
            if e["action_id"] == "alert_storm_silence_all"
        )
        outcome = Dispatcher(runtime).run_action(
            "alert_storm_silence_all", json.loads(button["value"]), Identity(OPERATOR), channel="C0WARN"
        )
        assert outcome.exit_code == 0, outcome.reply.text
        assert len(outcome.reply.data["silenced"]) == 12
        wait_for(lambda: all([a["status"]["state"] for a in am_state(alertmanager.url, n)] == ["suppressed"]
                             for n in warnings), timeout=20)
        wait_for(lambda: digest_text(fake_slack, "C0WARN").count(":no_bell:") >= 12, timeout=20)
    finally:
        harness.runtime = None
        worker.stop()
        outbox.stop()


def test_a_restart_in_the_middle_of_a_storm_updates_the_same_digest(tmp_path, fake_slack):
    fake_slack.limit_posts(per_second=1)
    data = tmp_path / "data"
    first, outbox = make_runtime(data, fake_slack.api_url)
    worker = AlertWorker(first, poll_interval=0.05)
    outbox.start()
    worker.start()
    alerts = [alert(f"Restart{i:02d}", severity="warning", environment="prod") for i in range(15)]
    try:
        for a in alerts:
            assert deliver(first, notification([a]))[0] == 200
        wait_for(lambda: all(f"Restart{i:02d}" in digest_text(fake_slack, "C0WARN") for i in range(15)), timeout=20)
    finally:
        worker.stop()
        outbox.stop()
    first.store.engine.dispose()
    posted = [m.ts for m in digests(fake_slack, "C0WARN")]
    assert posted

    second, outbox2 = make_runtime(data, fake_slack.api_url)
    worker2 = AlertWorker(second, poll_interval=0.05)
    outbox2.start()
    worker2.start()
    try:
        more = [alert(f"Later{i:02d}", severity="warning", environment="prod") for i in range(3)]
        for a in more:
            deliver(second, notification([a]))
        deliver(second, notification([resolved(alerts[0])]))
        wait_for(lambda: all(f"Later{i:02d}" in digest_text(fake_slack, "C0WARN") for i in range(3)), timeout=20)
        wait_for(lambda: ":white_check_mark: ~warning~ *Restart00*" in digest_text(fake_slack, "C0WARN"),
                 timeout=20)
    finally:
        worker2.stop()
        outbox2.stop()
    # The same digest messages, updated in place: the restart posted no second digest.
    assert [m.ts for m in digests(fake_slack, "C0WARN")] == posted


def test_a_digest_of_hundreds_of_groups_is_split_into_messages_within_slack_limits_and_cuts_none():
    from bot import blocks as bk
    from bot.config import StormPolicy
    from bot.state import utcnow
    from commands.alerts.groups import apply_notification
    from commands.alerts.storm import Storm, render_digest

    now = utcnow()
    groups = []
    for i in range(300):
        a = alert(f"VeryLongAlertNameForTheDigest{i:03d}" + "x" * 60, severity=("critical", "warning")[i % 2],
                  environment="prod", instance=f"node-{i}")
        group, _, _ = apply_notification(None, notification([a]), group_id=f"{i:032x}", env="prod", channel="C1",
                                         notification_id=i, received_at=now)
        groups.append(group)
    storm = Storm(id="s" * 32, channel="C1", state="active", started_at=now, last_joined_at=now)
    messages = render_digest(storm, groups, StormPolicy())
    assert len(messages) > 1
    for message in messages:
        assert bk.fit_blocks(message.blocks) == message.blocks  # nothing for the outbox to cut
    text = "\n".join(json.dumps(m.blocks) for m in messages)
    for i in range(300):
        assert text.count(f"VeryLongAlertNameForTheDigest{i:03d}") == 3  # its line and its two menu options


def test_with_post_rest_the_other_groups_get_their_own_messages_once_the_queue_has_drained(tmp_path, fake_slack):
    from tests.commands.alerts.helpers import config_dict

    config = config_dict()
    config["alert_storm"] = {"post_rest": True}
    runtime, outbox = make_runtime(tmp_path / "data", fake_slack.api_url, config=config)
    worker = AlertWorker(runtime, poll_interval=0.05)
    names = [f"Rest{i:02d}" for i in range(8)]
    for name in names:
        deliver(runtime, notification([alert(name, severity="warning", environment="prod")]))
    worker.run_once()  # one round: the burst starts the storm before any message is queued
    outbox.start()
    worker.start()
    try:
        wait_for(lambda: all(n in digest_text(fake_slack, "C0WARN") for n in names), timeout=20)
        wait_for(lambda: {m.text.split("] ")[1].split(" ")[0] for m in group_messages(fake_slack, "C0WARN")}
                 == set(names), timeout=40)
    finally:
        worker.stop()
        outbox.stop()
    # The digest came first; the groups followed one by one, each once.
    texts = [m.text for m in fake_slack.messages("C0WARN")]
    assert texts[0].startswith("[ALERT STORM")
    assert len(texts) == 1 + len(names)


def first_shown(fake_slack, channel: str, names: list[str]) -> dict[str, float]:
    """Name -> when Slack first accepted a message or an update in ``channel`` that shows it."""
    seen: dict[str, float] = {}
    for call in fake_slack.calls():
        if not call.ok or call.method not in ("chat.postMessage", "chat.update"):
            continue
        if call.params.get("channel") != channel:
            continue
        text = json.dumps([call.params.get("text"), call.params.get("blocks")])
        for name in names:
            if name not in seen and name in text:
                seen[name] = call.at
    return seen


def test_critical_groups_are_on_screen_before_the_warning_backlog_drains_and_no_group_is_lost(
    tmp_path, fake_slack, alertmanager, harness
):
    fake_slack.limit_posts(per_second=1)
    from tests.commands.alerts.helpers import config_dict

    config = config_dict(alertmanager.url)
    config["alert_storm"] = {"post_rest": True}  # the warnings queue up for their own messages too
    runtime, outbox = make_runtime(tmp_path / "data", fake_slack.api_url, config=config)
    runtime.config.channels.alerts.critical = None
    runtime.config.channels.alerts.warning = None
    runtime.config.channels.alerts.default = "C0PAGE"
    worker = AlertWorker(runtime, poll_interval=0.05)
    harness.runtime = runtime
    outbox.start()
    worker.start()
    tag = uuid.uuid4().hex[:5]
    warnings = [f"Backlog{tag}{i:02d}" for i in range(16)]
    criticals = [f"Page{tag}{i}" for i in range(4)]
    try:
        am_post_alerts(alertmanager.url, am_alerts(warnings, "warning"))
        # The warnings are being worked off at Slack's pace when the critical groups arrive.
        wait_for(lambda: first_shown(fake_slack, "C0PAGE", warnings), timeout=20)
        am_post_alerts(alertmanager.url, am_alerts(criticals, "critical"))
        # The backlog drains: with post_rest every group ends up with its own message.
        wait_for(lambda: {m.text.split("] ")[1].split(" ")[0] for m in group_messages(fake_slack, "C0PAGE")}
                 >= set(warnings + criticals), timeout=90,
                 message=lambda: f"{len(group_messages(fake_slack, 'C0PAGE'))} group messages so far")
    finally:
        worker.stop()
        outbox.stop()
    shown = first_shown(fake_slack, "C0PAGE", warnings + criticals)
    assert set(shown) == set(warnings + criticals)  # no group lost
    last_warning_post = max(
        c.at for c in fake_slack.calls("chat.postMessage")
        if c.ok and any(n in (c.params.get("text") or "") for n in warnings)
    )
    late = [n for n in criticals if shown[n] >= last_warning_post]
    assert not late, f"critical groups shown only after the warning backlog drained: {late}"
    # Each group's own message once: shown early did not mean posted twice.
    own = [m.text.split("] ")[1].split(" ")[0] for m in group_messages(fake_slack, "C0PAGE")]
    assert sorted(own) == sorted(warnings + criticals)


def test_critical_groups_starting_together_are_all_in_the_first_message_posted_and_keep_their_own(
    tmp_path, fake_slack
):
    # Three criticals within one worker round: only one post fits in the channel's second, so the
    # other two are listed on that very post (the queued post is rewritten, no extra call), and their
    # own messages follow at Slack's pace; once they are in, the list comes off.
    fake_slack.limit_posts(per_second=1)
    runtime, outbox = make_runtime(tmp_path / "data", fake_slack.api_url)
    worker = AlertWorker(runtime, poll_interval=0.05)
    tag = uuid.uuid4().hex[:5]
    names = [f"Together{tag}{i}" for i in range(3)]
    for name in names:
        deliver(runtime, notification([alert(name, severity="critical", environment="prod")]))
    worker.run_once()
    outbox.start()
    worker.start()
    try:
        wait_for(lambda: len(group_messages(fake_slack, "C0CRIT")) == 3, timeout=20)
        first = fake_slack.calls("chat.postMessage")[0]
        shown_first = json.dumps([first.params.get("text"), first.params.get("blocks")])
        assert all(name in shown_first for name in names), shown_first
        assert "Also firing in this channel" in shown_first
        # Every group's own message, once each; the list taken off the first one again.
        wait_for(lambda: "Also firing" not in group_messages(fake_slack, "C0CRIT")[0].all_text(), timeout=20)
    finally:
        worker.stop()
        outbox.stop()
    own = sorted(m.text.split("] ")[1].split(" ")[0] for m in group_messages(fake_slack, "C0CRIT"))
    assert own == sorted(names)
    assert not fake_slack.ratelimited("chat.postMessage")
