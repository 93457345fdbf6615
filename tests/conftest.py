"""Shared fixtures: real local servers start once per session; fakes are reset for each test."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from tests.support.fake_slack import FakeSlack

pytest_plugins = ["tests.support.bot_server"]
if importlib.util.find_spec("tests.support.fixtures"):
    pytest_plugins.append("tests.support.fixtures")


@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlack) -> FakeSlack:
    """The FAKE Slack Web API, emptied for each test."""
    fake_slack_server.reset()
    return fake_slack_server
