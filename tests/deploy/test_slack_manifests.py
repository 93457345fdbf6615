"""The two Slack app manifests: one app, two transports."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_http_and_socket_mode_manifests_differ_only_in_how_slack_reaches_the_bot():
    http, socket = load("slack-app-manifest.yaml"), load("slack-app-manifest.socket-mode.yaml")
    assert http["oauth_config"] == socket["oauth_config"]
    assert http["display_information"] == socket["display_information"]

    (http_command,) = http["features"]["slash_commands"]
    (socket_command,) = socket["features"]["slash_commands"]
    assert http_command["command"] == socket_command["command"] == "/milvus"
    # Over HTTP, Slack posts commands and button presses to the one route the bot verifies.
    assert http_command["url"].endswith("/slack/events")
    assert http["settings"]["interactivity"]["request_url"] == http_command["url"]
    assert http["settings"]["socket_mode_enabled"] is False
    # Over Socket Mode there is no URL anywhere: Slack would otherwise keep calling it.
    assert "url" not in socket_command and "request_url" not in socket["settings"]["interactivity"]
    assert socket["settings"]["socket_mode_enabled"] is True
    assert {k: v for k, v in http_command.items() if k != "url"} == socket_command
