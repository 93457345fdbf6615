"""Creating a logical backup, listing an environment's backups, and finding which one an id names.

Per collection: the schema, partitions and index parameters (through integrations/milvus.py), then the
rows read with the query iterator and written as Parquet objects (format.py) by a writer thread, so
reading Milvus and encoding overlap. The manifest goes LAST: a backup without one is incomplete, is
never listed as usable, and is removed by recovery once its writer is gone. The milvus-backup engine
(remote.py) is chosen per environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from bot import blocks as bk
from bot.config import Environment
from bot.errors import Conflict, NotFound, UserError
from bot.state import utcnow
from commands.backup.format import (
    MANIFEST,
    META_COLUMN,
    CollectionEntry,
    Column,
    Manifest,
    ObjectEntry,
    arrow_schema,
    columns_for,
    read_manifest,
    row_bytes,
    rows_to_batch,
)
from commands.backup.progress import Meter, Progress, no_progress
from commands.backup.records import (
    BackupRecord,
    Listing,
    backup_dir,
    backup_lease,
    backup_target,
    check_backup_id,
    db_get,
    db_insert,
    db_rows,
    db_update,
    env_of_backup_id,
    is_stale,
    keepalive,
    new_backup_id,
    short,
)
from commands.backup.recovery import group_by_backup, reclaim_dead_backups
from commands.backup.remote import remote_create, remote_list
from integrations.s3 import ObjectStore

if TYPE_CHECKING:
    from bot.context import Runtime
    from integrations.milvus import MilvusData

log = logging.getLogger("milvus_chatops.backup")

ITERATOR_BATCH = 10_000


class _ObjectWriter:
    """Turns batches of rows into Parquet objects in a thread, so reading Milvus and encoding overlap.

    Objects are rotated at ``rows_per_object``; each is hashed and uploaded before the next starts.
    """

    def __init__(self, store: ObjectStore, base: str, cols: list[Column], rows_per_object: int,
                 meter: Meter, label: str) -> None:
        self.store = store
        self.base = base
        self.cols = cols
        self.schema = arrow_schema(cols)
        self.rows_per_object = rows_per_object
        self.meter = meter
        self.label = label
        self.objects: list[ObjectEntry] = []
        self._queue: queue.Queue[tuple[str | None, str, list[dict[str, Any]]] | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="backup-writer", daemon=True)
        self._thread.start()

    def write(self, partition: str | None, directory: str, rows: list[dict[str, Any]]) -> None:
        self._raise()
        self._queue.put((partition, directory, rows))

    def close(self) -> list[ObjectEntry]:
        self._queue.put(None)
        self._thread.join()
        self._raise()
        return self.objects

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        import pyarrow.parquet as pq

        buf: io.BytesIO | None = None
        writer: Any = None
        current: tuple[str | None, str] | None = None
        rows_in_object = 0
        seq: dict[str, int] = {}

        def flush() -> None:
            nonlocal buf, writer, rows_in_object
            if writer is None or buf is None or current is None:
                return
            writer.close()
            data = buf.getvalue()
            partition, directory = current
            n = seq.get(directory, 0)
            seq[directory] = n + 1
            key = f"{directory}/part-{n:05d}.parquet"
            self.store.put(f"{self.base}/{key}", data)
            digest = hashlib.sha256(data).hexdigest()
            self.objects.append(ObjectEntry(key, partition, rows_in_object, len(data), digest))
            self.meter.add(0, len(data), self.label)
            buf, writer, rows_in_object = None, None, 0

        try:
            while True:
                item = self._queue.get()
                if item is None:
                    flush()
                    return
                partition, directory, rows = item
                if current != (partition, directory):
                    flush()
                    current = (partition, directory)
                batch = rows_to_batch(rows, self.cols, self.schema)
                if writer is None:
                    buf = io.BytesIO()
                    writer = pq.ParquetWriter(buf, self.schema, compression="zstd", compression_level=1)
                writer.write_batch(batch, row_group_size=max(len(rows), 1))
                rows_in_object += len(rows)
                self.meter.add(len(rows), 0, self.label)
                if rows_in_object >= self.rows_per_object:
                    flush()
        except BaseException as exc:
            self._error = exc
            # Keep draining so the producer never blocks on a full queue after a failure.
            while self._queue.get() is not None:
                pass


def create_backup(
    runtime: Runtime,
    env: Environment,
    collections: list[str] | None = None,
    *,
    user: str = "",
    trigger: str = "manual",
    progress: Progress = no_progress,
    object_mb: int | None = None,
) -> BackupRecord:
    """Back up ``collections`` (default: the configured list, or all) of ``env``; returns the record."""
    target = backup_target(env)
    # A backup whose process died (kill -9, OOM, node loss) must not block this one: recover it first.
    reclaim_dead_backups(runtime, env)
    if target.engine == "milvus-backup":
        return remote_create(runtime, env, collections, user=user, trigger=trigger, progress=progress)
    milvus = runtime.services.milvus_data(env)
    store = runtime.services.object_store(env)
    existing = milvus.collections()
    wanted = collections or target.collections or existing
    unknown = [c for c in wanted if c not in existing]
    if unknown:
        raise NotFound(
            f"`{env.name}` has no collection {', '.join(f'`{bk.escape(c)}`' for c in unknown)}.",
            hint=f"Collections: {bk.escape(', '.join(existing)) or 'none'}.",
        )
    if not wanted:
        raise UserError(f"`{env.name}` has no collections to back up.")
    running = [r for r in db_rows(runtime, env.name) if r.state == "running" and not is_stale(runtime, r.id)]
    if running:
        raise Conflict(f"Backup `{running[0].id}` of `{env.name}` is still running; wait for it to finish.")

    now = utcnow()
    backup_id = new_backup_id(env.name, now)
    base = backup_dir(env.name, backup_id)
    record = BackupRecord(backup_id, env.name, "logical", "running", list(wanted), 0, 0, now,
                          location=f"{store.location}/{base}", created_by=user, trigger=trigger)
    db_insert(runtime, record)
    try:
        with keepalive(runtime, backup_lease(backup_id), f"backup {backup_id}", backup_id):
            version = milvus.server_version()
            entries = []
            for name in wanted:
                progress(f"reading the schema, indexes and row count of {name}")
                entries.append(_describe_for_backup(milvus, name))
            total = sum(e.count_at_start or 0 for e in entries)
            meter = Meter(progress, total, verb="backed up rows")
            object_bytes = (object_mb or target.object_mb) * 1_000_000
            for entry in entries:
                _backup_collection(milvus, store, base, entry, meter, object_bytes)
            manifest = Manifest(backup_id, env.name, now, utcnow(), version, entries)
            # The manifest goes last: its presence is what makes the backup usable.
            store.put(f"{base}/{MANIFEST}", manifest.to_bytes())
    except BaseException as exc:
        db_update(runtime, backup_id, state="failed", finished_at=utcnow(), error=short(exc))
        _discard(store, base)
        raise
    done = manifest.record(record.location, user, trigger)
    db_update(runtime, backup_id, state="complete", rows=done.rows, bytes=done.bytes, finished_at=done.finished_at)
    progress(meter.line())
    return done


def _discard(store: ObjectStore, base: str) -> None:
    """Best effort: remove what a failed backup wrote. If the store is down, the sweep does it later."""
    try:
        keys = [o.key for o in store.list(f"{base}/")]
        if keys:
            store.delete(keys)
    except Exception:
        log.warning("could not remove the objects of failed backup %s yet; the sweep will", base, exc_info=True)


def _describe_for_backup(milvus: MilvusData, name: str) -> CollectionEntry:
    spec = milvus.schema(name)
    indexes = milvus.indexes(name)
    partitions = milvus.partitions(name)
    partition_key = any(f.get("is_partition_key") for f in spec["fields"])
    if not milvus.is_loaded(name):
        if not indexes:
            raise UserError(
                f"`{bk.escape(name)}` is not loaded and has no index, so its rows cannot be read.",
                hint="Create an index and load it, then back it up.",
            )
        # Reading needs a loaded collection; loading is what the operator would do by hand.
        milvus.load(name)
    # Sealed segments read several times faster than growing ones; milvus-backup flushes first too.
    milvus.flush(name)
    count = milvus.count(name)
    return CollectionEntry(name, spec, indexes, partitions, partition_key, count_at_start=count)


def _backup_collection(milvus: MilvusData, store: ObjectStore, base: str, entry: CollectionEntry, meter: Meter,
                       object_bytes: int) -> None:
    cols = columns_for(entry.schema)
    rows_per_object = max(1_000, object_bytes // row_bytes(cols))
    writer = _ObjectWriter(store, base, cols, rows_per_object, meter, entry.name)
    output_fields = [c.name for c in cols if c.name != META_COLUMN]
    if entry.schema["enable_dynamic_field"]:
        output_fields.append("*")
    # Partition-key collections cannot be written to by partition name: read them whole.
    passes: list[str | None] = [None] if entry.partition_key else list(entry.partitions)
    try:
        for number, partition in enumerate(passes):
            directory = f"{entry.name}/{number:03d}"
            for rows in milvus.iterate(entry.name, batch_size=min(ITERATOR_BATCH, rows_per_object),
                                       output_fields=output_fields, partition=partition):
                writer.write(partition, directory, rows)
                entry.rows += len(rows)
    finally:
        objects = writer.close()
    entry.objects = objects
    entry.bytes = sum(o.bytes for o in objects)
    if entry.count_at_start is not None and entry.rows != entry.count_at_start:
        # Writes during the backup explain a difference; so would an iterator losing rows (known pymilvus
        # bugs). The manifest keeps both numbers so a restore is checked against what was really read.
        log.warning("backup of %s read %d rows; count(*) said %d when it started",
                    entry.name, entry.rows, entry.count_at_start)


# -- list / find ---------------------------------------------------------------------------------------


def list_backups(runtime: Runtime, env: Environment) -> Listing:
    """Usable backups come from manifests in the store; the table fills in who and why.

    Manifests the table does not know (a new bot database, another replica's region) are adopted.
    """
    target = backup_target(env)
    if target.engine == "milvus-backup":
        return remote_list(runtime, env)
    store = runtime.services.object_store(env)
    groups = group_by_backup(store.list(f"{env.name}/"), env.name)
    known = {r.id: r for r in db_rows(runtime, env.name)}
    usable, incomplete = [], []
    for backup_id, objects in groups.items():
        has_manifest = any(o.key.endswith(f"/{MANIFEST}") and o.key.count("/") == 2 for o in objects)
        record = known.get(backup_id)
        if has_manifest:
            if record is None or record.state != "complete":
                manifest = read_manifest(store, env.name, backup_id)
                adopted = manifest.record(f"{store.location}/{backup_dir(env.name, backup_id)}",
                                          record.created_by if record else "", record.trigger if record else "found")
                if record is None:
                    # Another listing may adopt it at the same moment; either insert will do.
                    with contextlib.suppress(IntegrityError):
                        db_insert(runtime, adopted)
                db_update(runtime, backup_id, state="complete", rows=adopted.rows, bytes=adopted.bytes,
                           finished_at=adopted.finished_at, error=None)
                record = adopted
            usable.append(record)
        elif record is None or record.state != "running" or is_stale(runtime, backup_id):
            incomplete.append(backup_id)
    running = [r for r in known.values() if r.state == "running" and not is_stale(runtime, r.id)]
    # A completed backup whose manifest vanished from the store is not usable any more.
    for record in known.values():
        if record.state == "complete" and record.id not in {u.id for u in usable}:
            db_update(runtime, record.id, state="missing")
    usable.sort(key=lambda r: r.created_at, reverse=True)
    return Listing(usable, running, sorted(incomplete))


def find_backup(runtime: Runtime, backup_id: str) -> tuple[Environment, BackupRecord | None]:
    """The environment a backup belongs to: from the table, else from the id, else by asking each
    milvus-backup server (whose names need not name their environment)."""
    check_backup_id(backup_id)
    record = db_get(runtime, backup_id)
    envs = runtime.config.environments
    if record and record.environment in envs:
        return envs[record.environment], record
    name = env_of_backup_id(backup_id)
    if name in envs and envs[name].backup is not None:
        return envs[name], None
    for env in envs.values():
        if env.backup is None or env.backup.engine != "milvus-backup":
            continue
        try:
            runtime.services.milvus_backup(env).get(backup_id)
            return env, None
        except NotFound:
            continue
    raise NotFound(f"There is no backup `{bk.escape(backup_id)}`.", hint="`/milvus backup list <env>` shows them.")


