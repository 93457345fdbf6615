"""Helm values rendered from a plan: parsed back as YAML and checked against the plan and the chart's keys."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import yaml

from bot.errors import UsageError
from commands.plan.sizing import Plan, parse_plan_input, plan
from commands.plan.values import chart_version_for, deep_merge, parse_set, render_values, values_for

# Top-level keys of milvus-helm's values.yaml.
CHART_TOP_LEVEL_KEYS = {
    "nameOverride", "fullnameOverride", "cluster", "replicaResourceGroups", "image", "nodeSelector",
    "tolerations", "affinity", "topologySpreadConstraints", "labels", "annotations", "volumes", "volumeMounts",
    "streaming", "customConfigMap", "extraConfigFiles", "service", "ingress", "serviceAccount", "metrics",
    "livenessProbe", "readinessProbe", "log", "heaptrack", "standalone", "proxy", "rootCoordinator",
    "queryCoordinator", "queryNode", "indexCoordinator", "indexNode", "dataCoordinator", "dataNode",
    "mixCoordinator", "streamingNode", "cdc", "attu", "minio", "etcd", "pulsarv3", "pulsar", "kafka",
    "woodpecker", "externalS3", "externalGcs", "externalEtcd", "externalPulsar", "externalKafka", "tei",
}  # fmt: skip
MILVUS_KEYS = {"proxy": "proxy", "mixCoordinator": "mixCoord", "queryNode": "queryNode", "dataNode": "dataNode"}


def make(**fields: Any) -> Plan:
    fields.setdefault("vectors", 100_000_000)
    fields.setdefault("dim", 768)
    return plan(parse_plan_input(fields))


def resources_of(p: Plan, name: str) -> dict[str, Any]:
    r = p.component(name)
    assert r is not None
    out: dict[str, Any] = {"requests": r.requests}
    if r.limits:
        out["limits"] = r.limits
    return out


@pytest.mark.parametrize(
    ("version", "chart"),
    [("2.5", "4.2.58"), ("2.5.16", "4.2.58"), ("v2.5.3", "4.2.58"), ("2.6", "5.0.19"), ("v2.6.15", "5.0.19")],
)
def test_chart_version_for_each_milvus_line(version: str, chart: str):
    assert chart_version_for(version) == chart


@pytest.mark.parametrize("version", ["2.4.17", "3.0", "latest"])
def test_chart_version_for_an_unsupported_line_is_a_user_error(version: str):
    with pytest.raises(UsageError, match=re.escape("2.5 (chart 4.2.x) and 2.6 (chart 5.0.x)")):
        chart_version_for(version)


def test_26_cluster_uses_streaming_nodes_and_no_index_nodes():
    p = make(index="HNSW", m=16)
    v = values_for(p)
    assert v["cluster"]["enabled"] is True
    assert v["image"]["all"]["tag"] == "v2.6.15"
    assert v["streaming"]["enabled"] is True
    assert v["indexNode"]["enabled"] is False
    assert v["streamingNode"]["replicas"] == 2
    assert v["streamingNode"]["resources"] == resources_of(p, "streamingNode")
    for key, name in MILVUS_KEYS.items():
        assert v[key]["replicas"] == p.component(name).replicas
        assert v[key]["resources"] == resources_of(p, name)
    assert v["queryNode"]["replicas"] == 11
    assert v["queryNode"]["resources"]["limits"] == {"cpu": "8", "memory": "32Gi"}
    # woodpecker: embedded in streaming nodes, so no Pulsar/Kafka pods
    assert v["pulsarv3"]["enabled"] is False
    assert v["kafka"]["enabled"] is False
    assert v["woodpecker"]["enabled"] is False


def test_25_cluster_enables_index_nodes_and_disables_streaming():
    p = make(index="HNSW", m=16, milvus_version="2.5")
    v = values_for(p)
    assert v["image"]["all"]["tag"] == "v2.5.16"
    assert v["streaming"]["enabled"] is False
    assert "streamingNode" not in v
    assert v["indexNode"]["enabled"] is True
    assert v["indexNode"]["replicas"] == 8
    assert v["indexNode"]["resources"] == resources_of(p, "indexNode")
    assert v["dataNode"]["replicas"] == 1
    # 2.5's default queue is Pulsar, sized by the plan
    assert v["pulsarv3"]["enabled"] is True
    assert v["kafka"]["enabled"] is False
    bk = v["pulsarv3"]["bookkeeper"]
    assert bk["replicaCount"] == 3
    assert bk["volumes"]["journal"]["size"] == "50Gi"
    assert bk["volumes"]["ledgers"]["size"] == "287Gi"
    assert bk["resources"] == {"requests": {"cpu": "2", "memory": "16Gi"}}
    assert v["pulsarv3"]["zookeeper"]["volumes"]["data"]["size"] == "50Gi"
    assert v["pulsarv3"]["broker"]["replicaCount"] == 2
    assert v["pulsarv3"]["proxy"]["replicaCount"] == 2


def test_kafka_plan_enables_kafka_and_disables_pulsar():
    p = make(index="HNSW", mq="kafka")
    v = values_for(p)
    assert v["kafka"]["enabled"] is True
    assert v["pulsarv3"]["enabled"] is False
    assert v["kafka"]["replicaCount"] == 3
    assert v["kafka"]["persistence"]["size"] == "287Gi"
    assert v["kafka"]["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"}}
    assert v["kafka"]["zookeeper"] == {
        "enabled": True,
        "replicaCount": 3,
        "resources": {"requests": {"cpu": "500m", "memory": "4Gi"}},
        "persistence": {"size": "50Gi"},
    }
    assert v["streaming"]["enabled"] is True  # 2.6 streaming nodes write their WAL to Kafka


@pytest.mark.parametrize(("version", "queue"), [("2.5", "rocksmq"), ("2.6", "woodpecker")])
def test_standalone_sets_cluster_disabled_and_sizes_one_pod(version: str, queue: str):
    p = make(vectors=1_000_000, milvus_version=version)
    v = values_for(p)
    assert v["cluster"]["enabled"] is False
    assert v["standalone"]["resources"] == resources_of(p, "standalone")
    assert v["standalone"]["messageQueue"] == queue
    assert v["standalone"]["persistence"]["persistentVolumeClaim"]["size"] == "50Gi"
    assert v["etcd"]["replicaCount"] == 1
    assert v["etcd"]["persistence"]["size"] == "10Gi"
    assert v["minio"]["mode"] == "standalone"
    assert v["minio"]["persistence"]["size"] == "30Gi"
    assert v["pulsarv3"]["enabled"] is False
    for key in ("proxy", "queryNode", "dataNode", "indexNode", "streamingNode", "mixCoordinator"):
        assert key not in v


def test_diskann_limits_query_node_local_disk():
    p = make(index="DISKANN")
    v = values_for(p)
    qn = v["queryNode"]
    assert qn["disk"] == {"enabled": True, "size": {"enabled": True}}
    # 307.0 GiB over 6 query nodes -> 52 GiB each
    assert qn["resources"]["limits"]["ephemeral-storage"] == "52Gi"
    assert qn["resources"]["requests"]["ephemeral-storage"] == "52Gi"
    assert "disk" not in values_for(make(index="HNSW"))["queryNode"]


def test_etcd_and_minio_follow_the_plan_and_keep_the_tools_etcd_settings():
    p = make(index="HNSW", m=16)
    v = values_for(p)
    assert v["etcd"]["replicaCount"] == 3
    assert v["etcd"]["persistence"]["size"] == "50Gi"
    assert v["etcd"]["resources"] == resources_of(p, "etcd")
    env = {e["name"]: e["value"] for e in v["etcd"]["extraEnvVars"]}
    assert env["ETCD_QUOTA_BACKEND_BYTES"] == "4294967296"
    assert v["etcd"]["autoCompactionMode"] == "revision"
    assert v["etcd"]["autoCompactionRetention"] == "1000"
    assert v["minio"]["mode"] == "distributed"
    assert v["minio"]["persistence"]["size"] == "632Gi"


def test_service_monitor_is_opt_in():
    p = make(vectors=1_000_000)
    assert values_for(p)["metrics"]["serviceMonitor"]["enabled"] is False
    assert values_for(p, service_monitor=True)["metrics"]["serviceMonitor"]["enabled"] is True


@pytest.mark.parametrize(
    ("version", "index", "mq", "vectors", "replicas"),
    [
        (version, index, mq, vectors, replicas)
        for version, index, mq, vectors, replicas in itertools.product(
            ["2.5", "2.6"],
            ["FLAT", "IVF_SQ8", "HNSW", "DISKANN", "IVF_PQ", "BIN_IVF_FLAT", "SCANN"],
            [None, "pulsar", "kafka", "woodpecker"],
            [1_000_000, 300_000_000],
            [1, 3],
        )
        if not (version == "2.5" and mq == "woodpecker")
    ],
)
def test_every_combination_renders_valid_yaml_with_chart_keys_only(
    version: str, index: str, mq: str | None, vectors: int, replicas: int
):
    fields: dict[str, Any] = {"vectors": vectors, "dim": 1024, "index": index, "milvus_version": version}
    fields["replicas"] = replicas
    if mq:
        fields["mq"] = mq
    p = make(**fields)
    text = render_values(p)
    v = yaml.safe_load(text)
    assert set(v) <= CHART_TOP_LEVEL_KEYS
    assert v["cluster"]["enabled"] is (p.mode != "standalone")
    if p.mode != "standalone":
        assert v["queryNode"]["replicas"] == p.query_nodes.count
    assert v["pulsarv3"]["enabled"] is (p.message_queue == "pulsar")
    assert v["kafka"]["enabled"] is (p.message_queue == "kafka")
    assert text.startswith(f"# Helm values for Milvus {version} on milvus-helm chart {chart_version_for(version)}")


def test_an_image_tag_of_the_other_milvus_line_is_refused():
    p = make(vectors=1_000_000, milvus_version="2.6")
    with pytest.raises(UsageError, match=re.escape("Image tag v2.5.16 is Milvus 2.5, but the plan is for Milvus 2.6")):
        render_values(p, "v2.5.16")
    assert values_for(p, "v2.6.3")["image"]["all"]["tag"] == "v2.6.3"
    assert values_for(p, "master-20250101-abcdef")["image"]["all"]["tag"] == "master-20250101-abcdef"


def test_a_plan_beyond_one_cluster_has_no_values():
    with pytest.raises(UsageError, match="beyond one Milvus cluster"):
        render_values(make(index="FLAT", vectors=2_000_000_000))


# --------------------------------------------------------------------------------------------------
# --set overrides and layering


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("queryNode.replicas=3", {"queryNode": {"replicas": 3}}),
        ("a.b=true", {"a": {"b": True}}),
        ("a.b=FALSE", {"a": {"b": False}}),
        ("a.b=0", {"a": {"b": 0}}),
        ("a.b=-5", {"a": {"b": -5}}),
        ("a.b=0123", {"a": {"b": "0123"}}),
        ("a.b=1.5", {"a": {"b": "1.5"}}),
        ("a.b=50Gi", {"a": {"b": "50Gi"}}),
        ("a.b=", {"a": {"b": ""}}),
        ("a.b=null", {"a": {"b": None}}),
        ("a=1,b.c=x", {"a": 1, "b": {"c": "x"}}),
        ("a.b={x,2,true}", {"a": {"b": ["x", 2, True]}}),
        ("a\\.b.c=1", {"a.b": {"c": 1}}),
        ("a.b=x\\,y", {"a": {"b": "x,y"}}),
        ("a.b=k=v", {"a": {"b": "k=v"}}),
    ],
)
def test_parse_set_types_values_like_helm(item: str, expected: dict[str, Any]):
    assert parse_set([item]) == expected


def test_parse_set_merges_several_items():
    assert parse_set(["a.b=1", "a.c=2", "a.b=3"]) == {"a": {"b": 3, "c": 2}}


@pytest.mark.parametrize("item", ["queryNode.replicas", "=3", "a..b=1", "a.b[0]=1"])
def test_parse_set_rejects_what_it_cannot_read(item: str):
    with pytest.raises(UsageError):
        parse_set([item])


def test_deep_merge_merges_maps_replaces_lists_and_deletes_on_null():
    base = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "keep": True}
    merged = deep_merge(base, {"a": {"b": 2, "c": [3], "d": None}, "new": "x"})
    assert merged == {"a": {"b": 2, "c": [3]}, "keep": True, "new": "x"}
    assert base == {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "keep": True}


def test_overrides_beat_the_plan_and_the_plan_beats_the_environment_base():
    p = make(index="HNSW", m=16)
    base = {"queryNode": {"replicas": 1, "nodeSelector": {"pool": "milvus"}}, "minio": {"enabled": False}}
    overrides = parse_set(["queryNode.replicas=20", "metrics.serviceMonitor.enabled=true", "proxy.resources=null"])
    text = render_values(p, overrides=overrides, base=base)
    v = yaml.safe_load(text)
    assert v["queryNode"]["replicas"] == 20
    assert v["queryNode"]["nodeSelector"] == {"pool": "milvus"}
    assert v["queryNode"]["resources"] == resources_of(p, "queryNode")
    assert v["minio"]["enabled"] is False
    assert v["metrics"]["serviceMonitor"]["enabled"] is True
    assert "resources" not in v["proxy"]
    assert text.startswith("# Helm values for Milvus 2.6 on milvus-helm chart 5.0.19")
    assert "--set overrides applied" in text


def test_without_overrides_the_template_text_keeps_its_comments():
    text = render_values(make(index="HNSW", m=16))
    assert "# 2.6 builds indexes in the data nodes." in text
    assert "helm upgrade --install <release> milvus/milvus --version 5.0.19" in text
