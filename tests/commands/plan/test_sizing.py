"""The plan engine against the official sizing tool's worked cases, tiers and thresholds.

Expected figures are written out here from the official tool's worked cases, not read from the
module, so a wrong table in commands/plan/sizing.py fails these tests.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from bot.errors import UsageError
from commands.plan.sizing import (
    Plan,
    PlanInputError,
    PriceTable,
    parse_plan_input,
    plan,
    query_nodes_for,
    scale_level_for,
    standalone_for,
    streaming_nodes_for,
)

GIB = 1024**3
RAW_100M_768 = 100_000_000 * 768 * 4 / GIB  # 286.1 GiB


def make(**fields: Any) -> Plan:
    fields.setdefault("vectors", 100_000_000)
    fields.setdefault("dim", 768)
    return plan(parse_plan_input(fields))


def shape(p: Plan, name: str) -> tuple[float, float, int]:
    r = p.component(name)
    assert r is not None, f"{name} missing from {[c.name for c in p.components + p.dependencies]}"
    return (r.cpu, r.memory_gib, r.replicas)


# --------------------------------------------------------------------------------------------------
# Worked cases: 100M x 768d, segment 1024 MB, no scalars, one replica


@pytest.mark.parametrize(
    ("index", "extra", "loading", "nodes", "local_disk"),
    [
        ("FLAT", {}, 331.3, (11, 8, 32), 0.0),
        ("IVF_SQ8", {"nlist": 128}, 84.6, (6, 4, 16), 0.0),
        ("HNSW", {"m": 16}, 345.0, (11, 8, 32), 0.0),
        ("DISKANN", {"max_degree": 56}, 82.3, (6, 4, 16), 307.0),
    ],
)
def test_worked_cases_match_the_tool(
    index: str, extra: dict[str, Any], loading: float, nodes: tuple, local_disk: float
):
    p = make(index=index, **extra)
    assert round(p.raw_data_gib, 1) == 286.1
    assert round(p.loading_memory_gib, 1) == loading
    qn = p.query_nodes
    assert (qn.count, qn.cpu, qn.memory_gib) == nodes
    assert round(p.local_disk_gib, 1) == local_disk
    assert p.mode == "cluster"


def test_hnsw_on_26_adds_the_tools_components_and_totals():
    p = make(index="HNSW", m=16, milvus_version="2.6")
    assert shape(p, "proxy") == (8, 32, 1)
    assert shape(p, "mixCoord") == (8, 32, 1)
    assert shape(p, "dataNode") == (8, 16, 8)
    assert shape(p, "streamingNode") == (8, 32, 2)
    assert shape(p, "queryNode") == (8, 32, 11)
    assert p.component("indexNode") is None
    assert p.milvus_cpu == 184
    assert p.milvus_memory_gib == 608


def test_hnsw_on_25_has_index_nodes_and_no_streaming_nodes():
    p = make(index="HNSW", m=16, milvus_version="2.5")
    assert shape(p, "dataNode") == (8, 32, 1)
    assert shape(p, "indexNode") == (8, 16, 8)
    assert p.component("streamingNode") is None
    assert [c.name for c in p.components] == ["proxy", "mixCoord", "queryNode", "dataNode", "indexNode"]


def test_hnsw_by_hand_shows_the_math():
    p = make(index="HNSW", m=16)
    text = "\n".join(f"{f}: {m}" for f, m in p.math)
    assert "(1 + 32/768) x 286.1 GiB = 298.0 GiB" in text
    assert "(298.0 + 2 x 1) x 1.15 + 0.0 = 345.0 GiB" in text
    assert "ceil(345.0/32) = 11" in text
    assert "[96, 512)" in text


# --------------------------------------------------------------------------------------------------
# Tier boundaries, end to end: bisect the vector count where loading memory reaches each boundary.

# G upper bound (exclusive) -> query node (cores, GiB, count or None for ceil(G/GiB)), proxy, mixCoord,
# dataNode 2.6, dataNode 2.5, indexNode 2.5 -- transcribed from the reference table.
TABLE = [
    (8, (2, 8, 1), (1, 4), (1, 4), (2, 8, 1), (2, 8, 1), (2, 8, 1)),
    (16, (4, 16, 1), (2, 8), (2, 8), (4, 16, 1), (2, 8, 1), (4, 16, 1)),
    (32, (4, 16, 2), (2, 8), (2, 8), (4, 16, 2), (2, 8, 1), (4, 16, 2)),
    (48, (4, 16, 3), (2, 8), (2, 8), (4, 16, 2), (2, 8, 1), (4, 16, 2)),
    (64, (4, 16, 4), (2, 8), (2, 8), (4, 16, 2), (2, 8, 1), (4, 16, 2)),
    (80, (4, 16, 5), (2, 8), (2, 8), (4, 16, 4), (2, 8, 1), (4, 16, 4)),
    (96, (4, 16, 6), (2, 8), (2, 8), (4, 16, 4), (2, 8, 1), (4, 16, 4)),
    (512, (8, 32, None), (8, 32), (8, 32), (8, 16, 8), (8, 32, 1), (8, 16, 8)),
    (2048, (16, 64, None), (8, 32), (8, 32), (8, 16, 8), (8, 32, 1), (8, 16, 8)),
    (math.inf, (32, 128, None), (8, 32), (8, 32), (8, 16, 8), (8, 32, 1), (8, 16, 8)),
]


def expected_row(g: float) -> tuple:
    return next(row for row in TABLE if g < row[0])


def fields_for_boundary(boundary: float) -> dict[str, Any]:
    # SCANN without raw data keeps index memory at V/8, so small G still means a cluster-sized
    # collection; FLAT covers the large boundaries without passing the 1B x 768d limit.
    if boundary <= 32:
        return {"dim": 768, "index": "SCANN", "with_raw_data": False}
    return {"dim": 768, "index": "FLAT"}


def first_vectors_reaching(boundary: float, fields: dict[str, Any]) -> int:
    lo, hi = 1, 10**11
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if make(vectors=mid, **fields).loading_memory_gib >= boundary:
            hi = mid
        else:
            lo = mid
    return hi


@pytest.mark.parametrize("version", ["2.5", "2.6"])
@pytest.mark.parametrize("boundary", [8, 16, 32, 48, 64, 80, 96, 512, 2048])
def test_each_tier_boundary_is_lower_inclusive_upper_exclusive(boundary: float, version: str):
    fields = {**fields_for_boundary(boundary), "milvus_version": version}
    n = first_vectors_reaching(boundary, fields)
    below, at = make(vectors=n - 1, **fields), make(vectors=n, **fields)
    assert below.loading_memory_gib < boundary <= at.loading_memory_gib
    for p in (below, at):
        assert p.mode in ("cluster", "beyond")
        g = p.loading_memory_gib
        _, qn, proxy, mix, dn26, dn25, in25 = expected_row(g)
        count = qn[2] if qn[2] is not None else math.ceil(g / qn[1])
        assert (p.query_nodes.cpu, p.query_nodes.memory_gib, p.query_nodes.count) == (qn[0], qn[1], count)
        assert shape(p, "proxy")[:2] == proxy
        assert shape(p, "mixCoord")[:2] == mix
        if version == "2.6":
            assert shape(p, "dataNode") == dn26
        else:
            assert shape(p, "dataNode") == dn25
            assert shape(p, "indexNode") == in25
    assert expected_row(below.loading_memory_gib) != expected_row(at.loading_memory_gib)


@pytest.mark.parametrize(
    ("g", "expected"),
    [
        (7.99, (1, 2, 8)),
        (8.0, (1, 4, 16)),
        (15.99, (1, 4, 16)),
        (16.0, (2, 4, 16)),
        (95.99, (6, 4, 16)),
        (96.0, (3, 8, 32)),
        (96.01, (4, 8, 32)),
        (511.99, (16, 8, 32)),
        (512.0, (8, 16, 64)),
        (2047.99, (32, 16, 64)),
        (2048.0, (16, 32, 128)),
        (2048.01, (17, 32, 128)),
    ],
)
def test_query_node_tiers_at_exact_boundaries(g: float, expected: tuple):
    qn = query_nodes_for(g)
    assert (qn.count, qn.cpu, qn.memory_gib) == expected


@pytest.mark.parametrize(
    ("cores", "expected"),
    [
        (8, (2, 8, 1)),
        (16, (2, 8, 1)),
        (17, (4, 16, 1)),
        (32, (4, 16, 1)),
        (33, (4, 16, 2)),
        (64, (4, 16, 2)),
        (65, (8, 32, 2)),
        (88, (8, 32, 2)),
        (128, (8, 32, 2)),
        (129, (8, 32, 3)),
        (256, (8, 32, 4)),
        (257, (8, 32, 5)),
    ],
)
def test_streaming_node_tiers(cores: float, expected: tuple):
    assert streaming_nodes_for(cores) == expected


# --------------------------------------------------------------------------------------------------
# Standalone


@pytest.mark.parametrize(
    ("g", "expected"),
    [
        (1.0, (2, 8)),
        (8.0, (2, 8)),
        (8.01, (4, 16)),
        (16.0, (4, 16)),
        (16.01, (8, 32)),
        (32.0, (8, 32)),
        (32.01, (16, 64)),
        (100.0, (32, 128)),
    ],
)
def test_standalone_pod_size(g: float, expected: tuple):
    assert standalone_for(g) == expected


def test_small_collection_plans_standalone_with_the_tools_dependencies():
    p = make(vectors=1_000_000, dim=768, index="HNSW")
    assert p.mode == "standalone"
    # (1 + 60/768) x 2.86 GiB = 3.08; (3.08 + 2) x 1.15 = 5.85 GiB -> 8 GiB, 2 cores
    assert round(p.loading_memory_gib, 2) == 5.85
    assert [c.name for c in p.components] == ["standalone"]
    assert shape(p, "standalone") == (2, 8, 1)
    qn = p.query_nodes
    assert (qn.count, qn.cpu, qn.memory_gib) == (1, 2, 8)
    # raw = 1M x 768d exactly: the "raw >= 1M x 768d" step applies
    assert shape(p, "etcd") == (0.5, 2, 1)
    assert p.component("etcd").volume_gib == 10
    assert shape(p, "minio") == (1, 8, 1)
    assert p.component("minio").volume_gib == 30
    assert p.message_queue == "woodpecker"
    assert [d.name for d in p.dependencies] == ["etcd", "minio"]


def test_standalone_dependencies_below_one_million_768d():
    p = make(vectors=999_999, dim=768)
    assert shape(p, "etcd") == (0.5, 1, 1)
    assert shape(p, "minio") == (1, 4, 1)


def test_standalone_on_25_uses_rocksmq_unless_a_queue_is_chosen():
    assert make(vectors=1_000_000, milvus_version="2.5").message_queue == "rocksmq"
    p = make(vectors=1_000_000, milvus_version="2.5", mq="kafka")
    assert p.mode == "standalone"
    assert p.message_queue == "kafka"
    assert shape(p, "kafka") == (2, 8, 3)


# --------------------------------------------------------------------------------------------------
# Mode thresholds (compared in bytes of raw vectors: N x d x 4 against N' x 768 x 4)


@pytest.mark.parametrize(
    ("index", "vectors", "dim", "mode"),
    [
        ("FLAT", 10_000_000, 768, "standalone"),
        ("FLAT", 10_000_001, 768, "cluster"),
        ("FLAT", 5_000_000, 1536, "standalone"),
        ("FLAT", 5_000_001, 1536, "cluster"),
        ("DISKANN", 50_000_000, 768, "standalone"),
        ("DISKANN", 50_000_001, 768, "cluster"),
        ("FLAT", 1_000_000_000, 768, "cluster"),
        ("FLAT", 1_000_000_001, 768, "beyond"),
        ("DISKANN", 1_000_000_001, 768, "beyond"),
    ],
)
def test_mode_thresholds(index: str, vectors: int, dim: int, mode: str):
    assert make(index=index, vectors=vectors, dim=dim).mode == mode


def test_standalone_is_ruled_out_above_100m_and_only_suggested_below():
    suggested = make(index="FLAT", vectors=100_000_000)
    ruled_out = make(index="FLAT", vectors=100_000_001)
    assert "cluster suggested" in dict(suggested.math)["mode"]
    assert any("standalone still works" in n for n in suggested.notes)
    assert "ruled out" in dict(ruled_out.math)["mode"]
    assert "ruled out" in dict(make(index="DISKANN", vectors=500_000_001).math)["mode"]
    assert "suggested" in dict(make(index="DISKANN", vectors=500_000_000).math)["mode"]


def test_replicas_force_a_cluster():
    p = make(vectors=1_000_000, replicas=2)
    assert p.mode == "cluster"
    assert "2 replicas need one query node each" in dict(p.math)["mode"]
    assert not any("standalone still works" in n for n in make(replicas=2).notes)


def test_beyond_one_cluster_is_a_risk_not_a_traceback():
    p = make(index="FLAT", vectors=2_000_000_000)
    assert p.mode == "beyond"
    assert any(r.startswith("Beyond one cluster") for r in p.risks)
    assert p.query_nodes.memory_gib == 128


@pytest.mark.parametrize(
    ("g", "level"),
    [(15.9, "small"), (16, "medium"), (95.9, "medium"), (96, "large"), (511.9, "large"), (512, "extra large")],
)
def test_scale_levels(g: float, level: str):
    assert scale_level_for(g) == level


def test_worked_cases_scale_levels():
    assert make(index="HNSW", m=16).scale == "large"
    assert make(index="IVF_SQ8").scale == "medium"
    assert make(vectors=1_000_000).scale == "small"


# --------------------------------------------------------------------------------------------------
# Dependencies


def test_cluster_dependencies_below_100m_768d_with_pulsar():
    p = make(vectors=20_000_000, index="IVF_SQ8", milvus_version="2.5")
    raw = 20_000_000 * 768 * 4 / GIB  # 57.2 GiB
    assert p.message_queue == "pulsar"
    assert shape(p, "etcd") == (1, 4, 3)
    assert p.component("etcd").volume_gib == 20
    assert shape(p, "minio") == (1, 8, 4)
    assert p.component("minio").volume_gib == max(math.ceil(raw + p.loading_memory_gib), 30)
    assert shape(p, "pulsar-bookie") == (1, 8, 3)
    bookie = p.component("pulsar-bookie")
    assert dict(bookie.volumes) == {"ledgers": 58, "journal": 29}
    assert shape(p, "pulsar-broker") == (1, 4, 2)
    assert shape(p, "pulsar-proxy") == (0.5, 4, 2)
    assert shape(p, "pulsar-zookeeper") == (0.5, 2, 3)
    assert p.component("pulsar-zookeeper").volume_gib == 30


def test_cluster_dependencies_at_100m_768d_with_pulsar():
    p = make(index="HNSW", m=16, milvus_version="2.5", mq="pulsar")
    assert shape(p, "etcd") == (1, 8, 3)
    assert p.component("etcd").volume_gib == 50
    assert p.component("minio").volume_gib == math.ceil(RAW_100M_768 + 345.03)  # 632
    assert shape(p, "pulsar-bookie") == (2, 16, 3)
    assert dict(p.component("pulsar-bookie").volumes) == {"ledgers": 287, "journal": 50}
    assert shape(p, "pulsar-broker") == (2, 8, 2)
    assert shape(p, "pulsar-proxy") == (1, 4, 2)
    assert shape(p, "pulsar-zookeeper") == (0.5, 4, 3)
    assert p.component("pulsar-zookeeper").volume_gib == 50


def test_kafka_tiers():
    small = make(vectors=20_000_000, index="IVF_SQ8", mq="kafka")
    assert shape(small, "kafka") == (2, 8, 3)
    assert small.component("kafka").volume_gib == 58
    assert shape(small, "kafka-zookeeper") == (0.5, 2, 3)
    large = make(index="HNSW", mq="kafka")
    assert shape(large, "kafka") == (4, 16, 3)
    assert large.component("kafka").volume_gib == 287
    assert shape(large, "kafka-zookeeper") == (0.5, 4, 3)
    assert large.component("kafka-zookeeper").volume_gib == 50
    assert large.component("pulsar-bookie") is None


def test_minimum_volumes_for_small_raw_data():
    p = make(vectors=11_000_000, dim=768, index="IVF_RABITQ", mq="pulsar")
    assert dict(p.component("pulsar-bookie").volumes)["ledgers"] == max(math.ceil(p.raw_data_gib), 20)


def test_scalars_count_toward_the_dependency_tier():
    # 99M x 768d is below the large tier; 40 scalar bytes a row pushes raw past 100M x 768d
    below = make(vectors=99_000_000, index="IVF_SQ8")
    above = make(vectors=99_000_000, index="IVF_SQ8", scalar_bytes=40)
    assert shape(below, "etcd") == (1, 4, 3)
    assert shape(above, "etcd") == (1, 8, 3)


def test_woodpecker_on_26_adds_no_queue_pods():
    p = make(index="HNSW")
    assert p.message_queue == "woodpecker"
    assert [d.name for d in p.dependencies] == ["etcd", "minio"]


def test_jvm_pods_get_requests_but_no_limits():
    p = make(milvus_version="2.5")
    assert p.component("pulsar-broker").limits == {}
    assert p.component("pulsar-broker").requests == {"cpu": "2", "memory": "8Gi"}
    assert p.component("queryNode").limits == p.component("queryNode").requests
    assert p.component("pulsar-proxy").requests["cpu"] == "1"
    assert make(vectors=20_000_000, index="IVF_SQ8", milvus_version="2.5").component("pulsar-proxy").requests == {
        "cpu": "500m",
        "memory": "4Gi",
    }


# --------------------------------------------------------------------------------------------------
# Beyond the tool: replicas, IVF_PQ, binary, scalars, segment size, other indexes


def test_replicas_multiply_loading_memory_and_local_disk():
    one = make(index="DISKANN")
    two = make(index="DISKANN", replicas=2)
    assert two.loading_memory_gib == pytest.approx(2 * one.loading_memory_gib)
    assert two.local_disk_gib == pytest.approx(2 * one.local_disk_gib)
    assert round(two.local_disk_gib, 1) == 613.9  # 2 x 306.96
    # query nodes are sized on the total (164.5 GiB -> 8c/32G x 6); proxy keeps one copy's tier
    assert (two.query_nodes.count, two.query_nodes.cpu, two.query_nodes.memory_gib) == (6, 8, 32)
    assert shape(two, "proxy") == shape(one, "proxy") == (2, 8, 1)
    assert two.query_nodes.local_disk_gib == math.ceil(two.local_disk_gib / 6)


def test_ivf_pq_memory():
    p = make(index="IVF_PQ", pq_m=96, nbits=8, nlist=1024)
    index_bytes = 100_000_000 * 96 + 1024 * 768 * 4 + 256 * 768 * 4
    assert p.index_memory_gib == pytest.approx(index_bytes / GIB)
    assert p.loading_memory_gib == pytest.approx((index_bytes / GIB + 2) * 1.15)
    assert any("does not model IVF_PQ" in n for n in p.notes)


def test_ivf_pq_defaults_to_half_the_dimension():
    p = make(index="IVF_PQ")
    assert p.input.pq_m == 384
    assert p.index_memory_gib == pytest.approx((100_000_000 * 384 + 128 * 768 * 4 + 256 * 768 * 4) / GIB)


def test_ivf_pq_nbits_changes_code_and_codebook_size():
    p = make(index="IVF_PQ", pq_m=96, nbits=4)
    assert p.index_memory_gib == pytest.approx((100_000_000 * 48 + 128 * 768 * 4 + 16 * 768 * 4) / GIB)


def test_binary_indexes_take_one_bit_per_dimension():
    flat = make(index="BIN_FLAT", dim=1024)
    assert flat.vector_data_gib == pytest.approx(100_000_000 * 128 / GIB)
    assert flat.loading_memory_gib == pytest.approx((100_000_000 * 128 / GIB + 2) * 1.15)
    ivf = make(index="BIN_IVF_FLAT", dim=1024, nlist=256)
    assert ivf.index_memory_gib == pytest.approx((100_000_000 * 128 + 256 * 128) / GIB)


@pytest.mark.parametrize(
    ("refine", "bits"), [("none", 0), ("sq6", 6), ("sq8", 8), ("fp16", 16), ("bf16", 16), ("sq32", 32)]
)
def test_ivf_rabitq_refine_bits(refine: str, bits: int):
    p = make(index="IVF_RABITQ", refine=refine)
    v = 100_000_000 * 768 * 4
    assert p.index_memory_gib == pytest.approx((v * (1 / 32 + bits / 32) + 128 * 768 * 4) / GIB)


def test_scann_with_and_without_raw_data():
    v = RAW_100M_768
    assert make(index="SCANN").index_memory_gib == pytest.approx(9 * v / 8)
    assert make(index="SCANN", with_raw_data=False).index_memory_gib == pytest.approx(v / 8)


def test_ivf_flat_adds_centroids():
    p = make(index="IVF_FLAT", nlist=4096)
    assert p.index_memory_gib == pytest.approx((100_000_000 * 3072 + 4096 * 3072) / GIB)


def test_scalars_in_memory_and_memory_mapped():
    plain = make(index="HNSW", m=16, scalar_bytes=100)
    mapped = make(index="HNSW", m=16, scalar_bytes=100, scalars_mmap=True)
    scalars = 100_000_000 * 100 / GIB
    assert plain.loading_memory_gib == pytest.approx(345.03 + scalars, abs=0.01)
    assert mapped.loading_memory_gib == pytest.approx(345.03 + scalars / 10, abs=0.01)
    assert mapped.local_disk_gib == pytest.approx(scalars)
    assert plain.raw_data_gib == pytest.approx(RAW_100M_768 + scalars)


def test_scalars_on_diskann():
    p = make(index="DISKANN", scalar_bytes=200, scalars_mmap=True)
    scalars = 100_000_000 * 200 / GIB
    assert p.loading_memory_gib == pytest.approx(RAW_100M_768 / 4 * 1.15 + scalars / 10)
    assert p.local_disk_gib == pytest.approx((1 + 56 / 768) * RAW_100M_768 + scalars)


def test_segment_size_adds_two_segments():
    p = make(index="HNSW", m=16, segment_size_mb=2048)
    assert p.loading_memory_gib == pytest.approx(((1 + 32 / 768) * RAW_100M_768 + 4) * 1.15)


# --------------------------------------------------------------------------------------------------
# Growth phases


def hnsw16_loading(vectors: int) -> float:
    return ((1 + 32 / 768) * vectors * 768 * 4 / GIB + 2) * 1.15


def test_growth_phases_each_quarter_and_the_month_it_stops_fitting():
    p = make(index="HNSW", m=16, growth_per_month="500K/month", months=12)
    assert [ph.month for ph in p.phases] == [0, 3, 6, 9, 12]
    assert [ph.vectors for ph in p.phases] == [100_000_000 + 500_000 * m for m in (0, 3, 6, 9, 12)]
    capacity = 11 * 32
    expected = next(m for m in range(1, 13) if hnsw16_loading(100_000_000 + 500_000 * m) > capacity)
    assert expected == 5
    assert p.stops_fitting_month == 5
    assert [ph.fits_today for ph in p.phases] == [True, True, False, False, False]
    assert p.phases[-1].query_nodes.count == math.ceil(hnsw16_loading(106_000_000) / 32)
    assert any("month 5 of 12" in r for r in p.risks)
    assert dict(p.math)["stops fitting"] == (
        "month 5: 100,000,000 + 5 x 500,000 = 102,500,000 vectors need G = 353.6 GiB > today's 11 x 32 GiB"
        " of query node memory"
    )


def test_diskann_growth_can_stop_on_local_disk():
    # 10 query nodes of 16 GiB hold the memory for a while; the 52 GiB of disk each runs out first
    p = make(index="DISKANN", growth_per_month=2_000_000, months=12)
    assert p.stops_fitting_month is not None
    month = p.stops_fitting_month
    later = make(index="DISKANN", vectors=100_000_000 + month * 2_000_000)
    earlier = make(index="DISKANN", vectors=100_000_000 + (month - 1) * 2_000_000)
    assert later.local_disk_gib > 6 * 52 >= earlier.local_disk_gib
    assert "GiB of local disk > today's 6 x 52 GiB" in dict(p.math)["stops fitting"]


@pytest.mark.parametrize(
    ("months", "marks"),
    [(7, [0, 2, 4, 6, 7]), (24, [0, 6, 12, 18, 24]), (120, [0, 30, 60, 90, 120]), (2, [0, 1, 2]), (1, [0, 1])],
)
def test_phases_are_today_and_each_quarter_of_the_horizon(months: int, marks: list[int]):
    assert [ph.month for ph in make(vectors=1_000_000, growth_per_month=1_000, months=months).phases] == marks


def test_a_plan_that_keeps_fitting_has_no_stop_month():
    p = make(vectors=1_000_000, growth_per_month=1_000, months=7)
    assert p.stops_fitting_month is None
    assert all(ph.fits_today for ph in p.phases)


def test_a_mode_change_stops_the_plan_fitting():
    # 9M x 768 IVF_SQ8 is standalone (16 GiB); 10M still is; 11M must be a cluster
    p = make(vectors=9_000_000, index="IVF_SQ8", growth_per_month=1_000_000, months=6)
    assert p.mode == "standalone"
    assert p.stops_fitting_month == 2
    assert p.phases[1].mode == "cluster"
    assert "make it a cluster plan (today: standalone)" in dict(p.math)["stops fitting"]


def test_no_growth_means_one_phase():
    p = make(index="HNSW")
    assert [ph.month for ph in p.phases] == [0]
    assert p.stops_fitting_month is None


# --------------------------------------------------------------------------------------------------
# Object storage and cost


def test_object_storage_counts_raw_index_files_and_backups():
    p = make(index="HNSW", m=16, backup_retention_copies=2)
    index_files = (1 + 32 / 768) * RAW_100M_768
    assert p.object_storage_gib == pytest.approx(3 * RAW_100M_768 + index_files)


def test_monthly_cost():
    prices = {"core_hour": 0.05, "gib_hour": 0.005, "disk_gib_month": 0.1, "object_gib_month": 0.02}
    p = make(index="HNSW", m=16, prices=prices)
    cores = 184 + 3 * 1 + 4 * 1  # Milvus + etcd + MinIO
    memory = 608 + 3 * 8 + 4 * 8
    disk = 3 * 50  # etcd volumes; MinIO is priced as object storage
    objects = RAW_100M_768 + (1 + 32 / 768) * RAW_100M_768
    cost = p.monthly_cost
    assert cost is not None
    assert cost.cpu == pytest.approx(cores * 0.05 * 730)
    assert cost.memory == pytest.approx(memory * 0.005 * 730)
    assert cost.disk == pytest.approx(disk * 0.1)
    assert cost.object_storage == pytest.approx(objects * 0.02)
    assert cost.total == pytest.approx(cost.cpu + cost.memory + cost.disk + cost.object_storage)
    assert p.phases[0].monthly_cost == cost


def test_cost_accepts_the_config_price_table_and_counts_local_disk():
    prices = PriceTable(core_hour=0, gib_hour=0, disk_gib_month=1, object_gib_month=0, currency="EUR")
    p = make(index="DISKANN", prices=prices)
    # 6 query nodes x ceil(307.0/6) GiB local disk + 3 x 50 GiB etcd
    assert p.monthly_cost is not None
    assert p.monthly_cost.disk == 6 * 52 + 3 * 50
    assert p.monthly_cost.currency == "EUR"


def test_no_prices_no_cost():
    assert make().monthly_cost is None


# --------------------------------------------------------------------------------------------------
# Risks


def test_headroom_is_shown_against_the_90_percent_load_limit():
    p = make(index="HNSW", m=16)
    # 345.0 / 1.15 = 300.0 GiB resident on 11 x 32 GiB
    assert dict(p.math)["headroom"].startswith("resident = G / 1.15 = 300.0 GiB = 85% of 352.0 GiB")


def test_target_qps_is_recorded_as_not_modelled():
    p = make(target_qps=500)
    assert any("500 QPS is not modelled" in n for n in p.notes)


# --------------------------------------------------------------------------------------------------
# Input and validation


def test_inputs_accept_suffixes_and_names_in_any_case():
    inp = parse_plan_input(
        {
            "vectors": "1.5B",
            "dim": "768",
            "index": "ivf-sq8",
            "growth_per_month": "5M/month",
            "mq": "Kafka",
            "milvus_version": "v2.5.16",
            "scalar_bytes": "1KB",
        }
    )
    assert inp.vectors == 1_500_000_000
    assert inp.index.value == "IVF_SQ8"
    assert inp.growth_per_month == 5_000_000
    assert inp.mq is not None and inp.mq.value == "kafka"
    assert inp.milvus_version == "2.5"
    assert inp.scalar_bytes == 1000


def test_defaults_are_the_tools():
    inp = parse_plan_input({"vectors": 1, "dim": 768})
    assert (inp.index.value, inp.m, inp.max_degree, inp.nlist, inp.segment_size_mb) == ("HNSW", 30, 56, 128, 1024)
    assert inp.milvus_version == "2.6"
    assert inp.replicas == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dim": 40000}, "dimension 40,000 is above Milvus' maximum of 32,768"),
        ({"dim": 1}, "dimension must be at least 2 (got 1)"),
        ({"vectors": 0}, "vectors must be at least 1 (got 0)"),
        ({"vectors": "abc"}, "'abc' is not a number"),
        ({"m": 1}, "HNSW M must be between 2 and 2,048 (got 1)"),
        ({"m": 2049}, "HNSW M must be between 2 and 2,048 (got 2,049)"),
        (
            {"index": "BIN_FLAT", "dim": 100},
            "BIN_FLAT needs binary vectors whose dimension is a multiple of 8 (got 100)",
        ),
        ({"index": "IVF_PQ", "pq_m": 7}, "IVF_PQ m must divide the dimension: 768 is not a multiple of 7"),
        ({"index": "IVF_PQ", "dim": 769}, "IVF_PQ needs --pq-m, a divisor of the dimension 769"),
        ({"index": "IVF_PQ", "nbits": 65}, "IVF_PQ nbits must be between 1 and 64 (got 65)"),
        ({"index": "IVF_RABITQ", "milvus_version": "2.5"}, "IVF_RABITQ needs Milvus 2.6 (got 2.5)"),
        ({"mq": "woodpecker", "milvus_version": "2.5"}, "woodpecker needs Milvus 2.6; on 2.5 choose pulsar or kafka"),
        ({"milvus_version": "2.4"}, "Milvus version must be 2.5 or 2.6 (got '2.4')"),
        ({"segment_size_mb": 300}, "segment size must be 512, 1024 or 2048 MB (got 300)"),
        ({"index": "ANNOY"}, "unknown index 'ANNOY'; choose one of FLAT, IVF_FLAT"),
        ({"refine": "int4", "index": "IVF_RABITQ"}, "unknown refine type 'int4'"),
        ({"mq": "rabbitmq"}, "unknown message queue 'rabbitmq'; choose one of pulsar, kafka, woodpecker"),
        ({"max_degree": 0, "index": "DISKANN"}, "DISKANN max_degree must be between 1 and 512 (got 0)"),
        ({"nlist": 70000}, "nlist must be between 1 and 65,536 (got 70,000)"),
        ({"replicas": 0}, "replicas must be between 1 and 64 (got 0)"),
        ({"months": 121}, "months must be between 0 and 120 (got 121)"),
        ({"scalar_bytes": -1}, "scalar bytes per row must be between 0"),
        ({"replicas": 1.5}, "replicas must be a whole number (got 1.5)"),
        ({"scalars_mmap": "maybe"}, "scalars_mmap must be true or false (got 'maybe')"),
        ({"colour": "blue"}, "unknown option 'colour'"),
    ],
)
def test_validation_messages_are_short_and_readable(fields: dict[str, Any], message: str):
    data = {"vectors": 1_000_000, "dim": 768, **fields}
    with pytest.raises(PlanInputError) as caught:
        parse_plan_input(data)
    assert any(message in p for p in caught.value.problems), caught.value.problems
    assert isinstance(caught.value, UsageError)
    assert "Traceback" not in caught.value.user_text()


def test_missing_fields_and_several_problems_are_listed_together():
    with pytest.raises(PlanInputError) as caught:
        parse_plan_input({"vectors": 0, "dim": 40000, "m": 1})
    problems = caught.value.problems
    assert len(problems) == 3
    assert caught.value.user_text().startswith("Cannot plan this:\n• ")
    with pytest.raises(PlanInputError) as missing:
        parse_plan_input({"vectors": 10})
    assert missing.value.problems == ["dimension is required"]


# --------------------------------------------------------------------------------------------------
# Structured result


def test_to_data_carries_the_contract_keys_and_is_json():
    data = make(
        index="HNSW",
        m=16,
        prices={"core_hour": 0.05, "gib_hour": 0.005, "disk_gib_month": 0.1, "object_gib_month": 0.02},
    ).to_data()
    for key in (
        "mode",
        "raw_data_gib",
        "index_memory_gib",
        "loading_memory_gib",
        "local_disk_gib",
        "query_nodes",
        "components",
        "dependencies",
    ):
        assert key in data
    assert data["mode"] == "cluster"
    assert data["loading_memory_gib"] == 345.03
    assert {k: data["query_nodes"][k] for k in ("count", "cpu", "memory_gib")} == {
        "count": 11,
        "cpu": 8,
        "memory_gib": 32,
    }
    for item in data["components"] + data["dependencies"]:
        assert {"name", "replicas", "cpu", "memory_gib", "volume_gib"} <= set(item)
    assert data["totals"]["milvus_cpu"] == 184
    assert json.loads(json.dumps(data)) == data
