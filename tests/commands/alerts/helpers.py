"""Building blocks for the alerting tests: a runtime on a real SQLite store and the real outbox
talking to FakeSlack, and Alertmanager-shaped webhook payloads."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from slack_sdk import WebClient

from bot.context import Runtime
from bot.outbox import Outbox
from bot.settings import Settings
from bot.state import Store
from tests.support.runtime import build_test_runtime

TOKEN = "test-webhook-token-0123456789"
OPERATOR, VIEWER, PROD_ONLY = "U0OPERATOR", "U0VIEWER", "U0PRODONLY"
ZERO = "0001-01-01T00:00:00Z"


def config_dict(alertmanager_url: str | None = None) -> dict[str, Any]:
    prod: dict[str, Any] = {
        "milvus": {"uri": "http://127.0.0.1:9"},
        "prometheus_instance": "prod-milvus",
        "prometheus_namespace": "milvus",
    }
    if alertmanager_url:
        prod["alertmanager_url"] = alertmanager_url
    return {
        "environments": {
            "prod": prod,
            "staging": {
                "milvus": {"uri": "http://127.0.0.1:9"},
                "channels": {"alerts": {"default": "C0STAGING"}},
                **({"alertmanager_url": alertmanager_url} if alertmanager_url else {}),
            },
        },
        "channels": {
            "ops": "C0OPS",
            "alerts": {"critical": "C0CRIT", "warning": "C0WARN", "default": "C0DEFAULT"},
        },
        "access": [
            {"role": "operator", "users": [OPERATOR]},
            {"role": "viewer", "users": [VIEWER]},
            {"role": "operator", "users": [PROD_ONLY], "environments": ["staging"]},
            {"role": "viewer", "users": [PROD_ONLY], "environments": ["prod"]},
        ],
    }


def make_runtime(
    data_dir: Path, slack_api_url: str, *, alertmanager_url: str | None = None, config: dict[str, Any] | None = None
) -> tuple[Runtime, Outbox]:
    settings = Settings(data_dir=data_dir, alertmanager_webhook_token=TOKEN)  # type: ignore[call-arg]
    store = Store(settings.state_url)
    store.migrate()
    outbox = Outbox(store, WebClient(token="xoxb-test", base_url=slack_api_url, timeout=5))
    runtime = build_test_runtime(
        settings=settings,
        config=config or config_dict(alertmanager_url),
        store=store,
        messenger=outbox,
    )
    return runtime, outbox


def alert(
    name: str = "MilvusHighMemory",
    *,
    status: str = "firing",
    severity: str = "critical",
    starts: str = "2026-11-25T12:00:00.123456789Z",
    ends: str = ZERO,
    annotations: dict[str, str] | None = None,
    **labels: str,
) -> dict[str, Any]:
    all_labels = {"alertname": name, "severity": severity, **labels}
    return {
        "status": status,
        "labels": all_labels,
        "annotations": annotations if annotations is not None else {"summary": f"{name} summary"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1",
        "fingerprint": hashlib.sha256(json.dumps(all_labels, sort_keys=True).encode()).hexdigest()[:16],
    }


def resolved(a: dict[str, Any], ends: str = "2026-11-25T12:42:00Z") -> dict[str, Any]:
    out = copy.deepcopy(a)
    out["status"] = "resolved"
    out["endsAt"] = ends
    return out


def notification(alerts: list[dict[str, Any]], *, group_by: tuple[str, ...] = ("alertname",)) -> dict[str, Any]:
    first = alerts[0]["labels"]
    group_labels = {k: first[k] for k in group_by if k in first}
    common = {k: v for k, v in first.items() if all(a["labels"].get(k) == v for a in alerts)}
    common_annotations = {
        k: v for k, v in alerts[0]["annotations"].items() if all(a["annotations"].get(k) == v for a in alerts)
    }
    key = "{}:{" + ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    return {
        "receiver": "milvus-chatops",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": common_annotations,
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
    }


def deliver(runtime: Runtime, payload: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    from commands.alerts.intake import AlertIntake

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return AlertIntake(runtime).handle(headers, body)


def am_get(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + path, timeout=5) as response:
        return json.loads(response.read())


def am_post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    """Push alerts into a real Alertmanager the way Prometheus does (POST /api/v2/alerts)."""
    body = json.dumps(alerts).encode()
    request = urllib.request.Request(
        url + "/api/v2/alerts", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def am_state(url: str, alertname: str) -> list[dict[str, Any]]:
    return [a for a in am_get(url, "/api/v2/alerts") if a["labels"].get("alertname") == alertname]


def alertmanager_yaml(webhook_url: str, token: str = TOKEN, *, group_wait: str = "0s") -> str:
    return f"""
global:
  resolve_timeout: 5m
route:
  receiver: bot
  group_by: [alertname, environment]
  group_wait: {group_wait}
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: bot
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


class WebhookHarness:
    """Loopback HTTP in front of ``AlertIntake.handle`` (what bot/server.py does in `serve`)."""

    def __init__(self) -> None:
        self.runtime: Any = None
        harness = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if harness.runtime is None:
                    status, answer = 503, {"error": "no bot"}
                else:
                    from commands.alerts.intake import AlertIntake

                    status, answer = AlertIntake(harness.runtime).handle(dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alertmanager"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
