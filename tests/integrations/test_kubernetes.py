"""integrations/kubernetes.py through the official client against the FAKE Kubernetes API server.

No kube-apiserver runs here: tests/support/fake_kube.py is an HTTP server that stores objects and
answers the REST paths the client uses. It runs no controllers, so tests set pod status themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import IntegrationError
from integrations.kubernetes import KubeCluster, connect, milvus_selector, readiness
from tests.support.fake_kube import FAKE_TOKEN, FakeKube

LABELS = {"app.kubernetes.io/instance": "milvus", "app.kubernetes.io/name": "milvus"}


@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(workdir=tmp_path) as kube:
        yield kube


@pytest.fixture
def cluster(fake_kube: FakeKube) -> KubeCluster:
    return connect(context=None, kubeconfig=str(fake_kube.kubeconfig_path()), timeout_s=5)


def test_prepare_creates_namespace_service_account_and_policy_once(fake_kube: FakeKube, cluster: KubeCluster) -> None:
    assert cluster.prepare("milvus-prod", "milvus", ["app", "batch"]) == {
        "namespace": "created", "service_account": "created", "network_policy": "created",
    }  # fmt: skip
    ns = fake_kube.get("Namespace", "milvus-prod")
    assert ns is not None and ns["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "milvus-chatops"
    assert fake_kube.get("ServiceAccount", "milvus-milvus", "milvus-prod") is not None
    assert cluster.prepare("milvus-prod", "milvus", ["app", "batch"]) == {
        "namespace": "unchanged", "service_account": "unchanged", "network_policy": "unchanged",
    }  # fmt: skip
    # A changed client list replaces the policy.
    assert cluster.prepare("milvus-prod", "milvus", ["app"])["network_policy"] == "updated"


def test_network_policy_admits_only_client_namespaces_to_19530(fake_kube: FakeKube, cluster: KubeCluster) -> None:
    cluster.prepare("milvus-prod", "milvus", ["app"])
    policy = fake_kube.get("NetworkPolicy", "milvus-milvus-clients", "milvus-prod", api_version="networking.k8s.io/v1")
    assert policy is not None
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/instance": "milvus"}}
    assert spec["policyTypes"] == ["Ingress"]
    to_19530 = [rule for rule in spec["ingress"] if {"protocol": "TCP", "port": 19530} in rule.get("ports", [])]
    assert len(to_19530) == 1
    [source] = to_19530[0]["from"]
    assert source["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["app"]}
    ]
    # No other rule opens 19530 to other namespaces: the only cross-namespace rule is the metrics port.
    for rule in spec["ingress"]:
        if rule is to_19530[0]:
            continue
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                assert rule["ports"] == [{"protocol": "TCP", "port": 9091}]


def test_existing_namespace_gets_labels_added(fake_kube: FakeKube, cluster: KubeCluster) -> None:
    fake_kube.create_namespace("milvus-prod", {"team": "search"})
    assert cluster.ensure_namespace("milvus-prod", {"app.kubernetes.io/managed-by": "milvus-chatops"}) == "updated"
    labels = fake_kube.get("Namespace", "milvus-prod")["metadata"]["labels"]  # type: ignore[index]
    assert labels["team"] == "search" and labels["app.kubernetes.io/managed-by"] == "milvus-chatops"


def test_dry_run_writes_nothing(fake_kube: FakeKube, cluster: KubeCluster) -> None:
    assert cluster.prepare("milvus-new", "milvus", ["app"], dry_run=True)["namespace"] == "would create"
    assert "milvus-new" not in fake_kube.namespaces()
    assert not fake_kube.requests("POST")


def test_pod_readiness_and_problems(fake_kube: FakeKube, cluster: KubeCluster) -> None:
    fake_kube.create_namespace("m")
    fake_kube.set_pod("m", "milvus-proxy-0", {**LABELS, "component": "proxy"})
    fake_kube.set_pod("m", "milvus-querynode-0", {**LABELS, "component": "querynode"})
    fake_kube.set_pod("m", "milvus-querynode-1", {**LABELS, "component": "querynode"}, ready=False,
                      container_state="ImagePullBackOff")
    fake_kube.set_pod("m", "milvus-datanode-0", {**LABELS, "component": "datanode"}, ready=False,
                      container_state={"terminated": {"reason": "OOMKilled", "exitCode": 137}})
    fake_kube.set_pod("m", "milvus-etcd-0", {"app.kubernetes.io/instance": "milvus", "app.kubernetes.io/name": "etcd"})
    fake_kube.set_pod("m", "other-proxy-0", {"app.kubernetes.io/instance": "other", "app.kubernetes.io/name": "milvus"})
    pods = cluster.pods("m", milvus_selector("milvus"))
    assert sorted(p.name for p in pods) == ["milvus-datanode-0", "milvus-proxy-0", "milvus-querynode-0",
                                            "milvus-querynode-1"]
    state = readiness(pods)
    assert state.components == {"proxy": (1, 1), "querynode": (1, 2), "datanode": (0, 1)}
    assert not state.all_ready
    assert sorted(state.problems) == ["milvus-datanode-0: OOMKilled", "milvus-querynode-1: ImagePullBackOff"]
    assert state.line().startswith("2/4 pods ready")


def test_warning_events_for_the_release(fake_kube: FakeKube, cluster: KubeCluster) -> None:
    fake_kube.create_namespace("m")
    fake_kube.add_event("m", {"kind": "Pod", "name": "milvus-querynode-1"}, "Failed",
                        'Failed to pull image "milvusdb/milvus:v9.9.9": not found')
    fake_kube.add_event("m", {"kind": "Pod", "name": "milvus-proxy-0"}, "Pulled", "ok", type="Normal")
    fake_kube.add_event("m", {"kind": "Pod", "name": "unrelated-0"}, "BackOff", "other app")
    events = cluster.warning_events("m", prefix="milvus")
    assert [e.reason for e in events] == ["Failed"]
    assert "v9.9.9" in events[0].line()


def test_api_errors_become_integration_errors_without_the_token(fake_kube: FakeKube, cluster: KubeCluster) -> None:
    fake_kube.fail_next("GET", "/api/v1/namespaces/m/pods", 403, message="pods is forbidden")
    with pytest.raises(IntegrationError) as info:
        cluster.pods("m", milvus_selector("milvus"))
    assert "403" in info.value.message and "forbidden" in info.value.message
    assert FAKE_TOKEN not in info.value.message


def test_unreachable_api_server(tmp_path: Path) -> None:
    with FakeKube(workdir=tmp_path) as kube:
        path = kube.kubeconfig_path()
    cluster = connect(context=None, kubeconfig=str(path), timeout_s=1)
    with pytest.raises(IntegrationError, match="could not list pods"):
        cluster.pods("m", milvus_selector("milvus"))


def test_bad_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text("not: [a kubeconfig")
    with pytest.raises(IntegrationError, match="Cannot load Kubernetes credentials"):
        connect(context=None, kubeconfig=str(tmp_path / "kc"))
