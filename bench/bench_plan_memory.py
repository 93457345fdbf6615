"""Checked against a real Milvus: the planner's index memory vs what Milvus 2.3.5 holds once loaded.

Starts a real Milvus 2.3.5 standalone (PyPI ``milvus`` in ``.test-servers/milvus-venv``, made by
scripts/install-test-deps.sh; started through tests/support/servers.py), and for each case creates a
collection of N random 128-d float32 vectors, flushes, builds the index, loads it, and measures:

- ``entity_size``: ``milvus_querynode_entity_size`` for the collection from ``/metrics``, the bytes
  Milvus accounts to the loaded sealed segments (what its load admission compares with memory);
- ``RSS delta``: the server process' resident memory just after ``load_collection`` minus just
  before (``/proc/<pid>/status`` VmRSS, sampled until it settles).

and prints them beside bot/sizing.py's index memory and loading memory for the same N, d, index and
the server's segment size (512 MB in 2.3.5's milvus.yaml), with the ratios.

    .venv/bin/python bench/bench_plan_memory.py            # about 4 minutes on 2 cores
    .venv/bin/python bench/bench_plan_memory.py --quick    # two small cases, for a smoke run
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from pymilvus import DataType, MilvusClient  # noqa: E402

from bot.sizing import GIB, parse_plan_input, plan  # noqa: E402
from tests.support.servers import milvus_server_available, start_milvus_server  # noqa: E402

MIB = 1024**2
DIM = 128
SEGMENT_MB = 512  # dataCoord.segment.maxSize in Milvus 2.3.5's milvus.yaml


@dataclass(frozen=True)
class Case:
    index: str
    vectors: int
    params: dict[str, Any]

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in self.params.items())
        return f"{self.index}" + (f" ({shown})" if shown else "")

    def plan_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"vectors": self.vectors, "dim": DIM, "index": self.index}
        fields["segment_size_mb"] = SEGMENT_MB
        if "nlist" in self.params:
            fields["nlist"] = self.params["nlist"]
        if "M" in self.params:
            fields["m"] = self.params["M"]
        return fields


# Cases of one size share a collection: inserting is the slow part (about 18k rows/s here), so each
# size is inserted once and re-indexed for every index type.
CASES = (
    Case("FLAT", 100_000, {}),
    Case("HNSW", 100_000, {"M": 16, "efConstruction": 64}),
    Case("FLAT", 300_000, {}),
    # nlist 128 (the planner's default): k-means with nlist 1024 on 500k vectors took 512 s here.
    Case("IVF_FLAT", 300_000, {"nlist": 128}),
    Case("IVF_SQ8", 300_000, {"nlist": 128}),
)
QUICK = (Case("FLAT", 100_000, {}), Case("IVF_SQ8", 100_000, {"nlist": 128}))
INSERT_BATCH = 20_000


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def settled_rss(pid: int, timeout: float = 20.0) -> int:
    """RSS once two samples a second apart agree within 1 MiB (loading finishes in the background)."""
    deadline = time.monotonic() + timeout
    last = rss_bytes(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = rss_bytes(pid)
        if abs(now - last) < MIB:
            return now
        last = now
    return last


def entity_size(metrics_url: str, collection_id: int) -> float:
    text = httpx.get(metrics_url, timeout=10).text
    pattern = re.compile(r"^milvus_querynode_entity_size\{([^}]*)\}\s+(\S+)$")
    total = 0.0
    for line in text.splitlines():
        match = pattern.match(line)
        if match and f'collection_id="{collection_id}"' in match.group(1):
            total += float(match.group(2))
    return total


def wait_index(client: MilvusClient, name: str, rows: int, timeout: float = 600.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        info = client.describe_index(name, "v")
        if info.get("state") == "Finished" or (info.get("indexed_rows") == rows and not info.get("pending_index_rows")):
            return time.monotonic() - started
        if info.get("state") == "Failed":
            raise RuntimeError(f"index build failed: {info}")
        time.sleep(0.5)
    raise TimeoutError(f"index on {name} not built in {timeout:.0f} s")


def create_collection(client: MilvusClient, name: str, vectors: int, seed: int) -> float:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(name, schema=schema)
    rng = np.random.default_rng(seed)
    started = time.monotonic()
    for start in range(0, vectors, INSERT_BATCH):
        count = min(INSERT_BATCH, vectors - start)
        rows = rng.random((count, DIM), dtype=np.float32)
        client.insert(name, [{"id": start + i, "v": rows[i]} for i in range(count)])
    client.flush(name)
    return time.monotonic() - started


def run_case(client: MilvusClient, server: Any, name: str, case: Case) -> dict[str, Any]:
    """Index, load, release, load again; the second load's RSS step is the measurement.

    The first load's RSS step is muddied by memory the same process freed after inserting and
    building the index (standalone runs every component in one process). Releasing returns the
    segments' large allocations to the OS, so release -> reload isolates what the loaded data takes.
    """
    if client.list_indexes(name):
        client.release_collection(name)
        client.drop_index(name, "v")
    index_params = client.prepare_index_params()
    index_params.add_index("v", index_type=case.index, metric_type="L2", params=dict(case.params))
    started = time.monotonic()
    client.create_index(name, index_params)
    wait_index(client, name, case.vectors)
    index_s = time.monotonic() - started
    collection_id = int(client.describe_collection(name)["collection_id"])
    pid = int(server.info["pid"])
    client.load_collection(name)
    settled_rss(pid)
    client.release_collection(name)
    released = settled_rss(pid)
    started = time.monotonic()
    client.load_collection(name)
    load_s = time.monotonic() - started
    loaded = settled_rss(pid)
    measured = entity_size(server.metrics_url, collection_id)
    p = plan(parse_plan_input(case.plan_fields()))
    return {
        "case": case,
        "index_gib": p.index_memory_gib,
        "loading_gib": p.loading_memory_gib,
        "entity_bytes": measured,
        "rss_delta": loaded - released,
        "index_s": index_s,
        "load_s": load_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two 100k cases only")
    args = parser.parse_args()
    reason = milvus_server_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-plan-memory-"))
    started = time.monotonic()
    server = start_milvus_server(workdir)
    client = MilvusClient(server.uri)
    try:
        version = client.get_server_version()
        print(f"Milvus {version} (pid {server.info['pid']}), {DIM}-d float32 vectors, segment {SEGMENT_MB} MB")
        results = []
        collections: dict[int, str] = {}
        for case in QUICK if args.quick else CASES:
            if case.vectors not in collections:
                name = f"bench_{case.vectors}"
                insert_s = create_collection(client, name, case.vectors, seed=len(collections))
                collections[case.vectors] = name
                print(f"  {case.vectors:,} x {DIM}d inserted and flushed in {insert_s:.1f} s", flush=True)
            result = run_case(client, server, collections[case.vectors], case)
            results.append(result)
            print(
                f"  {case.label} x {case.vectors:,}: index {result['index_s']:.1f} s, load {result['load_s']:.1f} s;"
                f" predicted index {result['index_gib'] * GIB / MIB:,.1f} MiB, RSS step"
                f" {result['rss_delta'] / MIB:,.1f} MiB, entity_size {result['entity_bytes'] / MIB:,.1f} MiB",
                flush=True,
            )
    finally:
        client.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    header = (
        "| index | vectors | raw vectors MiB | predicted index memory MiB | RSS step on load MiB | measured / predicted"
        " | entity_size MiB | predicted loading memory MiB | measured / loading |"
    )
    print()
    print(header)
    print("| --- " * 9 + "|")
    for r in results:
        done: Case = r["case"]
        raw = done.vectors * DIM * 4 / MIB
        predicted = r["index_gib"] * GIB / MIB
        loading = r["loading_gib"] * GIB / MIB
        entity = r["entity_bytes"] / MIB
        rss = r["rss_delta"] / MIB
        print(
            f"| {done.label} | {done.vectors:,} | {raw:,.1f} | {predicted:,.1f} | {rss:,.1f} | {rss / predicted:.2f}"
            f" | {entity:,.1f} | {loading:,.1f} | {rss / loading:.2f} |"
        )
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
