"""AlertmanagerClient against a real Alertmanager (Debian prometheus-alertmanager) on loopback."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.errors import IntegrationError
from integrations.alertmanager import AlertmanagerClient, Matcher, exact_matchers
from tests.commands.alerts.helpers import alertmanager_yaml, am_post_alerts, am_state
from tests.support.servers import free_port, start_alertmanager
from tests.support.wait import wait_for


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    # The webhook goes nowhere: these tests only use the API.
    server = start_alertmanager(tmp_path_factory.mktemp("am"), alertmanager_yaml(f"http://127.0.0.1:{free_port()}/x"))
    yield server
    server.stop()


def _fire(url: str, **labels: str) -> None:
    now = dt.datetime.now(dt.UTC)
    am_post_alerts(url, [{
        "labels": labels,
        "annotations": {"summary": "test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + dt.timedelta(minutes=5)).isoformat(),
    }])


def test_a_silence_with_exact_matchers_suppresses_exactly_that_alert_until_expired(alertmanager):
    client = AlertmanagerClient(alertmanager.url, timeout=5)
    _fire(alertmanager.url, alertname="ClientTest", pod="a", severity="warning")
    _fire(alertmanager.url, alertname="ClientTest", pod="b", severity="warning")
    wait_for(lambda: len(am_state(alertmanager.url, "ClientTest")) == 2, timeout=10)

    silence_id = client.create_silence(
        exact_matchers({"alertname": "ClientTest", "pod": "a", "severity": "warning"}),
        ends_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        created_by="U0OPERATOR",
        comment="testing",
    )

    def states():
        return {a["labels"]["pod"]: a["status"]["state"] for a in am_state(alertmanager.url, "ClientTest")}

    wait_for(lambda: states() == {"a": "suppressed", "b": "active"}, timeout=10, message=lambda: str(states()))
    stored = client.get_silence(silence_id)
    assert stored is not None
    assert stored["createdBy"] == "U0OPERATOR" and stored["comment"] == "testing"
    assert stored["status"]["state"] == "active"
    assert {m["name"]: (m["value"], m["isEqual"], m["isRegex"]) for m in stored["matchers"]} == {
        "alertname": ("ClientTest", True, False), "pod": ("a", True, False), "severity": ("warning", True, False),
    }

    assert client.expire_silence(silence_id) is True
    wait_for(lambda: states() == {"a": "active", "b": "active"}, timeout=10, message=lambda: str(states()))
    # Expiring twice is not an error: the outcome the caller wanted already holds.
    assert client.expire_silence(silence_id) is True
    assert client.get_silence(silence_id)["status"]["state"] == "expired"  # type: ignore[index]
    assert any(a["fingerprint"] for a in client.list_alerts(filters=['alertname="ClientTest"']))


def test_unknown_silence_reads_as_none(alertmanager):
    client = AlertmanagerClient(alertmanager.url)
    assert client.get_silence("00000000-0000-0000-0000-000000000000") is None
    assert client.expire_silence("00000000-0000-0000-0000-000000000000") is False


def test_refused_request_is_an_integration_error_with_the_reason(alertmanager):
    client = AlertmanagerClient(alertmanager.url)
    with pytest.raises(IntegrationError) as caught:
        client.create_silence(
            [Matcher("alertname", "")], ends_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            created_by="U1", comment="x",
        )
    assert "refused to create a silence: HTTP 400" in caught.value.message
    assert caught.value.system == "alertmanager"


def test_unreachable_alertmanager_says_so_and_hides_credentials():
    port = free_port()
    client = AlertmanagerClient(f"http://admin:hunter22@127.0.0.1:{port}", timeout=2)
    with pytest.raises(IntegrationError) as caught:
        client.create_silence(
            [Matcher("alertname", "X")], ends_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            created_by="U1", comment="x",
        )
    text = caught.value.user_text()
    assert f"Alertmanager at http://127.0.0.1:{port} is unreachable" in text
    assert "Try again" in text
    assert "hunter22" not in text and "admin" not in text
    assert client.ready() is False


def test_a_silence_without_matchers_is_refused_before_any_request():
    with pytest.raises(ValueError, match="silence everything"):
        AlertmanagerClient("http://127.0.0.1:9").create_silence(
            [], ends_at=dt.datetime.now(dt.UTC), created_by="U1", comment=""
        )
    with pytest.raises(ValueError, match="http"):
        AlertmanagerClient("file:///etc/passwd")
