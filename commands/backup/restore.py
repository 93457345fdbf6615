"""Verifying a backup, and restoring one through temporary collections.

Restore never leaves a half-restored collection under a real name: each collection is rebuilt under a
temporary name (``<target>__restoring_<token>``), checked (row counts against the manifest, a sample of
rows read back equal to the backup), and only then renamed into place (dropping the old one with
``--drop-existing``). Any failure on the way (S3 unreachable, a corrupted object, Milvus refusing) drops
the temporary collections; a crash leaves a note in the state store that recovery uses to drop them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bot import blocks as bk
from bot.config import Environment
from bot.errors import IntegrationError, NotFound
from commands.backup.format import (
    CollectionEntry,
    Column,
    CorruptBackup,
    Manifest,
    ObjectEntry,
    check_bytes,
    columns_for,
    decode,
    read_manifest,
    row_bytes,
)
from commands.backup.progress import Meter, Progress, no_progress
from commands.backup.records import (
    CollectionResult,
    RestoreReport,
    VerifyReport,
    backup_dir,
    backup_target,
    check_belongs,
    keepalive,
)
from commands.backup.records import (
    clashes as clashes_error,
)
from commands.backup.recovery import forget_restore, note_restore, reclaim_dead_restores, restore_lease
from commands.backup.remote import remote_check_restore, remote_restore, remote_verify
from integrations.s3 import ObjectMissing, ObjectStore

if TYPE_CHECKING:
    from bot.context import Runtime
    from integrations.milvus import MilvusData

log = logging.getLogger("milvus_chatops.backup")

SAMPLE_ROWS = 200


# -- verify --------------------------------------------------------------------------------------------


def verify_backup(
    runtime: Runtime, env: Environment, backup_id: str, progress: Progress = no_progress
) -> VerifyReport:
    """Re-read every object and check its size and SHA-256 against the manifest.

    milvus-backup keeps no per-object hashes; for its backups only the server's state is checked.
    """
    check_belongs(env, backup_id)
    if backup_target(env).engine == "milvus-backup":
        return remote_verify(runtime, env, backup_id)
    store = runtime.services.object_store(env)
    manifest = read_manifest(store, env.name, backup_id)
    base = backup_dir(env.name, backup_id)
    started = time.perf_counter()
    problems: list[str] = []
    meter = Meter(progress, manifest.rows, verb="verified rows")
    checked = 0
    for coll in manifest.collections:
        for obj in coll.objects:
            problem = _check_object(store, base, obj)
            if problem:
                problems.append(problem)
            checked += 1
            meter.add(obj.rows, obj.bytes, coll.name)
    return VerifyReport(backup_id, checked, meter.bytes, problems, time.perf_counter() - started)


def _check_object(store: ObjectStore, base: str, obj: ObjectEntry) -> str | None:
    try:
        data = store.get(f"{base}/{obj.key}")
    except ObjectMissing:
        return f"{obj.key}: missing"
    return check_bytes(obj, data)


# -- restore -------------------------------------------------------------------------------------------


def plan_restore(
    manifest: Manifest, collections: list[str] | None, suffix: str
) -> list[tuple[CollectionEntry, str]]:
    chosen = manifest.collections
    if collections:
        names = {c.name for c in manifest.collections}
        unknown = [c for c in collections if c not in names]
        if unknown:
            raise NotFound(
                f"Backup `{bk.escape(manifest.id)}` has no collection "
                f"{', '.join(f'`{bk.escape(c)}`' for c in unknown)}.",
                hint=f"It holds {bk.escape(', '.join(sorted(names)))}.",
            )
        chosen = [c for c in manifest.collections if c.name in collections]
    return [(c, c.name + suffix) for c in chosen]


def restore_backup(
    runtime: Runtime,
    source_env: Environment,
    backup_id: str,
    target_env: Environment,
    *,
    collections: list[str] | None = None,
    suffix: str = "",
    drop_existing: bool = False,
    progress: Progress = no_progress,
    insert_batch_rows: int | None = None,
) -> RestoreReport:
    """Rebuild collections from a backup in ``target_env``; see the module docstring for the safety rules."""
    check_belongs(source_env, backup_id)
    if backup_target(source_env).engine == "milvus-backup":
        return remote_restore(runtime, source_env, backup_id, target_env, collections=collections, suffix=suffix,
                              drop_existing=drop_existing, progress=progress)
    # Temporary collections an interrupted restore left in this environment go before new ones appear.
    reclaim_dead_restores(runtime, target_env.name)
    milvus = runtime.services.milvus_data(target_env)
    store = runtime.services.object_store(source_env)
    _, plan, existing = _prepare_restore(store, milvus, source_env, backup_id, target_env, collections,
                                         suffix, drop_existing)
    base = backup_dir(source_env.name, backup_id)
    _preflight(store, base, plan)

    started = time.perf_counter()
    token = secrets.token_hex(3)
    planned = [f"{target}__restoring_{token}" for _, target in plan]
    temps: list[str] = []
    results: list[CollectionResult] = []
    meter = Meter(progress, sum(c.rows for c, _ in plan), verb="restored rows")
    # The lease first, then the note: a note without a live lease is what recovery drops.
    with keepalive(runtime, restore_lease(token), f"restore of {backup_id} into {target_env.name}"):
        note_restore(runtime, token, target_env.name, planned)
        try:
            for (entry, target), temp in zip(plan, planned, strict=True):
                t0 = time.perf_counter()
                _create_collection(milvus, entry, temp)
                temps.append(temp)
                _load_objects(milvus, store, base, entry, temp, meter, insert_batch_rows)
                inserted = time.perf_counter() - t0
                progress(f"{entry.name}: building indexes and loading")
                _build_indexes(milvus, entry, temp)
                restored, sampled, mismatches = _check_restored(milvus, store, base, entry, temp)
                results.append(
                    CollectionResult(
                        entry.name, target, entry.rows, restored, sampled, mismatches, time.perf_counter() - t0,
                        inserted,
                    )
                )
            bad = [r for r in results if r.rows_restored != r.rows_expected or r.sample_mismatches]
            if bad:
                details = "; ".join(
                    f"{r.source}: {r.rows_restored:,} rows of {r.rows_expected:,}"
                    + (f", sample differs ({r.sample_mismatches[0]})" if r.sample_mismatches else "")
                    for r in bad
                )
                raise IntegrationError(
                    f"The restored data does not match backup `{backup_id}` ({bk.escape(details)}); "
                    "nothing was replaced.",
                    system="backup",
                )
            # Everything checked out: swap the temporary collections into place.
            for (_entry, target), temp in zip(plan, list(temps), strict=True):
                if target in existing:
                    milvus.drop(target)
                milvus.rename(temp, target)
                temps.remove(temp)
                milvus.load(target)
        finally:
            left = []
            for temp in temps:
                try:
                    milvus.drop(temp)
                except Exception:  # cleanup is best effort; the original error matters more
                    log.exception("could not drop temporary collection %s", temp)
                    left.append(temp)
            if not left:  # else the note stays, and recovery drops them later
                forget_restore(runtime, token)
    progress(meter.line())
    return RestoreReport(backup_id, target_env.name, results, time.perf_counter() - started, meter.bytes)


def _prepare_restore(
    store: ObjectStore, milvus: MilvusData, source_env: Environment, backup_id: str, target_env: Environment,
    collections: list[str] | None, suffix: str, drop_existing: bool,
) -> tuple[Manifest, list[tuple[CollectionEntry, str]], set[str]]:
    manifest = read_manifest(store, source_env.name, backup_id)
    plan = plan_restore(manifest, collections, suffix)
    existing = set(milvus.collections())
    clashes = [target for _, target in plan if target in existing]
    if clashes and not drop_existing:
        raise clashes_error(clashes, target_env.name)
    return manifest, plan, existing


def check_restore(
    runtime: Runtime, source_env: Environment, backup_id: str, target_env: Environment, *,
    collections: list[str] | None = None, suffix: str = "", drop_existing: bool = False,
) -> list[tuple[str, str]]:
    """The checks a restore makes before touching anything, so an approval is never asked for a doomed one.

    Returns (source collection, target collection) pairs.
    """
    check_belongs(source_env, backup_id)
    if backup_target(source_env).engine == "milvus-backup":
        return remote_check_restore(runtime, source_env, backup_id, collections, suffix)
    milvus = runtime.services.milvus_data(target_env)
    store = runtime.services.object_store(source_env)
    _, plan, _ = _prepare_restore(store, milvus, source_env, backup_id, target_env, collections, suffix,
                                  drop_existing)
    return [(entry.name, target) for entry, target in plan]


def _preflight(store: ObjectStore, base: str, plan: list[tuple[CollectionEntry, str]]) -> None:
    """Refuse before touching Milvus when an object is missing or has the wrong size."""
    present = {o.key: o.size for o in store.list(f"{base}/")}
    problems = []
    for entry, _ in plan:
        for obj in entry.objects:
            size = present.get(f"{base}/{obj.key}")
            if size is None:
                problems.append(f"{obj.key}: missing")
            elif size != obj.bytes:
                problems.append(f"{obj.key}: size {size:,} bytes, manifest says {obj.bytes:,}")
    if problems:
        raise CorruptBackup(
            f"Backup does not match its manifest ({len(problems)} object(s)): {bk.escape('; '.join(problems[:5]))}. "
            "Nothing was restored.",
            hint="Restore from another backup; `/milvus backup verify <id>` checks one fully.",
        )


def _create_collection(milvus: MilvusData, entry: CollectionEntry, name: str) -> None:
    num_partitions = None
    if entry.partition_key:
        key_partitions = [p for p in entry.partitions if p.startswith("_pk_")]
        num_partitions = len(key_partitions) or None
    milvus.create_collection(name, entry.schema, num_partitions=num_partitions)
    if not entry.partition_key:
        for partition in entry.partitions:
            if partition != "_default":
                milvus.create_partition(name, partition)


def _fetch_objects(store: ObjectStore, base: str, entry: CollectionEntry, cols: list[Column]) -> Iterator[
    tuple[ObjectEntry, list[dict[str, Any]]]
]:
    """Download, check and decode objects one ahead of the inserts, in a thread."""
    results: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def worker() -> None:
        try:
            for obj in entry.objects:
                if stop.is_set():
                    return
                data = store.get(f"{base}/{obj.key}")
                problem = check_bytes(obj, data)
                if problem:
                    raise CorruptBackup(
                        f"Backup object {bk.escape(problem)}. Nothing was restored.",
                        hint="Restore from another backup; `/milvus backup verify <id>` checks one fully.",
                    )
                results.put((obj, decode(data, cols)))
            results.put(None)
        except BaseException as exc:
            results.put(exc)

    thread = threading.Thread(target=worker, name="restore-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = results.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a worker waiting on a full queue
            with contextlib.suppress(queue.Empty):
                results.get(timeout=0.1)


def _load_objects(milvus: MilvusData, store: ObjectStore, base: str, entry: CollectionEntry, temp: str,
                  meter: Meter, batch_rows: int | None) -> None:
    cols = columns_for(entry.schema)
    batch = batch_rows or max(500, min(10_000, 2_000_000 // row_bytes(cols)))
    # auto_id collections refuse inserted keys: Milvus assigns new ones (the manifest's counts still hold).
    drop_key = _pk_field(entry.schema)["name"] if entry.schema["auto_id"] else None
    for obj, rows in _fetch_objects(store, base, entry, cols):
        partition = obj.partition if obj.partition and not entry.partition_key else ""
        if drop_key:
            for row in rows:
                row.pop(drop_key, None)
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            milvus.insert(temp, chunk, partition)
            meter.add(len(chunk), obj.bytes * len(chunk) // max(obj.rows, 1), entry.name)


def _build_indexes(milvus: MilvusData, entry: CollectionEntry, name: str) -> None:
    # Sealing the inserted data first makes the index build and the load work on whole segments.
    milvus.flush(name)
    milvus.create_indexes(name, entry.indexes)
    milvus.load(name)


def _pk_field(spec: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in spec["fields"] if f.get("is_primary"))


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)))
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.float32(a) == np.float32(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _check_restored(milvus: MilvusData, store: ObjectStore, base: str, entry: CollectionEntry,
                    name: str) -> tuple[int, int, list[str]]:
    """Row count of the restored collection, and a sample of rows compared with the backup's."""
    restored = milvus.count(name)
    pk = _pk_field(entry.schema)
    if entry.schema["auto_id"] or not entry.objects:
        return restored, 0, []  # auto_id keys are new on insert; counts are what can be compared
    cols = columns_for(entry.schema)
    # Spread the sample over the first and last objects, where truncation would show.
    picks = [entry.objects[0], entry.objects[-1]] if len(entry.objects) > 1 else [entry.objects[0]]
    sample: list[dict[str, Any]] = []
    for obj in picks:
        rows = decode(store.get(f"{base}/{obj.key}"), cols)
        step = max(len(rows) // (SAMPLE_ROWS // len(picks)), 1)
        sample.extend(rows[::step][: SAMPLE_ROWS // len(picks)])
    keys = [r[pk["name"]] for r in sample]
    got = milvus.query(name, f"{pk['name']} in {json.dumps(keys)}", ["*"])
    by_key = {r[pk["name"]]: r for r in got}
    skip = {f["name"] for f in entry.schema["fields"] if f.get("is_function_output")}
    mismatches = []
    for row in sample:
        key = row[pk["name"]]
        back = by_key.get(key)
        if back is None:
            mismatches.append(f"row {key!r} missing")
            continue
        for column, value in row.items():
            if column in skip:
                continue
            if not _same(value, back.get(column)):
                mismatches.append(f"row {key!r} field {column}")
                break
    return restored, len(sample), mismatches
