"""integrations/prometheus.py against a real Prometheus scraping a tiny exporter with known values.

Also: a Prometheus that is down (connection refused) and one that hangs (accepts, never answers)
must give our own IntegrationError with a clear message, within the configured timeout.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.errors import IntegrationError
from integrations.prometheus import Prometheus, connect
from tests.support.servers import free_port, start_prometheus
from tests.support.wait import wait_for

EXPOSITION = b"""# TYPE demo_rows gauge
demo_rows{collection="books"} 3000
demo_rows{collection="movies"} 1200
# TYPE demo_requests_total counter
demo_requests_total{status="total"} 50
"""


class _Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(EXPOSITION)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, exporter: str) -> Iterator[Prometheus]:
    server = start_prometheus(tmp_path_factory.mktemp("prom"), scrape_targets={"demo": [exporter]})
    client = connect(server.url, timeout_s=5)
    wait_for(lambda: client.query("demo_rows"), timeout=30, message="exporter never scraped")
    yield client
    client.close()
    server.stop()


def test_instant_query_returns_the_exported_values(prom: Prometheus) -> None:
    samples = prom.query("demo_rows")
    assert {s.labels["collection"]: s.value for s in samples} == {"books": 3000.0, "movies": 1200.0}
    assert all(s.labels["job"] == "demo" for s in samples)


def test_many_queries_keep_missing_apart_from_zero(prom: Prometheus) -> None:
    before = prom.queries_issued
    results = prom.instant_many(
        {
            "total": "sum(demo_rows)",
            "zero": "sum(demo_rows) * 0",
            "missing": 'demo_rows{collection="nope"}',
            "bad": "sum(demo_rows",
        }
    )
    assert prom.queries_issued - before == 4
    assert results["total"].scalar() == 4200.0
    assert results["zero"].ok and results["zero"].scalar() == 0.0
    assert not results["missing"].ok
    assert results["missing"].scalar() is None
    assert results["missing"].reason == "no such series in Prometheus"
    assert not results["bad"].ok and not results["bad"].unreachable
    assert results["bad"].reason.startswith(f"Prometheus at {prom.url} rejected a query: ")
    assert "parse error" in results["bad"].reason


def test_range_query_returns_points_over_the_window(prom: Prometheus) -> None:
    # Wait for a few scrapes (1 s apart) so the range holds several points.
    wait_for(lambda: prom.query("count_over_time(demo_rows[1m]) >= 5"), timeout=20)
    end = dt.datetime.now(dt.UTC)
    series = prom.query_range('demo_rows{collection="books"}', start=end - dt.timedelta(minutes=1), end=end, step_s=1)
    [books] = series
    assert len(books.points) >= 3
    assert {v for _, v in books.points} == {3000.0}
    ranges = prom.range_many(
        {"m": "sum(demo_rows)", "none": "nothing_here"}, start=end - dt.timedelta(minutes=1), end=end, step_s=1.5
    )
    assert ranges["m"].ok and ranges["m"].series[0].points[-1][1] == 4200.0
    assert not ranges["none"].ok and ranges["none"].reason == "no such series in Prometheus"


class _SlowProxy(BaseHTTPRequestHandler):
    """Forwards to Prometheus after a delay, counting how many requests are in flight at once."""

    upstream = ""
    lock = threading.Lock()
    in_flight = 0
    max_in_flight = 0

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        try:
            time.sleep(0.3)
            with urllib.request.urlopen(cls.upstream + self.path, timeout=5) as resp:
                body = resp.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def log_message(self, *args: Any) -> None:
        pass


def test_queries_run_concurrently(prom: Prometheus) -> None:
    _SlowProxy.upstream = prom.url
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _SlowProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        slow = connect(f"http://127.0.0.1:{proxy.server_address[1]}", timeout_s=5)
        queries = {str(i): f"sum(demo_rows) + {i}" for i in range(8)}
        results = slow.instant_many(queries)
        assert {k: r.scalar() for k, r in results.items()} == {str(i): 4200.0 + i for i in range(8)}
        assert _SlowProxy.max_in_flight == 8
    finally:
        proxy.shutdown()


def test_prometheus_down_is_a_clear_integration_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    prom = connect(url, timeout_s=2)
    started = time.monotonic()
    with pytest.raises(IntegrationError) as err:
        prom.query("up")
    assert time.monotonic() - started < 2
    assert err.value.message == f"Prometheus at {url} is unreachable (connection failed); no metrics could be read"
    assert err.value.system == "prometheus"
    results = prom.instant_many({"a": "up", "b": "up"})
    assert all(r.unreachable and r.reason == err.value.message for r in results.values())


def test_a_hanging_prometheus_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections into the backlog and never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        prom = connect(url, timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(IntegrationError) as err:
            prom.query("up")
        assert time.monotonic() - started < 3
        assert err.value.message == f"Prometheus at {url} did not answer a query within 0.5 s"
    finally:
        listener.close()
