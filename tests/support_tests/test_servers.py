"""The real servers start on loopback, answer their readiness checks, and the fixtures isolate tests."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import servers
from tests.support.wait import wait_for


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def test_prometheus_sends_a_firing_rule_to_alertmanager(
    prometheus_factory: Callable[..., servers.ProcessServer],
    alertmanager_factory: Callable[..., servers.ProcessServer],
) -> None:
    alertmanager = alertmanager_factory("route:\n  receiver: blackhole\nreceivers:\n- name: blackhole\n")
    rules = "groups:\n- name: g\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n    labels: {severity: page}\n"
    prometheus = prometheus_factory(
        scrape_targets=[f"127.0.0.1:{alertmanager.port}"],
        rule_files={"rules.yml": rules},
        alertmanager_url=alertmanager.url,
    )
    for server in (prometheus, alertmanager):
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=5) as resp:
            assert resp.status == 200
        assert server.url.startswith("http://127.0.0.1:")

    alerts = wait_for(
        lambda: get_json(f"{alertmanager.url}/api/v2/alerts"),
        timeout=30,
        message="Prometheus never delivered the alert (is --rules.alert.resend-delay set?)",
    )
    assert alerts[0]["labels"]["alertname"] == "AlwaysFiring"
    up = wait_for(
        lambda: get_json(f"{prometheus.url}/api/v1/query?query=up")["data"]["result"],
        timeout=15,
        message="Prometheus did not scrape its target",
    )
    assert up[0]["value"][1] == "1"
    assert prometheus.reload() == 200


def test_moto_s3_is_emptied_between_tests(moto_s3: servers.MotoS3) -> None:
    s3 = moto_s3.client()
    assert s3.list_buckets()["Buckets"] == []
    s3.create_bucket(Bucket="left-behind")
    s3.put_object(Bucket="left-behind", Key="k", Body=b"v")
    assert s3.get_object(Bucket="left-behind", Key="k")["Body"].read() == b"v"


def test_moto_s3_is_emptied_between_tests_again(moto_s3: servers.MotoS3) -> None:
    assert moto_s3.client().list_buckets()["Buckets"] == []


def test_milvus_lite_server_is_emptied_between_tests(milvus_lite_uri: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_lite_uri, timeout=30)
    assert client.list_collections() == []
    client.create_collection("left_behind", dimension=4)
    client.create_alias("left_behind", "alias_left_behind")
    client.insert("left_behind", [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4]}])
    client.close()


def test_milvus_lite_server_is_emptied_between_tests_again(milvus_lite_uri: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_lite_uri, timeout=30)
    assert client.list_collections() == []
    client.close()


def test_postgres_gives_each_test_its_own_database(postgres_url: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as conn:
        assert conn.execute(sqlalchemy.text("select count(*) from pg_tables where schemaname='public'")).scalar() == 0
        conn.execute(sqlalchemy.text("create table t (x int)"))
    engine.dispose()


@pytest.mark.slow
def test_real_milvus_serves_metrics_and_grpc(milvus_server: servers.ProcessServer) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus_server.uri, timeout=30)
    client.create_collection("support_smoke", dimension=4)
    client.insert("support_smoke", [{"id": i, "vector": [0.1 * i] * 4} for i in range(10)])
    assert client.get_server_version().startswith("v2.3.5")
    client.drop_collection("support_smoke")
    client.close()
    assert milvus_server.metrics_url is not None
    with urllib.request.urlopen(milvus_server.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    assert "milvus_proxy_req_count" in text or "milvus_rootcoord" in text
    if os.geteuid() == 0:
        # As root it runs in its own network namespace: none of Milvus' own
        # all-interfaces listeners (etcd 2379, rootcoord 53100) shows here.
        assert milvus_server.info["isolated"] is True
        assert not {2379, 53100} & listening_ports_on_any_address()


def listening_ports_on_any_address() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port = local.split(":")
                if state == "0A" and set(address) == {"0"}:  # LISTEN on 0.0.0.0 / ::
                    ports.add(int(port, 16))
    return ports
