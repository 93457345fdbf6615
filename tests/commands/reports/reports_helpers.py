"""Real Prometheus servers with known data for the report tests.

``backfilled_prometheus``: series with known linear growth written into a TSDB with
``promtool tsdb create-blocks-from openmetrics``, then served by a real Prometheus. Days of history
load in about a second, so forecasts are tested on the windows they are meant for.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import ProcessServer, free_port, start_prometheus
from tests.support.wait import wait_for

GIB = 1024**3
DAY = 86400
NS, INST = "prod", "vdb"


@dataclass(frozen=True)
class Known:
    """The data the backfilled Prometheus holds, so tests can compute what the report must say."""

    end: dt.datetime
    days: int = 7
    mem_start: float = 10 * GIB
    mem_per_day: float = 1 * GIB
    mem_limit: float = 32 * GIB
    rows_start: float = 1_000_000
    rows_per_day: float = 250_000
    dim: int = 128
    etcd_start: float = 1 * GIB
    etcd_per_day: float = 0.2 * GIB
    etcd_quota: float = 4 * GIB
    # The helm release; its pods are "<release>-milvus-<component>-..." unless the release name
    # already contains "milvus", when milvus-helm names them "<release>-<component>-...".
    instance: str = INST

    def at_end(self, start: float, per_day: float) -> float:
        return start + per_day * self.days



def _series(
    name: str, labels: dict[str, str], fn: Callable[[float], float], start: float, end: float, step: float
) -> list[str]:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    lines = []
    t = start
    while t <= end:
        lines.append(f"{name}{{{text}}} {fn(t - start):.3f} {t:.0f}")
        t += step
    return lines


def openmetrics(known: Known, step: float = 600) -> str:
    end = known.end.timestamp()
    start = end - known.days * DAY
    milvus = {"namespace": NS, "app_kubernetes_io_instance": known.instance}
    fullname = known.instance if "milvus" in known.instance else f"{known.instance}-milvus"
    pod = {"namespace": NS, "pod": f"{fullname}-querynode-5d8f9c7b6-x2x4k", "container": "querynode"}
    rows = lambda s: known.rows_start + known.rows_per_day * s / DAY  # noqa: E731
    families: dict[str, tuple[str, list[str]]] = {
        "container_memory_working_set_bytes": (
            "gauge",
            _series(
                "container_memory_working_set_bytes",
                pod,
                lambda s: known.mem_start + known.mem_per_day * s / DAY,
                start,
                end,
                step,
            ),
        ),
        "kube_pod_container_resource_limits": (
            "gauge",
            _series(
                "kube_pod_container_resource_limits",
                {**pod, "resource": "memory", "unit": "byte"},
                lambda s: known.mem_limit,
                start,
                end,
                step,
            ),
        ),
        "kube_pod_container_status_restarts_total": (
            "counter",
            _series("kube_pod_container_status_restarts_total", pod, lambda s: 3, start, end, step),
        ),
        "milvus_rootcoord_entity_num": (
            "gauge",
            _series(
                "milvus_rootcoord_entity_num",
                {**milvus, "db_name": "default", "collection_name": "docs", "status": "all"},
                rows,
                start,
                end,
                step,
            ),
        ),
        "milvus_datacoord_stored_binlog_size": (
            "gauge",
            _series(
                "milvus_datacoord_stored_binlog_size",
                {**milvus, "collection_id": "1"},
                lambda s: rows(s) * (24 + 4 * known.dim),
                start,
                end,
                step,
            ),
        ),
        "milvus_querycoord_querynode_num": (
            "gauge",
            _series("milvus_querycoord_querynode_num", milvus, lambda s: 1, start, end, step),
        ),
        "etcd_mvcc_db_total_size_in_bytes": (
            "gauge",
            _series(
                "etcd_mvcc_db_total_size_in_bytes",
                {"namespace": NS, "pod": f"{known.instance}-etcd-0"},
                lambda s: known.etcd_start + known.etcd_per_day * s / DAY,
                start,
                end,
                step,
            ),
        ),
        "etcd_server_quota_backend_bytes": (
            "gauge",
            _series(
                "etcd_server_quota_backend_bytes",
                {"namespace": NS, "pod": f"{known.instance}-etcd-0"},
                lambda s: known.etcd_quota,
                start,
                end,
                step,
            ),
        ),
    }
    out = []
    for name, (kind, lines) in families.items():
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


@contextmanager
def backfilled_prometheus(tmp: Path, known: Known) -> Iterator[ProcessServer]:
    """A real Prometheus whose TSDB holds ``known``'s series (and scrapes nothing)."""
    tmp.mkdir(parents=True, exist_ok=True)
    source = tmp / "history.om"
    source.write_text(openmetrics(known))
    data = tmp / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    config = tmp / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\n")
    port = free_port()
    log_path = tmp / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=30d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ProcessServer("prometheus", f"http://127.0.0.1:{port}", port, proc, log_path, tmp)
    try:
        import urllib.request

        def ready() -> bool:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as r:
                return r.status == 200

        wait_for(ready, timeout=30, ignore=(OSError,), message=lambda: f"prometheus not ready: {server.log()}")
        yield server
    finally:
        server.stop()


def milvus_scrape_config(metrics_url: str) -> str:
    """Prometheus scraping one Milvus every second, labelled as the helm ServiceMonitor would."""
    target = metrics_url.split("://", 1)[1].split("/", 1)[0]
    return (
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "- job_name: milvus\n"
        "  static_configs:\n"
        f"  - targets: ['{target}']\n"
        f"    labels: {{namespace: {NS}, app_kubernetes_io_instance: {INST}, component: standalone}}\n"
    )


__all__ = ["INST", "NS", "Known", "backfilled_prometheus", "milvus_scrape_config", "start_prometheus"]
