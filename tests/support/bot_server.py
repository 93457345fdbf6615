"""Runs the real ``milvus-chatops serve`` in a subprocess, pointed at local fakes and servers.

A subprocess, not an in-process app, so tests exercise the console script, the settings read from
the environment, start-up, and can SIGKILL the bot to test what survives a crash.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.slack_signing import SignedSlackClient
from tests.support.wait import wait_for

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-bot-token-0123456789"
WEBHOOK_TOKEN = "test-webhook-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotServer:
    def __init__(self, data_dir: Path, slack_api_url: str, config: str | None, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = data_dir / "config.yaml"
            self.config_path.write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if k != "SLACK_APP_TOKEN"}
        self.env = {
            **inherited,
            "MILVUS_CHATOPS_DATA_DIR": str(data_dir),
            "SLACK_API_URL": slack_api_url,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "ALERTMANAGER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "serve.log"
        self.slack = SignedSlackClient(self.url, SIGNING_SECRET)
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout: float = 30.0) -> BotServer:
        argv = [sys.executable, "-m", "bot", "serve", "--port", str(self.port)]
        if self.config_path:
            argv += ["--config", str(self.config_path)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=timeout, message=lambda: f"bot did not become ready:\n{self.log()[-3000:]}")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"bot exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, as in a crash or an OOM kill."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> BotServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        self.slack.close()
        self.http.close()

    def post_webhook(self, payload: Any, token: str | None = WEBHOOK_TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post("/alertmanager", json=payload, headers=headers)


@pytest.fixture
def bot_server(tmp_path: Path, fake_slack: Any) -> Iterator[Any]:
    """``start(config_yaml=None, env=None) -> BotServer``; every server started is stopped after the test."""
    servers: list[BotServer] = []

    def start(config: str | None = None, env: dict[str, str] | None = None, data_dir: Path | None = None) -> BotServer:
        directory = data_dir or tmp_path / f"bot{len(servers)}"
        directory.mkdir(parents=True, exist_ok=True)
        server = BotServer(directory, fake_slack.url, config, env or {})
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()
