"""Fixtures the alert command and storm tests share: one webhook harness and one real Alertmanager
delivering to it, started once per test module."""

from __future__ import annotations

import pytest

from tests.commands.alerts.helpers import WebhookHarness, alertmanager_yaml
from tests.support.servers import start_alertmanager


@pytest.fixture(scope="module")
def harness():
    h = WebhookHarness()
    yield h
    h.close()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory, harness):
    server = start_alertmanager(tmp_path_factory.mktemp("am"), alertmanager_yaml(harness.url))
    yield server
    server.stop()
