"""Print how long each real test server takes to start and stop, and its memory.

    .venv/bin/python -m tests.support.measure_servers

Numbers for docs/testing.md; not a test.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import servers


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (Milvus runs under a wrapper)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(c) for c in children)
    return total / 1024


def measure(name: str, start: Callable[[], Any]) -> None:
    began = time.monotonic()
    try:
        server = start()
    except servers.ServerStartError as exc:
        print(f"{name:<22} not started: {str(exc).splitlines()[0]}")
        return
    started = time.monotonic() - began
    process = getattr(server, "process", None)
    rss = f"{rss_mib(process.pid):7.0f} MiB" if process else "  (in-process)"
    began = time.monotonic()
    server.stop()
    print(f"{name:<22} start {started:6.2f} s   stop {time.monotonic() - began:5.2f} s   rss {rss}")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="measure-servers-"))
    am_config = "route:\n  receiver: x\nreceivers:\n- name: x\n"
    measure("prometheus", lambda: servers.start_prometheus(base / "prom", scrape_targets=["127.0.0.1:9"]))
    measure("alertmanager", lambda: servers.start_alertmanager(base / "am", am_config))
    measure("moto s3 (thread)", servers.start_moto_s3)
    measure("milvus-lite server", lambda: servers.start_milvus_lite_server(base / "lite"))
    measure("postgresql", servers.start_postgres)
    measure("milvus 2.3.5 server", lambda: servers.start_milvus_server(base / "milvus"))
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
