"""The fake helm records what it was asked to do and answers like Helm 3."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.fake_helm import FakeHelm


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    # Found on PATH, as the bot finds it: the fixture put the fake first.
    return subprocess.run(["helm", *args], capture_output=True, text=True, timeout=30, check=False)


def test_records_argv_and_a_copy_of_the_values_file(fake_helm: FakeHelm, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("cluster:\n  enabled: true\nqueryNode:\n  replicas: 2\n")
    result = helm(
        "upgrade", "--install", "prod", "milvus/milvus", "--namespace", "milvus-prod", "--version", "4.2.8",
        "-f", str(values), "--atomic", "--wait", "--timeout", "10m",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    values.write_text("overwritten after the call\n")

    [call] = fake_helm.calls("upgrade")
    assert call.argv[:4] == ["helm", "upgrade", "--install", "prod"]
    assert call.flag("--namespace") == "milvus-prod" and call.flag("--version") == "4.2.8"
    assert call.has_flag("--atomic") and call.exit_code == 0
    assert call.values == {"cluster": {"enabled": True}, "queryNode": {"replicas": 2}}


def test_status_history_and_values_follow_upgrades_and_rollbacks(fake_helm: FakeHelm, tmp_path: Path) -> None:
    fake_helm.set_chart("milvus/milvus", {"4.2.8": "2.4.5", "4.2.9": "2.4.6"})
    for version, replicas in (("4.2.8", 1), ("4.2.9", 3)):
        values = tmp_path / f"v{version}.yaml"
        values.write_text(f"queryNode:\n  replicas: {replicas}\n")
        assert (
            helm(
                "upgrade", "--install", "m", "milvus/milvus", "-n", "ns", "--version", version, "-f", str(values)
            ).returncode
            == 0
        )
    assert helm("rollback", "m", "1", "-n", "ns").returncode == 0

    history = json.loads(helm("history", "m", "-n", "ns", "-o", "json").stdout)
    assert [(h["revision"], h["status"], h["app_version"]) for h in history] == [
        (1, "superseded", "2.4.5"),
        (2, "superseded", "2.4.6"),
        (3, "deployed", "2.4.5"),
    ]
    assert history[2]["description"] == "Rollback to 1"
    status = json.loads(helm("status", "m", "-n", "ns", "-o", "json").stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 3
    assert json.loads(helm("get", "values", "m", "-n", "ns", "-o", "json").stdout) == {"queryNode": {"replicas": 1}}
    rev2 = json.loads(helm("get", "values", "m", "-n", "ns", "-o", "json", "--revision", "2").stdout)
    assert rev2 == {"queryNode": {"replicas": 3}}
    assert [r["name"] for r in json.loads(helm("list", "-o", "json", "-A").stdout)] == ["m"]
    assert json.loads(helm("list", "-o", "json").stdout) == []  # other namespace than "default"


def test_failures_look_like_helms(fake_helm: FakeHelm, tmp_path: Path) -> None:
    fake_helm.seed_release("m", "ns", values={"a": 1}, revisions=2)
    fake_helm.fail_next("upgrade", stderr="timed out waiting for the condition")
    failed = helm("upgrade", "m", "milvus/milvus", "-n", "ns", "--atomic", "--wait")
    assert failed.returncode == 1
    assert "has been rolled back due to atomic being set: timed out" in failed.stderr
    history = json.loads(helm("history", "m", "-n", "ns", "-o", "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "superseded", "failed", "deployed"]

    assert "release: not found" in helm("status", "nope", "-n", "ns").stderr
    unknown = helm("upgrade", "m", "milvus/milvus", "--no-such-flag")
    assert unknown.returncode == 1 and "unknown flag: --no-such-flag" in unknown.stderr
    assert fake_helm.calls()[-1].exit_code == 1


def test_a_hang_lasts_until_the_caller_gives_up(fake_helm: FakeHelm) -> None:
    fake_helm.seed_release("m", "ns")
    fake_helm.fail_next("status", hang_seconds=30)
    try:
        subprocess.run(["helm", "status", "m", "-n", "ns"], capture_output=True, timeout=1, check=False)
    except subprocess.TimeoutExpired:
        pass
    else:
        raise AssertionError("the fake helm answered instead of hanging")
    assert fake_helm.calls("status")[0].exit_code is None  # killed before it finished
