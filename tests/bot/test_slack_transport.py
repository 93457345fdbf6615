"""The bot as Slack sees it: `milvus-chatops serve` in a subprocess, signed requests, a fake Slack API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pymilvus import MilvusClient

from tests.support.bot_server import SIGNING_SECRET, BotServer

ADMIN, VIEWER, STRANGER = "U0ADMIN", "U0VIEWER", "U0STRANGER"


def config_for(milvus_db: str) -> str:
    return f"""
environments:
  local:
    milvus: {{uri: "{milvus_db}"}}
access:
  - {{role: admin, users: [{ADMIN}]}}
  - {{role: viewer, users: [{VIEWER}], groups: [S0READERS]}}
"""


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory):
    """A real Milvus Lite database with two collections, closed before the bot opens it."""
    path = str(tmp_path_factory.mktemp("milvus") / "milvus.db")
    client = MilvusClient(path)
    client.create_collection("docs", dimension=8)
    client.insert("docs", [{"id": i, "vector": [i / 10] * 8} for i in range(25)])
    client.create_collection("empty_one", dimension=4)
    client.release_collection("empty_one")
    client.close()
    # Milvus Lite keeps its server (and the file lock) for the process; let the bot's process have it.
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)
    return path


@pytest.fixture(scope="module")
def bot(milvus_db, fake_slack_server, tmp_path_factory):
    """One bot for the module: these tests only read, and each uses its own response_url."""
    server = BotServer(tmp_path_factory.mktemp("bot"), fake_slack_server.url, config_for(milvus_db), {})
    server.start()
    yield server
    server.close()


def test_status_reports_real_collections_through_the_response_url(bot, fake_slack):
    ack = bot.slack.slash_command("status", user_id=VIEWER, response_url=fake_slack.response_url("r1"))
    assert ack.status_code == 200
    reply = fake_slack.wait_for_response("r1", timeout=30)
    text = reply.all_text()
    assert "milvus_lite" in text
    # Milvus Lite does not reload collections when its file is reopened, so both read as released.
    assert "`default.docs`: 25 rows · :white_circle: released · AUTOINDEX" in text
    assert "`default.empty_one`: 0 rows · :white_circle: released" in text
    assert "2 collections, 25 rows" in text


def test_status_json_data_matches_the_contract(tmp_path, milvus_db, bot):
    import json
    import os

    # Milvus Lite lets one process open a file; the module's bot has it, so take a copy.
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "copy.db"
    shutil.copytree(milvus_db, copy) if Path(milvus_db).is_dir() else shutil.copy(milvus_db, copy)
    (tmp_path / "c.yaml").write_text(config_for(str(copy)))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "run",
            "/milvus status",
            "--json",
            "--config",
            str(tmp_path / "c.yaml"),
            "--user",
            VIEWER,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path / "d")},
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert set(payload) == {"text", "blocks", "response_type", "data"}
    data = payload["data"]
    assert data["environment"] == "local" and data["milvus_version"].startswith("milvus_lite")
    docs = next(c for c in data["collections"] if c["name"] == "docs")
    assert docs == {"database": "default", "name": "docs", "rows": 25, "loaded": False, "index_types": ["AUTOINDEX"]}


def test_a_forged_signature_or_a_stale_timestamp_is_refused(bot, fake_slack):
    from tests.support.slack_signing import slash_command_body

    body = slash_command_body("status", user_id=ADMIN, response_url=fake_slack.response_url("forged"))
    assert bot.slack.post(body, secret="not-the-secret").status_code == 401
    assert bot.slack.post(body, timestamp=int(time.time()) - 6 * 60).status_code == 401
    assert bot.slack.post_unsigned(body).status_code == 401
    # The genuine request still works, so the refusals above were about the signature alone.
    assert bot.slack.post(body).status_code == 200
    fake_slack.wait_for_response("forged", timeout=30)
    assert SIGNING_SECRET not in bot.log()


def test_a_user_without_the_role_is_refused_and_the_refusal_is_audited(bot, fake_slack):
    bot.slack.slash_command("audit", user_id=STRANGER, response_url=fake_slack.response_url("denied"))
    refusal = fake_slack.wait_for_response("denied").all_text()
    assert "`audit` needs the admin role; you have no role." in refusal

    bot.slack.slash_command("audit --user U0STRANGER", user_id=ADMIN, response_url=fake_slack.response_url("log"))
    log = fake_slack.wait_for_response("log").all_text()
    assert "`audit`" in log and "denied" in log


def test_roles_come_from_slack_user_groups(bot_server, milvus_db, fake_slack):
    fake_slack.set_usergroup("S0READERS", ["U0GROUPIE"])
    bot = bot_server(config_for(milvus_db))  # its own bot: group membership is cached for minutes
    bot.slack.slash_command("whoami", user_id="U0GROUPIE", response_url=fake_slack.response_url("who"))
    assert "`local`: viewer" in fake_slack.wait_for_response("who").all_text()


def test_unknown_subcommands_get_a_suggestion_and_help_lists_arguments(bot, fake_slack):
    bot.slack.slash_command("stauts", user_id=VIEWER, response_url=fake_slack.response_url("typo"))
    assert "Did you mean `/milvus status`?" in fake_slack.wait_for_response("typo").all_text()
    bot.slack.slash_command("help audit", user_id=VIEWER, response_url=fake_slack.response_url("help"))
    help_text = fake_slack.wait_for_response("help").all_text()
    assert "/milvus audit [--env <env>] [--user <user>] [--limit <limit>]" in help_text


def test_user_text_is_escaped_so_it_cannot_mention_the_channel(bot, fake_slack):
    bot.slack.slash_command("status <!channel>", user_id=VIEWER, response_url=fake_slack.response_url("esc"))
    reply = fake_slack.wait_for_response("esc").all_text()
    assert "There is no environment" in reply
    assert "<!channel>" not in reply


def whoami_count(bot) -> float:
    for line in bot.http.get("/metrics").text.splitlines():
        if line.startswith('milvus_chatops_commands_total{command="whoami",outcome="ok"}'):
            return float(line.split()[-1])
    return 0.0


def test_health_ready_and_metrics_endpoints(bot, fake_slack):
    assert bot.http.get("/healthz").text == "ok"
    assert bot.http.get("/readyz").status_code == 200
    before = whoami_count(bot)
    bot.slack.slash_command("whoami", user_id=VIEWER, response_url=fake_slack.response_url("m"))
    fake_slack.wait_for_response("m")
    assert whoami_count(bot) == before + 1
    assert "milvus_chatops_command_duration_seconds_bucket" in bot.http.get("/metrics").text
