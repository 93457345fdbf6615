"""Backup and restore throughput of the logical engine next to raw baselines measured in the same run.

    .venv/bin/python bench/bench_backup.py [--rows 1000000] [--dim 128]

Milvus Lite (in process) and moto's S3 server (a separate process on 127.0.0.1, so it does not compete
with the bot for the GIL). Baselines:
- read:   pymilvus ``query_iterator`` over the whole collection, nothing else done with the rows;
- upload: boto3 ``upload_fileobj`` of as many bytes as the backup stored, in objects of the same size;
- insert: ``MilvusClient.insert`` at the best batch size of a sweep, rows built before the clock starts.
Targets: backup >= 80% of the slower of read/upload; restore >= 80% of raw insert (rows/s).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def make_collection(client: Any, name: str, dim: int) -> None:
    from pymilvus import DataType, MilvusClient

    if client.has_collection(name):
        client.drop_collection(name)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(name, schema=schema)


def rows_for(start: int, count: int, dim: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    vectors = rng.random((count, dim), dtype=np.float32)
    return [{"id": start + i, "vec": vectors[i]} for i in range(count)]


def timed_insert(client: Any, name: str, total: int, batch: int, dim: int, seed: int = 1) -> float:
    """Seconds spent inside insert calls only; rows are built outside the clock."""
    rng = np.random.default_rng(seed)
    spent = 0.0
    for start in range(0, total, batch):
        rows = rows_for(start, min(batch, total - start), dim, rng)
        t0 = time.perf_counter()
        client.insert(name, rows)
        spent += time.perf_counter() - t0
    return spent


def line(label: str, rows: int, nbytes: float, seconds: float) -> str:
    return (f"{label:<34} {rows / seconds:>10,.0f} rows/s {nbytes / 1e6 / seconds:>8,.1f} MB/s "
            f"({seconds:,.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--sweep-rows", type=int, default=50_000)
    parser.add_argument("--object-mb", type=int, default=64)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    # boto3's default chain reads these, as in production (moto accepts any credentials).
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    moto, url = start_moto(workdir)
    try:
        return run(args, workdir, url)
    finally:
        moto.terminate()
        moto.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path, s3_url: str) -> int:
    from boto3.s3.transfer import TransferConfig

    from bot.config import Config
    from bot.context import Runtime
    from bot.settings import Settings
    from bot.state import Store
    from commands import build_registry
    from commands.backup.engine import ITERATOR_BATCH, create_backup
    from commands.backup.restore import restore_backup
    from integrations.s3 import make_s3_client

    config = Config.model_validate({"environments": {"bench": {
        "milvus": {"uri": str(workdir / "milvus.db"), "timeout_s": 600},
        "backup": {"bucket": "bench", "prefix": "p", "endpoint_url": s3_url, "region": "us-east-1",
                   "object_mb": args.object_mb, "retention": {"days": None, "keep_last": None}},
    }}})
    store = Store(f"sqlite:///{workdir / 'state.db'}")
    store.migrate()

    class Quiet:
        def post(self, *a: Any, **k: Any) -> str:
            return ""

        def update(self, *a: Any, **k: Any) -> None:
            return None

        def upload(self, *a: Any, **k: Any) -> None:
            return None

    runtime = Runtime(settings=Settings(MILVUS_CHATOPS_DATA_DIR=str(workdir)), config=config, store=store,
                      messenger=Quiet(), registry=build_registry())
    env = config.environments["bench"]
    client = runtime.services.milvus_client(env)
    s3 = make_s3_client(endpoint_url=s3_url, region="us-east-1")
    s3.create_bucket(Bucket="bench")
    raw_row = 8 + 4 * args.dim  # int64 pk + float32 vector: the data's own size, used for every MB/s below
    print(f"bench_backup: {args.rows:,} rows x {args.dim}-d float vectors ({args.rows * raw_row / 1e6:,.0f} MB raw),"
          f" Milvus Lite in process, moto S3 on loopback, {os.cpu_count()} CPUs")

    # 1. Raw insert: sweep batch sizes on a slice, then load the whole collection at the best one.
    sweep = {}
    for batch in (1_000, 2_000, 5_000, 10_000):
        make_collection(client, "sweep", args.dim)
        sweep[batch] = args.sweep_rows / timed_insert(client, "sweep", args.sweep_rows, batch, args.dim)
        print(f"  insert sweep batch {batch:>6,}: {sweep[batch]:>10,.0f} rows/s")
    client.drop_collection("sweep")
    best = max(sweep, key=lambda b: sweep[b])
    make_collection(client, "vectors", args.dim)
    spent = timed_insert(client, "vectors", args.rows, best, args.dim)
    insert_rate = args.rows / spent
    print(line(f"raw insert (batch {best:,})", args.rows, args.rows * raw_row, spent))
    # What a restore also has to do before the data is usable: seal, index, load.
    t0 = time.perf_counter()
    client.flush("vectors")
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_index("vectors", index)
    client.load_collection("vectors")
    usable_s = spent + time.perf_counter() - t0
    print(line("raw insert + flush + index + load", args.rows, args.rows * raw_row, usable_s))

    # 2. Raw read: the query iterator alone.
    t0 = time.perf_counter()
    iterator = client.query_iterator("vectors", batch_size=ITERATOR_BATCH, filter="",
                                     output_fields=["id", "vec"])
    read = 0
    while batch_rows := iterator.next():
        read += len(batch_rows)
    iterator.close()
    read_s = time.perf_counter() - t0
    assert read == args.rows, f"iterator returned {read} rows"
    print(line("raw read (query_iterator)", read, read * raw_row, read_s))

    # 3. Backup.
    t0 = time.perf_counter()
    record = create_backup(runtime, env, ["vectors"])
    backup_s = time.perf_counter() - t0
    print(line("backup (logical engine)", record.rows, record.rows * raw_row, backup_s)
          + f"  stored {record.bytes / 1e6:,.0f} MB in {len(list(runtime.services.object_store(env).list('bench/')))}"
          " objects")

    # 4. Raw upload: the same number of stored bytes, in objects of the same size, with boto3 alone.
    object_bytes = min(args.object_mb * 1_000_000, record.bytes)
    payload = np.random.default_rng(2).bytes(object_bytes)
    transfer = TransferConfig(multipart_threshold=16 * 2**20, multipart_chunksize=16 * 2**20, max_concurrency=8)
    uploaded, n = 0, 0
    t0 = time.perf_counter()
    while uploaded < record.bytes:
        s3.upload_fileobj(io.BytesIO(payload), "bench", f"raw/{n}", Config=transfer)
        uploaded += len(payload)
        n += 1
    upload_s = time.perf_counter() - t0
    upload_rows_equiv = int(uploaded / (record.bytes / record.rows))
    print(line("raw upload (boto3)", upload_rows_equiv, upload_rows_equiv * raw_row, upload_s)
          + f"  {uploaded / 1e6 / upload_s:,.1f} MB/s of stored bytes")

    # 5. Restore (create, insert, index, load, count + sampled rows checked, rename).
    lines: list[str] = []
    t0 = time.perf_counter()
    report = restore_backup(runtime, env, record.id, env, suffix="_restored", progress=lines.append,
                                    insert_batch_rows=best)
    restore_s = time.perf_counter() - t0
    assert report.rows == args.rows and not report.collections[0].sample_mismatches
    print(line("restore (logical engine)", report.rows, report.rows * raw_row, restore_s)
          + f"  sampled {report.collections[0].sampled} rows equal")
    restore_insert_s = report.collections[0].insert_seconds
    print(line("  of which reading S3 + inserting", report.rows, report.rows * raw_row, restore_insert_s))

    # 6. Raw insert once more, as a check on how much the machine's load drifted during the run. Not used
    #    in the verdict: inserting into a small, empty collection is faster than filling one to --rows
    #    (Milvus Lite slows as a collection grows), so only the full-size insert is a like-for-like baseline.
    client.drop_collection("vectors_restored")
    again_rows = min(args.rows, 200_000)
    make_collection(client, "again", args.dim)
    again_s = timed_insert(client, "again", again_rows, best, args.dim, seed=3)
    client.drop_collection("again")
    print(line(f"raw insert again ({again_rows:,} rows, load check)", again_rows, again_rows * raw_row, again_s))

    # 7. Verdict.
    read_rate = args.rows / read_s
    upload_rate = upload_rows_equiv / upload_s
    slower = min(read_rate, upload_rate)
    backup_rate = args.rows / backup_s
    restore_rate = args.rows / restore_s
    restore_insert_rate = args.rows / restore_insert_s
    usable_rate = args.rows / usable_s
    print()
    print(f"backup : {backup_rate:,.0f} rows/s = {backup_rate / slower:.0%} of the slower raw baseline "
          f"({'read' if read_rate <= upload_rate else 'upload'}, {slower:,.0f} rows/s); target >= 80%: "
          f"{'PASS' if backup_rate >= 0.8 * slower else 'FAIL'}")
    print(f"restore: {restore_insert_rate:,.0f} rows/s while inserting = {restore_insert_rate / insert_rate:.0%} of raw"
          f" insert of the same rows ({insert_rate:,.0f} rows/s); target >= 80%: "
          f"{'PASS' if restore_insert_rate >= 0.8 * insert_rate else 'FAIL'}")
    print(f"restore end to end (incl. index, load, checks, rename): {restore_rate:,.0f} rows/s = "
          f"{restore_rate / usable_rate:.0%} of raw insert + flush + index + load ({usable_rate:,.0f} rows/s)")
    runtime.services.close_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
