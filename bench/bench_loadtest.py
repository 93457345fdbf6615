"""The load generator's own overhead: what ``/milvus loadtest`` achieves against what a bare pymilvus
loop achieves on the same collection, same queries, same threads, in the same run.

Starts a real Milvus 2.3.5 (scripts/milvus-server.py), or uses ``--lite`` (a milvus-lite server),
loads a collection, then alternates, ``--rounds`` times each:

- bare: N threads, each ``client.search(...)`` in a tight loop until the deadline, counting answers;
- generator (closed loop): ``run_load`` with the same N threads through ``MilvusSearch.search_raw``,
  recording every latency, as the command does.

Target: the generator's median QPS is at least 0.9 of the bare loop's. It also reports an open loop
at 80% of the bare rate (the achieved rate should match the asked one) and the generator's ceiling
against a no-op search (how fast it can dispatch when the server costs nothing).

    .venv/bin/python bench/bench_loadtest.py [--seconds 8] [--threads 4] [--rounds 3] [--lite]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from commands.readiness.loadgen import LoadSpec, run_load
from integrations.milvus import MilvusSearch
from tests.commands.readiness.helpers import make_collection
from tests.support.servers import start_milvus_lite_server, start_milvus_server

COLLECTION = "bench_loadtest"


def bare_loop(client: Any, batches: list[list[list[float]]], params: dict[str, Any], seconds: float,
              threads: int) -> float:
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(w: int) -> None:
        i = w
        while time.perf_counter() < deadline:
            client.search(COLLECTION, data=batches[i % len(batches)], anns_field="vec", limit=10,
                          search_params=params, output_fields=[])
            counts[w] += 1
            i += threads

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--lite", action="store_true", help="a milvus-lite server instead of Milvus 2.3.5")
    args = parser.parse_args()

    from pymilvus import MilvusClient

    with tempfile.TemporaryDirectory() as tmp:
        server = start_milvus_lite_server(tmp) if args.lite else start_milvus_server(tmp)
        try:
            client = MilvusClient(uri=server.uri, timeout=60)
            data = np.random.default_rng(0).random((args.rows, 16), dtype=np.float32)
            make_collection(client, COLLECTION, data, index="IVF_FLAT", params={"nlist": 128})
            search = MilvusSearch(client, uri=server.uri, timeout_s=30)
            vf = search.vector_field(COLLECTION)
            pool = [v for _, v in search.sample(vf, 1000)]
            batches = [[v] for v in pool]
            params = {"metric_type": "L2", "params": {"nprobe": 16}}

            def one(vectors: list[list[float]]) -> Any:
                return search.search_raw(COLLECTION, vectors, anns_field="vec", limit=10, search_params=params)

            # Searches before the index is built scan raw segments: wait for it, then warm up connections.
            index = client.list_indexes(COLLECTION)[0]
            deadline = time.monotonic() + 120
            while client.describe_index(COLLECTION, index).get("pending_index_rows", 0) and time.monotonic() < deadline:
                time.sleep(0.5)
            bare_loop(client, batches, params, 5.0, args.threads)
            bare, gen = [], []
            for _ in range(args.rounds):
                bare.append(bare_loop(client, batches, params, args.seconds, args.threads))
                result = run_load(one, batches, LoadSpec(args.seconds, args.threads))
                assert result.errors == 0, result.first_error
                gen.append(result.qps)
            b, g = statistics.median(bare), statistics.median(gen)
            target = 0.8 * b
            opened = run_load(one, batches, LoadSpec(args.seconds, args.threads, qps=target))
            noop = run_load(lambda _v: None, batches, LoadSpec(2.0, args.threads))
            server_name = "milvus-lite server" if args.lite else "Milvus 2.3.5"
            print(f"{server_name}, {args.rows:,} x 16 IVF_FLAT nprobe 16, {args.threads} threads, "
                  f"{args.seconds:g} s x {args.rounds} rounds (alternating)")
            print(f"  bare pymilvus loop    : median {b:8,.1f} QPS  (rounds {', '.join(f'{x:,.1f}' for x in bare)})")
            print(f"  load generator        : median {g:8,.1f} QPS  (rounds {', '.join(f'{x:,.1f}' for x in gen)})")
            print(f"  ratio                 : {g / b:.3f}  (target >= 0.9: {'met' if g / b >= 0.9 else 'NOT met'})")
            p = opened.percentiles()
            print(f"  open loop asked {target:,.1f}/s: achieved {opened.qps:,.1f}/s, p50 {p['p50']} ms, "
                  f"p99 {p['p99']} ms")
            print(f"  generator ceiling (no-op search): {noop.qps:,.0f} dispatches/s")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
