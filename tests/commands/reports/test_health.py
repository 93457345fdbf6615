"""/milvus health, capacity and reports, driven through the real CLI against real Prometheus servers.

``milvus-chatops run`` is what an operator (or a pipeline) types; the console saves charts to files
and prints their paths. Schedules are checked through the scheduler's own entry points: the job
list derived from config, and one post per scheduled time however often the run is attempted.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_runtime, load_settings
from bot.console import BlockRenderer, ConsoleMessenger
from bot.scheduler import jobs_from_config, run_job
from commands import build_registry
from tests.commands.reports.reports_helpers import INST, NS, Known, backfilled_prometheus
from tests.support.servers import free_port
from tests.support.wait import wait_for

ADMIN, VIEWER = "U0ADMIN", "U0VIEWER"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    known = Known(end=dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=2))
    with backfilled_prometheus(tmp_path_factory.mktemp("backfill"), known) as server:
        yield server


def _config(tmp: Path, prometheus_url: str) -> Path:
    path = tmp / "config.yaml"
    path.write_text(
        f"""
environments:
  prod:
    milvus: {{uri: "http://127.0.0.1:1"}}
    prometheus_url: "{prometheus_url}"
    prometheus_namespace: {NS}
    prometheus_instance: {INST}
    channels: {{reports: C0REPORTS}}
  dev:
    milvus: {{uri: "{tmp / "dev.db"}"}}
access:
  - {{role: admin, users: [{ADMIN}]}}
  - {{role: viewer, users: [{VIEWER}]}}
reports:
  timezone: Europe/Berlin
  health: {{cron: "0 8 * * *"}}
  capacity: {{cron: "0 9 * * 1", channel: C0CAPACITY, environments: [prod]}}
"""
    )
    return path


def _run(tmp: Path, config: Path, command: str, *, user: str = ADMIN, as_json: bool = False) -> tuple[int, str, str]:
    argv = [sys.executable, "-m", "bot", "run", command, "--config", str(config), "--user", user]
    if as_json:
        argv.append("--json")
    env = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp / "data")}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def test_capacity_json_has_verdict_checks_forecasts_and_recommendation(tmp_path: Path, history: Any) -> None:
    code, out, err = _run(tmp_path, _config(tmp_path, history.url), "/milvus capacity prod --no-chart", as_json=True)
    assert code == 0, err
    payload = json.loads(out)
    data = payload["data"]
    assert data["verdict"] == "yellow"
    assert payload["text"].startswith(":large_yellow_circle: Capacity report for prod: Needs attention")
    checks = {c["key"]: c for c in data["checks"]}
    assert checks["etcd"]["status"] == "yellow"
    assert checks["local_disk"]["available"] is False and checks["local_disk"]["value"] is None
    forecasts = {f["resource"]: f for f in data["forecasts"]}
    assert forecasts["memory"]["runs_out_at"] is not None
    assert forecasts["memory"]["window_seconds"] == pytest.approx(7 * 86400, rel=0.02)
    assert data["recommendation"]["plan_args"]["dim"] == 128
    assert data["charts"] == []
    buttons = [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons[0]["action_id"] == "plan_prefill"


def test_health_in_the_console_says_what_is_missing(tmp_path: Path, history: Any) -> None:
    code, out, err = _run(tmp_path, _config(tmp_path, history.url), "/milvus health prod")
    assert code == 0, err
    assert "Health report for prod" in out
    assert "Search QPS: not available: no such series in Prometheus" in out
    assert "Pod restarts / OOM kills: 0 restarts in the last hour" in out
    # No latency series in this Prometheus: no chart rather than an empty one.
    assert "file:" not in out


def test_capacity_window_option_and_chart_files(tmp_path: Path, history: Any) -> None:
    code, out, err = _run(tmp_path, _config(tmp_path, history.url), "/milvus capacity prod --window 30d")
    assert code == 0, err
    paths = [Path(line.split("file: ", 1)[1]) for line in out.splitlines() if "file: " in line]
    assert [p.name for p in paths] == ["capacity-memory-prod.png", "capacity-rows-prod.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    code, out, err = _run(tmp_path, _config(tmp_path, history.url), "/milvus capacity prod --window soon")
    assert code == 1
    assert "soon is not a window" in out + err


def test_prometheus_down_is_a_clear_message(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, _ = _run(tmp_path, _config(tmp_path, url), "/milvus health prod", as_json=True)
    assert code == 2
    text = json.loads(out)["text"]
    assert text.startswith(f"Prometheus at {url} is unreachable (connection failed); no metrics could be read")
    assert "reference `" in text


def test_environment_without_prometheus(tmp_path: Path, history: Any) -> None:
    code, out, _ = _run(tmp_path, _config(tmp_path, history.url), "/milvus capacity dev", as_json=True)
    assert code == 1
    assert json.loads(out)["text"].startswith("Environment `dev` has no Prometheus configured.")


def test_reports_lists_schedules_and_admin_runs_one_now(tmp_path: Path, history: Any) -> None:
    config = _config(tmp_path, history.url)
    code, out, err = _run(tmp_path, config, "/milvus reports", user=VIEWER, as_json=True)
    assert code == 0, err
    rows = {(r["kind"], r["environment"]): r for r in json.loads(out)["data"]["reports"]}
    # dev has no Prometheus, so only prod is scheduled; capacity goes to its own channel.
    assert set(rows) == {("health", "prod"), ("capacity", "prod")}
    assert rows[("health", "prod")]["channel"] == "C0REPORTS"
    assert rows[("capacity", "prod")]["channel"] == "C0CAPACITY"
    assert rows[("health", "prod")]["next_run"].endswith(("+01:00", "+02:00"))  # Europe/Berlin
    assert rows[("health", "prod")]["last_run"] is None

    code, out, _ = _run(tmp_path, config, "/milvus reports run health prod", user=VIEWER)
    assert code == 1
    code, out, err = _run(tmp_path, config, "/milvus reports run health prod")
    assert code == 0, err
    assert "Posted to #C0REPORTS" in out
    assert "── message in #C0REPORTS ──" in err and "Health report for prod" in err

    code, out, _ = _run(tmp_path, config, "/milvus reports", as_json=True)
    last = {(r["kind"], r["environment"]): r["last_run"] for r in json.loads(out)["data"]["reports"]}
    assert last[("health", "prod")]["trigger"] == "admin"
    assert last[("health", "prod")]["by"] == ADMIN
    assert last[("health", "prod")]["verdict"] == "green"
    assert last[("capacity", "prod")] is None


def test_scheduled_report_posts_once_per_scheduled_time(tmp_path: Path, history: Any) -> None:
    settings = load_settings(str(_config(tmp_path, history.url)))
    settings.data_dir = tmp_path / "data"
    out = io.StringIO()
    messenger = ConsoleMessenger(out, BlockRenderer(color=False), files_dir=tmp_path / "files")
    runtime = build_runtime(settings, lambda _store: messenger, build_registry())
    specs = {s.job_id: s for s in jobs_from_config(runtime.registry, runtime.config) if s.task == "report"}
    assert set(specs) == {"report:health:prod", "report:capacity:prod"}
    capacity = specs["report:capacity:prod"]
    assert (capacity.cron, capacity.timezone) == ("0 9 * * 1", "Europe/Berlin")
    assert capacity.kwargs == {"kind": "capacity", "env": "prod", "channel": "C0CAPACITY"}

    when = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
    first = run_job(runtime, capacity, when)
    again = run_job(runtime, capacity, when)  # a second replica, or a restart, for the same run
    assert first is not None and first.startswith(":large_yellow_circle: Capacity report for prod")
    assert again is None
    shown = out.getvalue()
    assert shown.count("── message in #C0CAPACITY ──") == 1
    assert shown.count("file for #C0CAPACITY: ") == 2  # the two charts, uploaded next to the message
    assert (tmp_path / "files" / "capacity-memory-prod.png").read_bytes().startswith(b"\x89PNG")


def test_scheduled_report_says_so_in_the_channel_when_prometheus_is_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = load_settings(str(_config(tmp_path, url)))
    settings.data_dir = tmp_path / "data"
    out = io.StringIO()
    messenger = ConsoleMessenger(out, BlockRenderer(color=False), files_dir=tmp_path / "f")
    runtime = build_runtime(settings, lambda _store: messenger, build_registry())
    spec = next(s for s in jobs_from_config(runtime.registry, runtime.config) if s.job_id == "report:health:prod")
    summary = run_job(runtime, spec, dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC))
    assert summary is not None and summary.startswith(f"Prometheus at {url} is unreachable")
    shown = out.getvalue()
    assert "── message in #C0REPORTS ──" in shown
    assert f"⚠️ Health report for prod could not be built: Prometheus at {url} is unreachable" in shown
    code, listing, _ = _run(tmp_path, _config(tmp_path, url), "/milvus reports", as_json=True)
    assert code == 0
    last = {(r["kind"], r["environment"]): r["last_run"] for r in json.loads(listing)["data"]["reports"]}
    assert last[("health", "prod")]["verdict"] == "failed"
    assert last[("health", "prod")]["trigger"] == "schedule"


def test_slack_gets_the_report_and_its_charts_through_files_upload_v2(
    tmp_path: Path, history: Any, bot_server: Any, fake_slack: Any
) -> None:
    server = bot_server(_config(tmp_path, history.url).read_text())
    response = server.slack.slash_command(
        "capacity prod", user_id=ADMIN, channel_id="C0OPS", response_url=fake_slack.response_url("cap1")
    )
    assert response.status_code == 200
    post = fake_slack.wait_for_response("cap1", lambda p: "Capacity report" in (p.text or ""), timeout=60)
    assert post.text.startswith(":large_yellow_circle: Capacity report for prod: Needs attention")
    assert any(b.get("type") == "actions" for b in post.body.get("blocks", []))

    def uploaded() -> list[Any]:
        files = [f for f in fake_slack.files() if f.completed and f.channel == "C0OPS"]
        return files if len(files) == 2 else []

    files = wait_for(uploaded, timeout=30, message=lambda: f"files so far: {fake_slack.files()}")
    assert sorted(f.filename for f in files) == ["capacity-memory-prod.png", "capacity-rows-prod.png"]
    assert all(f.content and f.content.startswith(b"\x89PNG") for f in files)
    methods = {c.method for c in fake_slack.calls()}
    assert {"files.getUploadURLExternal", "files.completeUploadExternal"} <= methods
    assert "files.upload" not in methods


def test_the_recommendation_button_opens_the_plan_prefilled(tmp_path: Path, history: Any) -> None:
    config = _config(tmp_path, history.url)
    argv = [sys.executable, "-m", "bot", "console", "--config", str(config), "--user", VIEWER]
    env = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(
        argv, input="/milvus capacity prod --no-chart\n1\nexit\n", capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "[1] Open /milvus plan" in proc.stdout
    typed = proc.stdout.split("here, type ", 1)[1].split("\n", 1)[0].removesuffix(".")
    assert typed.startswith("/milvus plan prod ")
    assert "--dim 128" in typed
