"""integrations/helm.py against the FAKE helm executable (tests/support/bin/helm).

No real helm can be installed here; the fake is a separate process on PATH that records the exact
argv and values file it was given and answers status/history/get values from a state file, so these
tests check what the bot really asks helm to do.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot.errors import IntegrationError, UsageError
from integrations.helm import Helm, HelmFailed, duration_seconds
from tests.support.fake_helm import FakeHelm


@pytest.fixture
def fake_helm(tmp_path: Path) -> FakeHelm:
    helm = FakeHelm(tmp_path / "helm-state")
    helm.set_chart("milvus/milvus", {"4.2.58": "2.5.16", "5.0.19": "2.6.15"})
    return helm


@pytest.fixture
def helm(fake_helm: FakeHelm) -> Helm:
    return Helm(env=fake_helm.env(), kube_context="staging-ctx")


def test_upgrade_install_runs_an_exact_argv_with_a_private_values_file(fake_helm: FakeHelm, helm: Helm) -> None:
    status = helm.upgrade_install(
        "milvus", "milvus/milvus", namespace="milvus-staging", chart_version="4.2.58",
        values={"queryNode": {"replicas": 3}, "image": {"all": {"tag": "v2.5.16"}}}, timeout="10m",
    )
    assert (status.revision, status.status, status.chart_version, status.app_version) == (1, "deployed", "4.2.58",
                                                                                          "2.5.16")
    [call] = fake_helm.calls("upgrade")
    argv = call.argv[1:]
    assert argv[:4] == ["upgrade", "--install", "milvus", "milvus/milvus"]
    assert call.flag("--namespace") == "milvus-staging"
    assert call.flag("--version") == "4.2.58"
    assert call.flag("--timeout") == "10m"
    assert call.has_flag("--atomic") and call.has_flag("--wait")
    assert call.flag("--kube-context") == "staging-ctx"
    assert not call.has_flag("--set")  # values only ever travel in the file
    assert call.values == {"queryNode": {"replicas": 3}, "image": {"all": {"tag": "v2.5.16"}}}
    # The file is gone afterwards: values may hold credentials.
    assert not os.path.exists(call.values_files[0]["path"])


def test_values_file_is_readable_only_by_the_bot(tmp_path: Path, fake_helm: FakeHelm) -> None:
    # A wrapper on PATH that records the mode of the -f file before handing over to the fake.
    wrapper_dir = tmp_path / "wrap"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "helm"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do if [ -f "$a" ]; then stat -c %a "$a" > "$MODE_OUT"; fi; done\n'
        f'exec {fake_helm.binary} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = fake_helm.env()
    env["PATH"] = f"{wrapper_dir}{os.pathsep}{env['PATH']}"
    env["MODE_OUT"] = str(tmp_path / "mode")
    Helm(env=env).upgrade_install("milvus", "milvus/milvus", namespace="m", chart_version="4.2.58",
                                  values={"a": 1}, timeout="1m")
    assert (tmp_path / "mode").read_text().strip() == "600"


def test_status_history_and_values_are_read_from_json(fake_helm: FakeHelm, helm: Helm) -> None:
    assert helm.status("milvus", "milvus-staging") is None
    assert helm.history("milvus", "milvus-staging") == []
    assert helm.get_values("milvus", "milvus-staging") == {}
    fake_helm.seed_release("milvus", "milvus-staging", chart="milvus", version="4.2.50", app_version="2.5.14",
                           values={"queryNode": {"replicas": 4}}, revisions=3)
    status = helm.status("milvus", "milvus-staging")
    assert status is not None and (status.revision, status.chart, status.app_version) == (3, "milvus", "2.5.14")
    revisions = helm.history("milvus", "milvus-staging", limit=2)
    assert [r.revision for r in revisions] == [2, 3]
    assert revisions[-1].chart == "milvus-4.2.50" and revisions[-1].status == "deployed"
    assert helm.get_values("milvus", "milvus-staging") == {"queryNode": {"replicas": 4}}
    assert all(c.flag("--output") == "json" for c in fake_helm.calls() if c.command in ("status", "history", "get"))


def test_rollback_names_the_revision_and_waits(fake_helm: FakeHelm, helm: Helm) -> None:
    fake_helm.seed_release("milvus", "m", revisions=3)
    helm.rollback("milvus", "m", revision=2, timeout="5m")
    [call] = fake_helm.calls("rollback")
    assert call.positional == ["rollback", "milvus", "2"]
    assert call.has_flag("--wait") and call.flag("--timeout") == "5m"
    assert helm.status("milvus", "m").description == "Rollback to 2"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("release", "namespace", "chart", "version", "timeout"),
    [
        ("--post-renderer=/tmp/x", "m", "milvus/milvus", "4.2.58", "5m"),
        ("milvus", "m --kubeconfig=/etc/x", "milvus/milvus", "4.2.58", "5m"),
        ("milvus", "m", "milvus/milvus;rm -rf /", "4.2.58", "5m"),
        ("milvus", "m", "-f/etc/passwd", "4.2.58", "5m"),
        ("milvus", "m", "milvus/milvus", "--devel", "5m"),
        ("milvus", "m", "milvus/milvus", "4.2.58 --set x=1", "5m"),
        ("milvus", "m", "milvus/milvus", ">=4.0.0", "5m"),
        ("milvus", "m", "milvus/milvus", "4.2.58", "5m --no-hooks"),
        ("Milvus_Prod", "m", "milvus/milvus", "4.2.58", "5m"),
    ],
)
def test_argv_injection_is_refused_before_helm_runs(
    fake_helm: FakeHelm, helm: Helm, release: str, namespace: str, chart: str, version: str, timeout: str
) -> None:
    with pytest.raises(UsageError):
        helm.upgrade_install(release, chart, namespace=namespace, chart_version=version, values={}, timeout=timeout)
    assert fake_helm.calls() == []


def test_bad_kube_context_is_refused() -> None:
    with pytest.raises(UsageError):
        Helm(kube_context="--kubeconfig=/etc/shadow")


def test_a_failed_upgrade_becomes_an_integration_error_with_helms_reason(fake_helm: FakeHelm, helm: Helm) -> None:
    fake_helm.seed_release("milvus", "m", revisions=1)
    fake_helm.fail_next("upgrade", stderr="timed out waiting for the condition")
    with pytest.raises(HelmFailed) as info:
        helm.upgrade_install("milvus", "milvus/milvus", namespace="m", chart_version="4.2.58", values={},
                             timeout="1m")
    assert "rolled back due to atomic" in info.value.detail
    assert info.value.system == "helm"


def test_a_hanging_helm_is_stopped_at_the_call_timeout(fake_helm: FakeHelm) -> None:
    fake_helm.seed_release("milvus", "m")
    fake_helm.fail_next("status", hang_seconds=30)
    helm = Helm(env=fake_helm.env(), call_timeout_s=1)
    with pytest.raises(IntegrationError, match="did not finish within 1 s"):
        helm.status("milvus", "m")


def test_missing_binary_says_so(tmp_path: Path) -> None:
    helm = Helm(env={"PATH": str(tmp_path)})
    with pytest.raises(IntegrationError, match="not found on PATH"):
        helm.status("milvus", "m")


def test_durations() -> None:
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("90s") == 90
    with pytest.raises(UsageError):
        duration_seconds("15 minutes")
