"""The official kubernetes client works against FakeKube as against an API server."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client, watch

from tests.support.fake_kube import FakeKube
from tests.support.wait import wait_for


@pytest.fixture
def core(fake_kube: FakeKube) -> Any:
    # Any: the typed models make every field Optional, which is noise here.
    return client.CoreV1Api(fake_kube.api_client())


def test_namespace_create_read_patch_list(core: Any, fake_kube: FakeKube) -> None:
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name="milvus-prod", labels={"team": "search"}))
    created = core.create_namespace(body)
    assert created.status.phase == "Active" and created.metadata.uid
    core.patch_namespace("milvus-prod", {"metadata": {"labels": {"tier": "gold"}}})
    read = core.read_namespace("milvus-prod")
    assert read.metadata.labels["team"] == "search" and read.metadata.labels["tier"] == "gold"
    assert [n.metadata.name for n in core.list_namespace(label_selector="tier=gold").items] == ["milvus-prod"]
    assert fake_kube.requests("POST", "/api/v1/namespaces")[0].headers["authorization"].startswith("Bearer ")


def test_errors_carry_the_api_servers_status_codes(core: Any) -> None:
    with pytest.raises(client.ApiException) as err:
        core.read_namespace("absent")
    assert err.value.status == 404
    core.create_namespace({"metadata": {"name": "dup"}})
    with pytest.raises(client.ApiException) as err:
        core.create_namespace({"metadata": {"name": "dup"}})
    assert err.value.status == 409
    with pytest.raises(client.ApiException) as err:  # the namespace must exist first
        core.create_namespaced_service_account("absent", {"metadata": {"name": "bot"}})
    assert err.value.status == 404
    with pytest.raises(client.ApiException) as err:
        core.create_namespace({"metadata": {"name": "Not_Valid"}})
    assert err.value.status == 422


def test_network_policies_and_service_accounts(fake_kube: FakeKube, core: Any) -> None:
    core.create_namespace({"metadata": {"name": "m1"}})
    core.create_namespaced_service_account("m1", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="bot")))
    net: Any = client.NetworkingV1Api(fake_kube.api_client())
    policy = client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="only-clients"),
        spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress"]),
    )
    net.create_namespaced_network_policy("m1", policy)
    assert [p.metadata.name for p in net.list_namespaced_network_policy("m1").items] == ["only-clients"]
    stored = fake_kube.get("NetworkPolicy", "only-clients", "m1")
    assert stored is not None and stored["spec"]["policyTypes"] == ["Ingress"]
    assert fake_kube.get("ServiceAccount", "bot", "m1") is not None


def test_pods_by_label_selector_with_status_set_by_the_test(fake_kube: FakeKube, core: Any) -> None:
    instance = {"app.kubernetes.io/instance": "m1"}
    fake_kube.set_pod("m1", "m1-proxy-0", instance, ready=True)
    fake_kube.set_pod(
        "m1", "m1-querynode-0", instance, ready=False, container_state="CrashLoopBackOff", restart_count=7
    )
    fake_kube.set_pod("m1", "other-0", {"app.kubernetes.io/instance": "other"})
    pods = core.list_namespaced_pod("m1", label_selector="app.kubernetes.io/instance=m1").items
    by_name = {p.metadata.name: p.status.container_statuses[0] for p in pods}
    assert set(by_name) == {"m1-proxy-0", "m1-querynode-0"}
    assert by_name["m1-proxy-0"].ready and not by_name["m1-querynode-0"].ready
    assert by_name["m1-querynode-0"].restart_count == 7
    fake_kube.add_event("m1", {"kind": "Pod", "name": "m1-querynode-0"}, "BackOff", "Back-off restarting")
    events = core.list_namespaced_event("m1", field_selector="involvedObject.name=m1-querynode-0").items
    assert [(e.type, e.reason) for e in events] == [("Warning", "BackOff")]


def test_workloads_and_scale(fake_kube: FakeKube) -> None:
    apps: Any = client.AppsV1Api(fake_kube.api_client())
    fake_kube.set_deployment("m1", "m1-proxy", replicas=2, ready_replicas=1)
    fake_kube.set_statefulset("m1", "m1-etcd", replicas=3)
    assert [d.status.ready_replicas for d in apps.list_namespaced_deployment("m1").items] == [1]
    assert [s.status.replicas for s in apps.list_namespaced_stateful_set("m1").items] == [3]
    apps.patch_namespaced_deployment_scale("m1-proxy", "m1", {"spec": {"replicas": 4}})
    deployment = fake_kube.get("Deployment", "m1-proxy", "m1")
    assert deployment is not None and deployment["spec"]["replicas"] == 4


def test_watch_streams_added_modified_deleted(fake_kube: FakeKube, core: Any) -> None:
    labels = {"app.kubernetes.io/instance": "m1"}
    fake_kube.set_pod("m1", "m1-proxy-0", labels, ready=False, phase="Pending")
    seen: list[tuple[str, str, Any]] = []
    w = watch.Watch()

    def consume() -> None:
        for event in w.stream(
            core.list_namespaced_pod, "m1", label_selector="app.kubernetes.io/instance=m1", timeout_seconds=10
        ):
            seen.append((event["type"], event["object"].metadata.name, event["object"].status.phase))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    wait_for(lambda: seen, timeout=5, message="no initial ADDED event")
    fake_kube.set_pod("m1", "unrelated-0", {"app.kubernetes.io/instance": "x"})
    fake_kube.set_pod("m1", "m1-proxy-0", labels, ready=True)
    fake_kube.delete("Pod", "m1-proxy-0", "m1")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert seen == [
        ("ADDED", "m1-proxy-0", "Pending"),
        ("MODIFIED", "m1-proxy-0", "Running"),
        ("DELETED", "m1-proxy-0", "Running"),
    ]


def test_injected_faults(fake_kube: FakeKube, core: Any) -> None:
    fake_kube.fail_next("GET", r"^/api/v1/namespaces/default$", status=503)
    with pytest.raises(client.ApiException) as err:
        core.read_namespace("default")
    assert err.value.status == 503
    assert core.read_namespace("default").metadata.name == "default"
