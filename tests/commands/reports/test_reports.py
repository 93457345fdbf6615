"""Health and capacity reports against real Prometheus servers.

- Forecasts: a Prometheus backfilled with 7 days of series growing at known rates; the report must
  give the growth per day, the fit window and the run-out dates those rates imply.
- Milvus 2.3.5: a real Milvus server scraped by a real Prometheus after this test created
  collections, inserted, searched, queried and failed some searches; the report's numbers must
  match what the test did, and the metrics 2.3.5 does not export must say "not available".
- Prometheus down: one clear error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import Environment, HealthThresholds, MilvusTarget
from bot.errors import IntegrationError
from commands.reports.build import build_capacity, build_health
from commands.reports.checks import Status, capacity_lines, collection_names_from, health_lines
from commands.reports.forecast import DAY, linear_fit
from commands.reports.queries import capacity_queries, health_queries
from integrations.prometheus import Instant, Sample, connect
from tests.commands.reports.reports_helpers import GIB, INST, NS, Known, backfilled_prometheus, milvus_scrape_config
from tests.support.servers import free_port, milvus_server_available, start_milvus_server, start_prometheus
from tests.support.wait import wait_for

TH = HealthThresholds()


def _env(url: str, namespace: str | None = NS, instance: str | None = INST) -> Environment:
    return Environment(
        name="prod",
        milvus=MilvusTarget(uri="http://127.0.0.1:1"),
        prometheus_url=url,
        prometheus_namespace=namespace,
        prometheus_instance=instance,
    )


# -- pure arithmetic --------------------------------------------------------------------------------


def test_linear_fit_recovers_slope_and_crossing() -> None:
    points = [(1000.0 + i * 60, 5.0 + 2.0 * i * 60) for i in range(100)]
    fit = linear_fit(points)
    assert fit is not None
    assert fit.slope == pytest.approx(2.0)
    assert fit.reaches(5.0 + 2.0 * 10_000) == pytest.approx(11_000)
    assert fit.window_s == 99 * 60
    assert linear_fit(points[:1]) is None
    flat = linear_fit([(0.0, 3.0), (10.0, 3.0)])
    assert flat is not None and flat.reaches(10) is None


# -- forecasts on known growth ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def known() -> Known:
    # End two minutes ago so the last samples are well inside Prometheus' 5-minute lookback.
    return Known(end=dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=2))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, known: Known) -> Iterator[Any]:
    with backfilled_prometheus(tmp_path_factory.mktemp("backfill"), known) as server:
        yield server


def test_capacity_forecasts_match_known_growth(history: Any, known: Known) -> None:
    report = build_capacity(connect(history.url), _env(history.url), TH, window=dt.timedelta(days=7))
    forecasts = {f.resource: f for f in report.forecasts}
    end = known.end.timestamp()

    memory = forecasts["memory"]
    assert memory.fit is not None
    assert memory.fit.slope * DAY == pytest.approx(known.mem_per_day, rel=0.01)
    assert memory.fit.window_s == pytest.approx(7 * DAY, rel=0.02)
    mem_now = known.at_end(known.mem_start, known.mem_per_day)
    expected = end + (0.9 * known.mem_limit - mem_now) / known.mem_per_day * DAY  # 11.8 days out
    assert memory.runs_out_at is not None
    assert memory.runs_out_at.timestamp() == pytest.approx(expected, abs=0.1 * DAY)

    etcd = forecasts["etcd"]
    etcd_now = known.at_end(known.etcd_start, known.etcd_per_day)
    expected = end + (known.etcd_quota - etcd_now) / known.etcd_per_day * DAY  # 8 days out
    assert etcd.runs_out_at is not None
    assert etcd.runs_out_at.timestamp() == pytest.approx(expected, abs=0.1 * DAY)

    # Both run out within 30 days: yellow, and the verdict says so first.
    assert report.line("qn_memory").status is Status.yellow
    assert report.line("etcd").status is Status.yellow
    assert report.line("etcd").text.endswith("; reaches the quota in 8.0 days at the current growth")
    assert report.verdict is Status.yellow
    assert report.blocks()[1]["text"]["text"].startswith(":large_yellow_circle: *Needs attention")

    text = json.dumps(report.blocks())
    assert f"reaches the 90% load threshold around *{memory.runs_out_at:%Y-%m-%d}*" in text
    assert "fitted on 7d of data" in text
    assert f"{mem_now / GIB:.1f} GiB of 32.0 GiB limit" in text

    rows = report.line("rows")
    assert rows.value == pytest.approx(known.at_end(known.rows_start, known.rows_per_day), rel=0.001)
    [detail] = rows.details
    name, _, growth = detail.partition(" rows, +")
    assert name == "default.docs: 2,750,000"
    assert float(growth.removesuffix("/day").replace(",", "")) == pytest.approx(known.rows_per_day, rel=0.001)

    assert report.line("local_disk").status is Status.unknown
    assert report.line("local_disk").text.startswith("not available: ")


def test_container_metrics_are_found_when_the_release_name_contains_milvus(
    tmp_path_factory: pytest.TempPathFactory, known: Known
) -> None:
    # config.example.yaml's release is `milvus`: its pods are milvus-querynode-..., not milvus-milvus-...
    named = dataclasses.replace(known, instance="milvus")
    with backfilled_prometheus(tmp_path_factory.mktemp("milvus-release"), named) as server:
        env = _env(server.url, instance="milvus")
        capacity = build_capacity(connect(server.url), env, TH, window=dt.timedelta(days=7), charts=False)
        memory = capacity.line("qn_memory")
        mem_now = named.at_end(named.mem_start, named.mem_per_day)
        assert f"{mem_now / GIB:.1f} GiB of 32.0 GiB limit" in memory.text and "(working set)" in memory.text
        assert [d.split(":")[0] for d in memory.details] == ["milvus-querynode-5d8f9c7b6-x2x4k"]
        health = build_health(connect(server.url), env, TH, charts=False)
        restarts = health.line("restarts")
        assert restarts.available, restarts.text
        assert restarts.text.startswith("0 restarts in the last hour")


def test_capacity_recommendation_uses_the_planner_with_a_prefilled_button(history: Any, known: Known) -> None:
    report = build_capacity(connect(history.url), _env(history.url), TH, window=dt.timedelta(days=7))
    rec = report.recommendation
    assert rec is not None
    rows_now = known.at_end(known.rows_start, known.rows_per_day)
    assert rec.plan_args["vectors"] == pytest.approx(rows_now + 90 * known.rows_per_day, rel=0.01)
    assert rec.plan_args["dim"] == known.dim  # estimated from binlog bytes per row
    assert rec.plan_args["growth_per_month"] == pytest.approx(30 * known.rows_per_day, rel=0.01)
    buttons = [e for b in report.blocks() if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == ["plan_prefill"]
    value = json.loads(buttons[0]["value"])
    assert value["env"] == "prod" and value["dim"] == known.dim
    assert "query node" in rec.text


def test_capacity_charts_are_pngs(history: Any) -> None:
    report = build_capacity(connect(history.url), _env(history.url), TH, window=dt.timedelta(days=7))
    names = [a.filename for a in report.charts]
    assert names == ["capacity-memory-prod.png", "capacity-rows-prod.png"]
    for chart in report.charts:
        assert chart.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert "last 7 days" in chart.title


def test_health_on_kube_series_counts_restarts_as_zero_and_milvus_as_missing(history: Any) -> None:
    report = build_health(connect(history.url), _env(history.url), TH, charts=False)
    # The counter stood at 3 all along: no restart in the last hour is a measured zero.
    restarts = report.line("restarts")
    assert restarts.status is Status.green
    assert report.verdict_text() == "All measured checks are green (only 1 of 12 checks could be measured)"
    assert restarts.text.startswith("0 restarts in the last hour")
    # No Milvus series in this Prometheus: never a zero QPS, always "not available" with the reason.
    for key in ("search_qps", "search_p99", "errors", "load_failures", "components"):
        line = report.line(key)
        assert line.status is Status.unknown, key
        assert line.text == "not available: no such series in Prometheus", key
        assert line.to_data()["value"] is None


def test_another_namespace_sees_nothing(history: Any) -> None:
    report = build_capacity(connect(history.url), _env(history.url, namespace="staging"), TH, charts=False)
    assert all(line.status is Status.unknown for line in report.lines)
    assert report.verdict is Status.unknown
    assert report.verdict_text().startswith("Nothing could be measured")


# -- Prometheus down --------------------------------------------------------------------------------


def test_prometheus_down_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(IntegrationError) as err:
        build_health(connect(url, timeout_s=2), _env(url), TH)
    assert err.value.message == f"Prometheus at {url} is unreachable (connection failed); no metrics could be read"
    assert err.value.system == "prometheus"
    with pytest.raises(IntegrationError, match="unreachable"):
        build_capacity(connect(url, timeout_s=2), _env(url), TH)


# -- a real Milvus 2.3.5 ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def milvus_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = milvus_server_available()
    if reason:
        pytest.skip(reason)
    from pymilvus import MilvusClient

    base = tmp_path_factory.mktemp("milvus")
    milvus = start_milvus_server(base / "milvus")
    prom = None
    try:
        assert milvus.metrics_url
        prom = start_prometheus(base / "prom", config_yaml=milvus_scrape_config(milvus.metrics_url))
        p = connect(prom.url)
        wait_for(lambda: p.query('up{job="milvus"} == 1'), timeout=30, message="Prometheus never scraped Milvus")
        client = MilvusClient(uri=milvus.uri)
        did = _workload(client, p)
        yield {"prom": prom, "milvus": milvus, "did": did, "client": client}
        client.close()
    finally:
        if prom:
            prom.stop()
        milvus.stop()


def _vec(dim: int = 16) -> list[float]:
    return [random.random() for _ in range(dim)]


def _scraped(p: Any, promql: str, expected: float) -> bool:
    samples = p.query(promql)
    return bool(samples) and samples[0].value == expected


def _workload(client: Any, p: Any) -> dict[str, Any]:
    """Create, insert, search, query and fail; wait until Prometheus has scraped each phase."""
    did: dict[str, Any] = {"rows": {}, "ids": {}}
    for name, n in (("books", 3000), ("movies", 1200)):
        client.create_collection(name, dimension=16)
        for start in range(0, n, 1000):
            client.insert(name, [{"id": i, "vector": _vec()} for i in range(start, min(n, start + 1000))])
        client.flush(name)
        did["rows"][name] = n
        did["ids"][str(client.describe_collection(name)["collection_id"])] = name
    # Counters appear on first use; a rate needs the series to exist before the traffic we count.
    client.search("books", [_vec()], limit=3)
    client.query("movies", filter="id < 10")
    with pytest.raises(Exception):  # noqa: B017 - a dimension mismatch; pymilvus' class varies by version
        client.search("books", [_vec(15)], limit=3)
    req = 'sum(milvus_proxy_req_count{function_name="Search",status="%s"})'
    wait_for(lambda: _scraped(p, req % "fail", 1), timeout=20, message="first failure not scraped")
    time.sleep(1.5)  # one more scrape of the initial values, so the traffic below is an increase
    for _ in range(20):
        client.search("books", [_vec()], limit=3)
        client.query("movies", filter="id < 10")
    for _ in range(4):
        with pytest.raises(Exception):  # noqa: B017
            client.search("books", [_vec(15)], limit=3)
    wait_for(lambda: _scraped(p, req % "total", 26), timeout=20, message="searches not scraped")
    wait_for(
        lambda: _scraped(p, 'sum(milvus_datacoord_stored_rows_num{segment_state="Flushed"})', 4200),
        timeout=30,
        message=lambda: f"flushed rows not scraped: {p.query('milvus_datacoord_stored_rows_num')}",
    )
    return did


@pytest.mark.slow
def test_health_of_a_real_milvus_matches_what_the_test_did(milvus_world: dict[str, Any]) -> None:
    url = milvus_world["prom"].url
    report = build_health(connect(url), _env(url), TH)

    components = report.line("components")
    assert components.status is Status.green
    assert components.text.startswith("1 of 1 targets up (")
    for role in ("proxy 1", "querynode 1", "datanode 1", "rootcoord 1"):
        assert role in components.text

    assert report.line("search_qps").value > 0
    for key in ("search_p99", "query_p99", "insert_p99"):
        line = report.line(key)
        assert line.value is not None and 0 < line.value < 10_000, (key, line.text)
        assert line.text.endswith(" ms")

    # 4 of the 24 searches after the first scrape failed: about 17%, red (over 5%).
    errors = report.line("errors")
    assert errors.status is Status.red
    assert errors.text.startswith("worst Search ")
    assert errors.value == pytest.approx(4 / 24, abs=0.04)
    assert any(d.startswith("Search: ") for d in errors.details)

    assert report.line("load_failures").text == "0 in the last hour"
    throttling = report.line("throttling")
    assert "quota states: none active" in throttling.text
    assert report.line("consume_lag").value is not None

    # Milvus 2.3.5 alone has no kube-state-metrics: not available, and why.
    restarts = report.line("restarts")
    assert restarts.status is Status.unknown
    assert "kube-state-metrics" in restarts.text

    assert report.verdict is Status.red
    assert report.queries == 20  # 17 instant + 3 latency ranges for the chart
    assert [a.filename for a in report.charts] == ["health-prod.png"]


@pytest.mark.slow
def test_capacity_of_a_real_milvus_matches_what_the_test_did(milvus_world: dict[str, Any]) -> None:
    url = milvus_world["prom"].url
    did = milvus_world["did"]
    report = build_capacity(connect(url), _env(url), TH, window=dt.timedelta(minutes=10))

    rows = report.line("rows")
    assert rows.value == 4200
    # 2.3.5 labels rows with collection_id only: without Milvus at hand the report names them by id,
    for cid, name in did["ids"].items():
        assert f"collection id {cid}: {did['rows'][name]:,} rows" in rows.details
    # and with it, by name.
    named = build_capacity(
        connect(url),
        _env(url),
        TH,
        window=dt.timedelta(minutes=10),
        charts=False,
        collection_names=collection_names_from(milvus_world["client"]),
    ).line("rows")
    assert named.details == [
        f"{name} (id {cid}): {did['rows'][name]:,} rows"
        for cid, name in sorted(did["ids"].items(), key=lambda item: -did["rows"][item[1]])
    ]
    assert "flushed rows only" in rows.text
    assert "growth not measured: only" in rows.text  # seconds of data are no trend

    storage = report.line("object_storage")
    assert storage.value is not None and storage.value > 4200 * 16 * 4  # at least the raw vectors
    assert "index files not available (no such series in Prometheus)" in storage.text  # not in 2.3.5

    memory = report.line("qn_memory")
    assert memory.value is not None and memory.value > 50 * 1024**2
    assert "process RSS; no container metrics" in memory.text

    assert report.line("segments").text.startswith("Flushed ")
    assert "compaction tasks not available" in report.line("backlog").text
    etcd = report.line("etcd")
    assert etcd.status is Status.unknown and etcd.text == "not available: no such series in Prometheus"
    assert {f.resource: f.reason for f in report.forecasts}["memory"].startswith("only ")


# -- label values are someone else's text ------------------------------------------------------------


def test_label_values_and_errors_are_escaped_in_the_message() -> None:
    now = dt.datetime.now(dt.UTC)
    evil = {"db_name": "default", "collection_name": "<!channel> & <@U123>"}
    results = {key: Instant(key) for key in capacity_queries(_env("http://x"))}
    results["rows_rootcoord"] = Instant("q", [Sample(evil, 10.0)])
    results["etcd_size"] = Instant("q", error='parse error: unexpected "<" in <bad>')
    lines, _, _ = capacity_lines(results, {}, TH, now)
    text = json.dumps([line.to_data() for line in lines])
    assert "<!channel>" not in text and "<@U123>" not in text and "<bad>" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;: 10 rows" in text
    assert 'not available: parse error: unexpected \\"&lt;\\" in &lt;bad&gt;' in text

    health = {key: Instant(key) for key in health_queries(_env("http://x"))}
    health["errors"] = Instant("q", [Sample({"function_name": "<!here>"}, 0.5)])
    rendered = json.dumps([line.to_data() for line in health_lines(health, TH)])
    assert "<!here>" not in rendered and "&lt;!here&gt;" in rendered
