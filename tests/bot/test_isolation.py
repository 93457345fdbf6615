"""One hung Milvus slows only its own environment: the real `serve`, a TCP listener that accepts
connections and never answers (what a wedged proxy looks like), and Milvus Lite as the healthy one."""

from __future__ import annotations

import socket

import pytest
from pymilvus import MilvusClient

from bot.slack_app import ENV_WAITING, ENV_WORKERS
from tests.support.bot_server import BotServer

ADMIN = "U0ADMIN"
# More than the hung environment's lane holds, so its bound shows.
BURST = ENV_WORKERS + ENV_WAITING + 8


@pytest.fixture
def hung_milvus():
    """Connections complete (the kernel accepts them from the backlog) and then nothing is ever said."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def healthy_db(tmp_path):
    path = str(tmp_path / "ok.db")
    client = MilvusClient(path)
    client.create_collection("docs", dimension=4)
    client.close()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)
    return path


def test_a_hung_environment_does_not_hold_up_the_others(hung_milvus, healthy_db, fake_slack, tmp_path):
    config = f"""
environments:
  ok:
    milvus: {{uri: "{healthy_db}"}}
  hung:
    milvus: {{uri: "http://127.0.0.1:{hung_milvus}", timeout_s: 10}}
access:
  - {{role: admin, users: [{ADMIN}]}}
"""
    (tmp_path / "bot").mkdir()
    bot = BotServer(tmp_path / "bot", fake_slack.url, config, {})
    bot.start()
    try:
        # Open the healthy Milvus Lite once, so what follows measures waiting, not its start-up.
        bot.slack.slash_command("status ok", user_id=ADMIN, response_url=fake_slack.response_url("warm"))
        fake_slack.wait_for_response("warm", timeout=60)

        acks = [
            bot.slack.slash_command("status hung", user_id=ADMIN, response_url=fake_slack.response_url(f"h{i}"))
            for i in range(BURST)
        ]
        bot.slack.slash_command("whoami", user_id=ADMIN, response_url=fake_slack.response_url("who"))
        bot.slack.slash_command("status ok", user_id=ADMIN, response_url=fake_slack.response_url("ok"))
        assert "`ok`: admin" in fake_slack.wait_for_response("who", timeout=30).all_text()
        assert "`default.docs`" in fake_slack.wait_for_response("ok", timeout=30).all_text()
        # Both answered while the hung environment's first dial (10 s) had not even given up yet.
        assert not any(fake_slack.responses(f"h{i}") for i in range(BURST))

        # The hung environment's lane is bounded: the overflow is told at once, in the acknowledgement.
        assert all(a.status_code == 200 for a in acks)
        busy = [i for i, a in enumerate(acks) if "busy" in a.text]
        assert busy and "Environment `hung` is busy" in acks[busy[0]].text and "Try again" in acks[busy[0]].text
        accepted = [i for i in range(BURST) if i not in busy]
        # The rest fail with the connection error: one dial, remembered for the others meanwhile.
        for i in accepted:
            reply = fake_slack.wait_for_response(f"h{i}", timeout=60).all_text()
            assert "Cannot connect to Milvus" in reply or "not answering" in reply
    finally:
        bot.close()
