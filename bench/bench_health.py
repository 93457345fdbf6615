"""How long a health (and capacity) report takes against a real Prometheus, and how many queries it sends.

Starts a real Milvus 2.3.5 (scripts/milvus-server.py) scraped every second by a real Prometheus,
drives a little traffic so the latency histograms have data, then times, in the same run:

- the baseline: one instant query;
- the health report without its chart (all queries at once), and with the queries sent one by one;
- the health report with its 24 h latency chart, cold (first chart in the process: matplotlib import)
  and warm;
- the capacity report (7-day window) with charts;
- the health report through a proxy adding 20 ms to every query (a remote or busy Prometheus),
  concurrent and one at a time: where the thread pool pays off.

    .venv/bin/python bench/bench_health.py [--runs 10]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Environment, HealthThresholds, MilvusTarget
from commands.reports.build import build_capacity, build_health
from integrations.prometheus import connect
from tests.commands.reports.reports_helpers import INST, NS, milvus_scrape_config
from tests.support.servers import start_milvus_server, start_prometheus
from tests.support.wait import wait_for


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times), result


class _Latency(BaseHTTPRequestHandler):
    """Forwards to Prometheus after a fixed delay: a Prometheus across a network, or a busy one."""

    upstream = ""
    delay_s = 0.02

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        with urllib.request.urlopen(self.upstream + self.path, timeout=10) as resp:
            body = resp.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def traffic(uri: str, seconds: float) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    client.create_collection("bench", dimension=32)
    client.insert("bench", [{"id": i, "vector": [random.random() for _ in range(32)]} for i in range(5000)])
    client.flush("bench")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.search("bench", [[random.random() for _ in range(32)]], limit=5)
        client.query("bench", filter="id < 5")
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--traffic-seconds", type=float, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        milvus = start_milvus_server(Path(tmp) / "milvus")
        prom_server = None
        try:
            assert milvus.metrics_url
            prom_server = start_prometheus(Path(tmp) / "prom", config_yaml=milvus_scrape_config(milvus.metrics_url))
            prom = connect(prom_server.url)
            wait_for(lambda: prom.query('up{job="milvus"} == 1'), timeout=30)
            traffic(milvus.uri, args.traffic_seconds)
            env = Environment(name="bench", milvus=MilvusTarget(uri=milvus.uri), prometheus_url=prom_server.url,
                              prometheus_namespace=NS, prometheus_instance=INST)
            th = HealthThresholds()
            sequential = connect(prom_server.url, workers=1)

            base_med, base_max, _ = timed(lambda: prom.query('sum(rate(milvus_proxy_req_count[5m]))'), args.runs)
            cold_started = time.perf_counter()
            cold = build_health(prom, env, th, charts=True)
            cold_s = time.perf_counter() - cold_started
            h_med, h_max, h = timed(lambda: build_health(prom, env, th, charts=False), args.runs)
            s_med, s_max, _ = timed(lambda: build_health(sequential, env, th, charts=False), args.runs)
            c_med, c_max, hc = timed(lambda: build_health(prom, env, th, charts=True), args.runs)
            cap_med, cap_max, cap = timed(lambda: build_capacity(prom, env, th, charts=True), args.runs)

            print(f"Prometheus {prom_server.url}, real Milvus 2.3.5 metrics, {args.runs} runs each (median / max)")
            print(f"baseline: 1 instant query                    {base_med * 1000:7.1f} ms / {base_max * 1000:7.1f} ms")
            print(f"health, no chart, concurrent ({h.queries:2d} queries)  "  # type: ignore[attr-defined]
                  f"{h_med * 1000:7.1f} ms / {h_max * 1000:7.1f} ms  = {h_med / base_med:.1f}x one query")
            print(f"health, no chart, one at a time            {s_med * 1000:7.1f} ms / {s_max * 1000:7.1f} ms")
            print(f"health + 24 h chart, first in process ({cold.queries} q) {cold_s * 1000:7.1f} ms"
                  " (includes importing matplotlib)")
            print(f"health + 24 h chart, warm ({hc.queries:2d} queries)     "  # type: ignore[attr-defined]
                  f"{c_med * 1000:7.1f} ms / {c_max * 1000:7.1f} ms")
            print(f"capacity 7 d + 2 charts ({cap.queries:2d} queries)       "  # type: ignore[attr-defined]
                  f"{cap_med * 1000:7.1f} ms / {cap_max * 1000:7.1f} ms")
            _Latency.upstream = prom_server.url
            proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Latency)
            threading.Thread(target=proxy.serve_forever, daemon=True).start()
            far_url = f"http://127.0.0.1:{proxy.server_address[1]}"
            far, far_seq = connect(far_url), connect(far_url, workers=1)
            f_med, f_max, _ = timed(lambda: build_health(far, env, th, charts=False), args.runs)
            fs_med, fs_max, _ = timed(lambda: build_health(far_seq, env, th, charts=False), args.runs)
            proxy.shutdown()
            delay = _Latency.delay_s * 1000
            far_label = f"health, no chart, +{delay:.0f} ms a query,"
            print(f"{far_label} concurrent    {f_med * 1000:7.1f} ms / {f_max * 1000:7.1f} ms")
            print(f"{far_label} one at a time {fs_med * 1000:7.1f} ms / {fs_max * 1000:7.1f} ms")
            print(f"verdict {h.verdict.value}: {h.verdict_text()}")  # type: ignore[attr-defined]
        finally:
            if prom_server:
                prom_server.stop()
            milvus.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
