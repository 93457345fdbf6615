"""/milvus checklist: honest on the embedded default, and on configured environments each item turns
pass or fail with the facts: real Prometheus and Alertmanager (the webhook served in-process), real
backups on Milvus Lite, the FAKE Kubernetes API for the cluster items."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.config import embedded_default
from tests.commands.alerts.helpers import TOKEN, alertmanager_yaml
from tests.commands.readiness.helpers import Bot, make_collection, vectors
from tests.support.fake_kube import FakeKube
from tests.support.servers import free_port, start_alertmanager, start_prometheus, stop_all
from tests.support.wait import wait_for

IDS = ["environment", "capacity", "kubernetes", "dependencies", "milvus", "network_policy", "security",
       "monitoring", "backup", "performance", "failure_drill", "runbooks"]
RULES = Path(__file__).resolve().parents[3] / "rules" / "milvus-alerts.yml"
MILVUS_LABELS = {"app.kubernetes.io/instance": "milvus", "app.kubernetes.io/name": "milvus"}


def items(outcome: Any) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in outcome.reply.data["items"]}


def test_embedded_default_answers_every_item_honestly(tmp_path: Path) -> None:
    bot = Bot(tmp_path / "data")
    try:
        outcome = bot.run("/milvus checklist")
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    data = outcome.reply.data
    assert data["environment"] == "local" and data["total"] == 12
    assert [i["id"] for i in data["items"]] == IDS
    assert set(data["items"][0]) == {"id", "title", "status", "evidence", "fix"}
    got = items(outcome)
    assert got["environment"]["status"] == "pass" and "Milvus answers" in got["environment"]["evidence"]
    for item_id in ("capacity", "kubernetes", "dependencies", "milvus", "network_policy", "monitoring",
                    "failure_drill"):
        assert got[item_id]["status"] == "not_checked", item_id
        assert got[item_id]["evidence"], item_id  # says why
    if "security" not in bot.runtime.registry.commands:
        assert got["security"] == {**got["security"], "status": "not_checked",
                                   "evidence": "security audit not available"}
    assert got["backup"]["status"] == "fail" and "no backup schedule" in got["backup"]["evidence"]
    assert got["performance"]["status"] == "fail" and "loadtest local" in got["performance"]["fix"]
    # The rules the project ships pass its own checklist: each links a runbook.
    assert got["runbooks"]["status"] == "pass", got["runbooks"]["evidence"]
    assert data["passed"] == sum(1 for i in data["items"] if i["status"] == "pass")
    assert f"{data['passed']}/12 pass" in outcome.reply.text


def test_backup_item_turns_from_fail_to_pass_with_schedule_backup_verify_and_drill(tmp_path: Path) -> None:
    config = embedded_default(tmp_path / "data").model_dump()
    config["environments"]["local"]["backup"]["schedule"] = "0 * * * *"
    bot = Bot(tmp_path / "data", config)
    try:
        make_collection(bot.client(), "items", vectors(500))
        before = items(bot.run("/milvus checklist local"))["backup"]
        backup_id = bot.run("/milvus backup create local").reply.data["id"]
        bot.run(f"/milvus backup verify {backup_id}")
        middle = items(bot.run("/milvus checklist local"))["backup"]
        assert bot.run("/milvus drill restore local").reply.data["verified"]
        after = items(bot.run("/milvus checklist local"))["backup"]
    finally:
        bot.close()
    assert before["status"] == "fail"
    assert "no usable backup" in before["evidence"] and "no restore drill in 30 days" in before["evidence"]
    assert middle["status"] == "fail" and f"last verify ({backup_id}) good" in middle["evidence"]
    assert middle["evidence"].endswith("no restore drill in 30 days")
    assert after["status"] == "pass", after
    assert "schedule `0 * * * *` (every 1h)" in after["evidence"] and "verified (RTO" in after["evidence"]


# -- monitoring: real Prometheus and Alertmanager ------------------------------------------------------


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The bot's /alertmanager route served in-process; the test attaches its runtime once built."""
    holder: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = holder["handle"]({k.lower(): v for k, v in self.headers.items()}, body)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    holder["url"] = f"http://127.0.0.1:{server.server_address[1]}/alertmanager"
    yield holder
    server.shutdown()
    server.server_close()


PROBE = """
groups:
  - name: watchdog
    rules:
      - alert: Watchdog
        expr: vector(1)
        labels: {severity: warning, environment: local}
        annotations: {summary: "alerting pipeline heartbeat", runbook_url: "https://runbooks.example/watchdog"}
"""


def notifications(bot: Bot) -> int:
    with bot.runtime.store.begin() as conn:
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM alert_notifications WHERE environment = 'local'").scalar() or 0)


def prometheus_yaml(scrape: str, rule_files: list[str], alertmanager: str) -> str:
    return json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "milvus", "static_configs": [
            {"targets": [scrape], "labels": {"namespace": "milvus-local"}}]}],
        "rule_files": rule_files,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
    })


def test_monitoring_item_fails_then_passes_with_prometheus_rules_and_alertmanager_facts(
    tmp_path: Path, webhook: dict[str, Any], prometheus_binary: Any
) -> None:
    started = []
    try:
        alertmanager = start_alertmanager(tmp_path / "am", alertmanager_yaml(webhook["url"], TOKEN))
        started.append(alertmanager)
        target = alertmanager.url.split("://", 1)[1]
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "probe.yml").write_text(PROBE)
        (tmp_path / "rules" / "milvus-alerts.yml").write_text(RULES.read_text())
        # First Prometheus: scrapes the environment but has only the probe rule loaded.
        bare = start_prometheus(tmp_path / "prom-bare", config_yaml=prometheus_yaml(
            target, [str(tmp_path / "rules" / "probe.yml")], f"127.0.0.1:{free_port()}"),
)
        started.append(bare)
        config = embedded_default(tmp_path / "data").model_dump()
        config["environments"]["local"].update(prometheus_url=bare.url, prometheus_namespace="milvus-local",
                                               alertmanager_url=alertmanager.url)
        bot = Bot(tmp_path / "data", config, alertmanager_webhook_token=TOKEN)
        webhook["handle"] = next(r for r in bot.runtime.registry.routes if r.path == "/alertmanager").factory(
            bot.runtime)
        try:
            wait_for(lambda: bot.runtime.services.prometheus(bot.runtime.config.environments["local"]).query(
                'up{namespace="milvus-local"}'), timeout=30, message="Prometheus never scraped the target")
            failing = items(bot.run("/milvus checklist local"))["monitoring"]
            assert failing["status"] == "fail"
            assert "1/1 targets up" in failing["evidence"]
            assert "13 of 13 shipped alert rules not loaded" in failing["evidence"]
            assert "no Alertmanager notification for local reached the bot in 168 h (none ever)" in failing["evidence"]

            # Second Prometheus: the shipped rules plus a heartbeat that fires into Alertmanager -> bot.
            full = start_prometheus(tmp_path / "prom-full", config_yaml=prometheus_yaml(
                target, [str(tmp_path / "rules" / "probe.yml"), str(tmp_path / "rules" / "milvus-alerts.yml")],
                target))
            started.append(full)
            bot.runtime.config.environments["local"].prometheus_url = full.url
            wait_for(lambda: notifications(bot), timeout=60, message="no notification reached the bot")
            wait_for(lambda: bot.runtime.services.prometheus(bot.runtime.config.environments["local"]).query(
                'up{namespace="milvus-local"}'), timeout=30, message="Prometheus never scraped the target")
            passing = items(bot.run("/milvus checklist local"))["monitoring"]
        finally:
            bot.close()
    finally:
        stop_all(started)
    assert passing["status"] == "pass", passing
    assert "all 13 shipped alert rules loaded" in passing["evidence"]
    assert "last Alertmanager notification" in passing["evidence"]


# -- cluster items on the FAKE Kubernetes API ---------------------------------------------------------


def test_cluster_items_read_nodes_dependencies_and_the_network_policy(tmp_path: Path, fake_kube: FakeKube) -> None:
    fake_kube.put({"kind": "Node", "metadata": {"name": "node-1"}, "spec": {},
                   "status": {"allocatable": {"cpu": "8", "memory": "32Gi"},
                              "conditions": [{"type": "Ready", "status": "True"}]}})
    fake_kube.set_pod("milvus", "milvus-etcd-0", {"app.kubernetes.io/name": "etcd"})
    fake_kube.set_pod("milvus", "milvus-minio-0", {"app": "minio"}, ready=False, phase="Pending")
    fake_kube.put({"kind": "PersistentVolumeClaim", "metadata": {"name": "data-milvus-etcd-0", "namespace": "milvus"},
                   "spec": {}, "status": {"phase": "Bound"}})
    config = embedded_default(tmp_path / "data").model_dump()
    config["environments"]["local"]["kubernetes"] = {"kubeconfig": str(fake_kube.kubeconfig_path()),
                                                     "namespace": "milvus", "client_namespaces": ["app"]}
    bot = Bot(tmp_path / "data", config)
    try:
        first = items(bot.run("/milvus checklist local"))
        env = bot.runtime.config.environments["local"]
        bot.runtime.services.kube(env).prepare("milvus", "milvus", ["app"])  # what a deploy applies
        fake_kube.set_pod("milvus", "milvus-minio-0", {"app": "minio"})
        second = items(bot.run("/milvus checklist local"))
    finally:
        bot.close()
    assert first["kubernetes"]["status"] == "warn", first["kubernetes"]  # no plan to size against
    assert "v1.29.0-fake; 1/1 nodes ready (8.0 CPU, 32.0 GiB allocatable)" in first["kubernetes"]["evidence"]
    assert first["dependencies"]["status"] == "fail"
    assert "object storage (MinIO) 0/1 ready" in first["dependencies"]["evidence"]
    assert first["network_policy"]["status"] == "fail" and "deploy local" in first["network_policy"]["fix"]
    assert first["failure_drill"]["status"] == "fail"
    assert first["failure_drill"]["status"] == "fail"
    assert "no pod drill in 90 days" in first["failure_drill"]["evidence"]
    assert second["dependencies"]["status"] == "warn" and "no backend quota" in second["dependencies"]["evidence"]
    assert second["network_policy"]["status"] == "pass" and "from: app" in second["network_policy"]["evidence"]
