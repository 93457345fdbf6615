"""End to end through `milvus-chatops serve` (a subprocess): real Prometheus rules fire into a real
Alertmanager, which calls the bot's webhook; FakeSlack records the messages; a signed button press
creates a real silence; SIGKILL at any moment loses and doubles nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.commands.alerts.helpers import OPERATOR, alert, alertmanager_yaml, am_state, notification
from tests.support.bot_server import WEBHOOK_TOKEN
from tests.support.servers import free_port, start_alertmanager, start_prometheus
from tests.support.wait import wait_for

RULES = Path(__file__).resolve().parents[3] / "rules"


def bot_config(alertmanager_url: str, *, storm: bool = True) -> str:
    storm_policy = "" if storm else "alert_storm: {enabled: false}\n"
    return f"""
environments:
  prod:
    milvus: {{uri: "http://127.0.0.1:9"}}
    alertmanager_url: {alertmanager_url}
  staging:
    milvus: {{uri: "http://127.0.0.1:9"}}
channels:
  ops: C0OPS
  alerts: {{critical: C0CRIT, warning: C0WARN, default: C0DEFAULT}}
access:
  - {{role: operator, users: [{OPERATOR}]}}
{storm_policy}"""


def am_config(webhook_url: str) -> str:
    return alertmanager_yaml(webhook_url, WEBHOOK_TOKEN)


PROBE_RULES = """
groups:
  - name: e2e
    rules:
      - alert: MilvusE2EProbe
        expr: vector(1)
        labels: {severity: critical, environment: prod}
        annotations:
          summary: "probe for <!channel> from Prometheus"
          runbook_url: https://runbooks.example/probe
"""


def refs(fake_slack) -> list[str]:
    out = []
    for call in fake_slack.calls("chat.postMessage"):
        if call.ok:
            metadata = call.params["metadata"]
            metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
            out.append(metadata["event_payload"]["ref"])
    return out


def test_prometheus_alert_reaches_slack_and_the_acknowledge_button_silences_it(tmp_path, bot_server, fake_slack):
    alertmanager = start_alertmanager(tmp_path / "am", am_config(f"http://127.0.0.1:{free_port()}/nowhere"))
    prometheus = None
    try:
        bot = bot_server(bot_config(alertmanager.url))
        assert alertmanager.config_path is not None
        alertmanager.config_path.write_text(am_config(f"{bot.url}/alertmanager"))
        assert alertmanager.reload() == 200
        # The shipped rules load in the real Prometheus next to the probe rule.
        prometheus = start_prometheus(
            tmp_path / "prom",
            rule_files={"probe.yml": PROBE_RULES, "milvus-alerts.yml": (RULES / "milvus-alerts.yml").read_text()},
            alertmanager_url=alertmanager.url,
        )
        message = fake_slack.wait_for_message("C0CRIT", timeout=60)
        text = message.all_text()
        assert "FIRING (1): MilvusE2EProbe" in text
        assert "&lt;!channel&gt;" in text and "<!channel>" not in text
        assert "Source query>" in text  # the generator URL from the real Prometheus

        value = next(
            e["value"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]
            if e["action_id"] == "alert_ack"
        )
        ack = bot.slack.block_action(
            "alert_ack", value, user_id=OPERATOR, channel_id="C0CRIT", message_ts=message.ts,
            response_url=fake_slack.response_url("ack"),
        )
        assert ack.status_code == 200
        wait_for(
            lambda: [a["status"]["state"] for a in am_state(alertmanager.url, "MilvusE2EProbe")] == ["suppressed"],
            timeout=20,
        )
        wait_for(lambda: f"Acknowledged by <@{OPERATOR}>" in fake_slack.message("C0CRIT", message.ts).all_text(), 20)

        listing = bot.slack.slash_command("alerts prod", user_id=OPERATOR, response_url=fake_slack.response_url("l"))
        assert listing.status_code == 200
        reply = fake_slack.wait_for_response("l", timeout=20)
        assert "MilvusE2EProbe" in reply.all_text() and "acked by" in reply.all_text()
        assert len(fake_slack.messages("C0CRIT")) == 1
    finally:
        if prometheus:
            prometheus.stop()
        alertmanager.stop()


def test_sigkill_while_alerts_are_being_posted_loses_and_doubles_nothing(tmp_path, bot_server, fake_slack):
    # One message per group is what this test counts: no storm digest.
    bot = bot_server(bot_config("http://127.0.0.1:9", storm=False))
    groups = 24
    for i in range(groups):
        severity = "critical" if i % 2 else "warning"
        response = bot.post_webhook(notification([alert(f"Storm{i:02d}", severity=severity, environment="prod")]))
        assert response.status_code == 200, response.text
    # Posting runs at one message per second per channel: kill in the middle of it.
    wait_for(lambda: len(fake_slack.messages()) >= 3, timeout=20)
    bot.kill()
    posted_before = len(fake_slack.messages())
    assert posted_before < groups

    # The same state directory, a new process; redeliveries from Alertmanager's retries are no-ops.
    bot.start()
    for i in range(3):
        again = bot.post_webhook(notification([alert(f"Storm{i:02d}", severity="warning" if i % 2 == 0 else "critical",
                                                      environment="prod")]))
        assert again.json()["status"] == "duplicate"
    wait_for(lambda: len(fake_slack.messages()) >= groups, timeout=60,
             message=lambda: f"{len(fake_slack.messages())} of {groups} groups in Slack")
    time.sleep(1.5)  # one more rate-limit slot: a duplicate would be posted by now
    names = sorted(m.text.split("] ")[1].split(" ")[0] for m in fake_slack.messages())
    assert names == [f"Storm{i:02d}" for i in range(groups)]
    assert len(refs(fake_slack)) == len(set(refs(fake_slack))) == groups
