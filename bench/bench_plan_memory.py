"""Checked against a real Milvus: the planner's index memory vs what Milvus 2.3.5 holds once loaded.

Starts a real Milvus 2.3.5 standalone (PyPI ``milvus`` in ``.test-servers/milvus-venv``, made by
scripts/install-test-deps.sh; started through tests/support/servers.py), and for each case creates a
collection of N random 128-d float32 vectors, flushes, builds the index, loads it, and measures:

- native memory: the server's resident memory outside the Go runtime
  (``process_resident_memory_bytes - (go_memstats_sys_bytes - go_memstats_heap_released_bytes)``
  from its ``/metrics``), sampled after jemalloc's decay time; the measurement is what a release
  of the loaded collection gives back;
- ``entity_size``: ``milvus_querynode_entity_size`` for the collection, the bytes Milvus accounts
  to the loaded sealed segments.

and prints them beside bot/sizing.py's index memory and loading memory for the same N, d, index and
the server's segment size (512 MB in 2.3.5's milvus.yaml), with the ratios.

    .venv/bin/python bench/bench_plan_memory.py            # about 11 minutes on 2 cores
    .venv/bin/python bench/bench_plan_memory.py --quick    # two small cases, for a smoke run
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
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

from commands.plan.sizing import GIB, parse_plan_input, plan  # noqa: E402
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
CYCLES = 3
DECAY_S = 11.0  # jemalloc's default dirty_decay_ms is 10 s


def scrape(metrics_url: str) -> dict[str, float]:
    """Unlabelled samples of one /metrics scrape, plus entity_size per collection."""
    text = httpx.get(metrics_url, timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("milvus_querynode_entity_size{"):
            match = re.search(r'collection_id="(\d+)"', name)
            if match:
                key = f"entity_size:{match.group(1)}"
                out[key] = out.get(key, 0.0) + float(value)
        elif "{" not in name:
            out[name] = float(value)
    return out


def native_bytes(metrics_url: str) -> float:
    """Resident memory outside the Go runtime: RSS minus what Go holds from the OS.

    Loaded segments and indexes live in segcore/knowhere (C++); the Go heap of the same process grows
    and shrinks with gRPC traffic and GC and would otherwise swamp a 30 MiB step.
    """
    m = scrape(metrics_url)
    go_held = m["go_memstats_sys_bytes"] - m["go_memstats_heap_released_bytes"]
    return m["process_resident_memory_bytes"] - go_held


def settled(metrics_url: str, timeout: float = 30.0) -> float:
    """Native memory after the allocator has had time to return freed pages, once it stops moving.

    Milvus' C++ core allocates with jemalloc, which hands freed pages back to the OS gradually over
    its 10 s decay time; sampling earlier counts memory a load or release already let go of.
    """
    time.sleep(DECAY_S)
    deadline = time.monotonic() + timeout
    last = native_bytes(metrics_url)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = native_bytes(metrics_url)
        if abs(now - last) < MIB:
            return now
        last = now
    return last


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
    """Index, load once to warm up, then load and release ``CYCLES`` times.

    The measurement is how much native memory a release gives back (median over the cycles). Load
    steps run low and are only printed: the build ran in the same process (standalone runs every
    component in one), and the load reuses memory the allocator kept after the build or the
    previous release, so its rise understates what the loaded data holds.
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
    url = server.metrics_url
    client.load_collection(name)
    client.release_collection(name)
    low = settled(url)
    loads: list[float] = []
    releases: list[float] = []
    load_s = 0.0
    for _ in range(CYCLES):
        started = time.monotonic()
        client.load_collection(name)
        load_s = time.monotonic() - started
        high = settled(url)
        loads.append(high - low)
        entity = scrape(url).get(f"entity_size:{collection_id}", 0.0)
        client.release_collection(name)
        low = settled(url)
        releases.append(high - low)
    p = plan(parse_plan_input(case.plan_fields()))
    return {
        "case": case,
        "index_gib": p.index_memory_gib,
        "loading_gib": p.loading_memory_gib,
        "entity_bytes": entity,
        "rss_delta": statistics.median(releases),
        "load_steps": loads,
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
            steps = ", ".join(f"{x / MIB:.1f}" for x in result["load_steps"])
            print(
                f"  {case.label} x {case.vectors:,}: index {result['index_s']:.1f} s, load {result['load_s']:.1f} s;"
                f" predicted index {result['index_gib'] * GIB / MIB:,.1f} MiB, native memory released"
                f" {result['rss_delta'] / MIB:,.1f} MiB (load steps {steps}),"
                f" entity_size {result['entity_bytes'] / MIB:,.1f} MiB",
                flush=True,
            )
    finally:
        client.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    header = (
        "| index | vectors | raw vectors MiB | predicted index memory MiB | native memory released MiB"
        " | measured / predicted | entity_size MiB | predicted loading memory MiB | measured / loading |"
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
