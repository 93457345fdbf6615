"""Backups of Milvus collections: create, list, verify, restore, delete, retention, cleanup.

Two engines:
- ``logical`` (built in, works against any Milvus including Lite): per collection the schema,
  partitions and index parameters, and the rows read with ``query_iterator`` and written as Parquet
  (zstd) objects. A ``manifest.json`` with row counts, byte sizes and a SHA-256 per object is written
  LAST: a backup without a manifest is incomplete, is never listed as usable, and is deleted by
  ``cleanup_incomplete`` once its writer has stopped heart-beating.
- ``milvus-backup``: the environment's milvus-backup server does the work (integrations/milvus_backup.py);
  the bot adds schedules, retention, progress and approval.

Restore never leaves a half-restored collection under a real name: each collection is rebuilt under a
temporary name, checked (row counts against the manifest, a sample of rows read back equal to the
backup), and only then renamed into place (dropping the old one with ``--drop-existing``). Any failure
on the way (S3 unreachable, a corrupted object, Milvus refusing) drops the temporary collections.

Object layout under the store's root (S3 bucket + prefix, or a local directory)::

    <env>/<backup-id>/<collection>/<partition-no>/part-00000.parquet
    <env>/<backup-id>/manifest.json            (last)
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import hashlib
import io
import itertools
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import blocks as bk
from bot import schema
from bot.config import BackupTarget, Config, Environment
from bot.errors import Conflict, IntegrationError, NotFound, UserError
from bot.reply import Message
from bot.scheduler import JobSpec
from bot.state import as_utc, utcnow
from bot.units import format_bytes
from integrations.s3 import ObjectInfo, ObjectMissing, ObjectStore

if TYPE_CHECKING:
    import pyarrow as pa

    from bot.context import Runtime

log = logging.getLogger("milvus_chatops.backups")

FORMAT = "milvus-chatops-logical/1"
MANIFEST = "manifest.json"
# A running backup writes a heartbeat this often; one silent for STALE_AFTER is considered dead.
HEARTBEAT_EVERY_S = 10.0
STALE_AFTER = dt.timedelta(minutes=10)
SAMPLE_ROWS = 200
ITERATOR_BATCH = 10_000
# Keys the server reports about an index's build state rather than how to build it.
_INDEX_STATE_KEYS = {"field_name", "index_name", "index_type", "metric_type", "total_rows", "indexed_rows",
                     "pending_index_rows", "state", "index_state", "fail_reason"}

Progress = Callable[[str], None]


def _no_progress(text: str) -> None:
    return None


# -- records -----------------------------------------------------------------------------------------


@dataclass
class BackupRecord:
    id: str
    environment: str
    engine: str
    state: str
    collections: list[str]
    rows: int
    bytes: int
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    location: str = ""
    created_by: str = ""
    trigger: str = "manual"
    error: str | None = None

    def as_data(self) -> dict[str, Any]:
        """The contract's shape for ``backup create`` / ``backup list``."""
        return {
            "id": self.id,
            "environment": self.environment,
            "engine": self.engine,
            "state": self.state,
            "collections": self.collections,
            "rows": self.rows,
            "bytes": self.bytes,
            "created_at": self.created_at.isoformat(),
        }

    @property
    def duration_s(self) -> float | None:
        return (self.finished_at - self.created_at).total_seconds() if self.finished_at else None


def _record_from_row(row: Any) -> BackupRecord:
    return BackupRecord(
        id=row["id"],
        environment=row["environment"],
        engine=row["engine"],
        state=row["state"],
        collections=list(row["collections"] or []),
        rows=int(row["rows"] or 0),
        bytes=int(row["bytes"] or 0),
        created_at=as_utc(row["created_at"]),
        finished_at=as_utc(row["finished_at"]) if row["finished_at"] else None,
        location=row["location"],
        created_by=row["created_by"],
        trigger=row["trigger"],
        error=row["error"],
    )


def _db_get(runtime: Runtime, backup_id: str) -> BackupRecord | None:
    t = schema.backups
    with runtime.store.begin() as conn:
        row = conn.execute(select(t).where(t.c.id == backup_id)).mappings().first()
    return _record_from_row(row) if row else None


def _db_rows(runtime: Runtime, env: str) -> list[BackupRecord]:
    t = schema.backups
    with runtime.store.begin() as conn:
        rows = conn.execute(select(t).where(t.c.environment == env).order_by(t.c.created_at.desc())).mappings()
        return [_record_from_row(r) for r in rows]


def _db_update(runtime: Runtime, backup_id: str, **values: Any) -> None:
    t = schema.backups
    with runtime.store.begin() as conn:
        conn.execute(update(t).where(t.c.id == backup_id).values(**values))


def _db_insert(runtime: Runtime, record: BackupRecord) -> None:
    with runtime.store.begin() as conn:
        conn.execute(
            insert(schema.backups).values(
                id=record.id,
                environment=record.environment,
                engine=record.engine,
                state=record.state,
                collections=record.collections,
                rows=record.rows,
                bytes=record.bytes,
                location=record.location,
                created_at=record.created_at,
                finished_at=record.finished_at,
                heartbeat_at=utcnow(),
                created_by=record.created_by,
                trigger=record.trigger,
                error=record.error,
            )
        )


def new_backup_id(env: str, now: dt.datetime | None = None) -> str:
    """``<env>-YYYYMMDD-HHMMSS-<hex>``: sortable, and names the environment it came from."""
    now = now or utcnow()
    return f"{env}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def env_of_backup_id(backup_id: str) -> str | None:
    parts = backup_id.rsplit("-", 3)
    if len(parts) == 4 and len(parts[1]) == 8 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0]
    return None


# -- stores ------------------------------------------------------------------------------------------


def backup_target(env: Environment) -> BackupTarget:
    if env.backup is None:
        raise UserError(
            f"Backups are not configured for `{env.name}`.",
            hint="Add a `backup:` section (bucket or local_dir) to the environment in the bot's config.",
        )
    return env.backup


# -- schema <-> JSON ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """describe_collection output (enums, protobuf default values) as plain JSON values."""
    from enum import Enum

    if isinstance(value, Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "ListFields"):  # a protobuf ValueField (default_value)
        fields = value.ListFields()
        return _plain(fields[0][1]) if fields else None
    return value


def describe_schema(client: Any, name: str) -> dict[str, Any]:
    described = client.describe_collection(name)
    fields = []
    for f in described["fields"]:
        entry = {k: _plain(v) for k, v in f.items() if k not in ("field_id",)}
        fields.append(entry)
    return {
        "name": name,
        "description": described.get("description", ""),
        "auto_id": bool(described.get("auto_id", False)),
        "enable_dynamic_field": bool(described.get("enable_dynamic_field", False)),
        "num_shards": int(described.get("num_shards", 1) or 1),
        "consistency_level": described.get("consistency_level_name") or "Bounded",
        "properties": _plain(described.get("properties", {}) or {}),
        "fields": fields,
        "functions": [
            {
                "name": fn["name"],
                "type": _plain(fn["type"]),
                "description": fn.get("description", ""),
                "input_field_names": list(fn.get("input_field_names", [])),
                "output_field_names": list(fn.get("output_field_names", [])),
                "params": _plain(fn.get("params", {}) or {}),
            }
            for fn in described.get("functions", []) or []
        ],
    }


def build_schema(spec: dict[str, Any]) -> Any:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    collection_schema = MilvusClient.create_schema(
        auto_id=spec["auto_id"], enable_dynamic_field=spec["enable_dynamic_field"], description=spec["description"]
    )
    for f in spec["fields"]:
        kwargs: dict[str, Any] = {}
        for flag in ("is_primary", "is_partition_key", "is_clustering_key", "nullable", "is_function_output"):
            if f.get(flag):
                kwargs[flag] = True
        if f.get("is_primary") and spec["auto_id"]:
            kwargs["auto_id"] = True
        if "default_value" in f and f["default_value"] is not None:
            kwargs["default_value"] = f["default_value"]
        if f.get("element_type"):
            kwargs["element_type"] = DataType[f["element_type"]]
        for key, value in (f.get("params") or {}).items():
            if key in ("dim", "max_length", "max_capacity"):
                kwargs[key] = int(value)
            elif isinstance(value, str) and value in ("true", "false"):
                kwargs[key] = value == "true"
            else:
                kwargs[key] = value
        kwargs.pop("is_function_output", None)
        collection_schema.add_field(f["name"], DataType[f["type"]], description=f.get("description", ""), **kwargs)
    for fn in spec.get("functions", []):
        collection_schema.add_function(
            Function(
                name=fn["name"],
                function_type=FunctionType[fn["type"]],
                input_field_names=fn["input_field_names"],
                output_field_names=fn["output_field_names"],
                description=fn.get("description", ""),
                params=fn.get("params") or None,
            )
        )
    return collection_schema


def describe_indexes(client: Any, name: str) -> list[dict[str, Any]]:
    result = []
    for index_name in client.list_indexes(name):
        described = client.describe_index(name, index_name)
        result.append(
            {
                "index_name": index_name,
                "field_name": described.get("field_name"),
                "index_type": described.get("index_type"),
                "metric_type": described.get("metric_type") if described.get("metric_type") != "NONE" else None,
                "params": {k: v for k, v in described.items() if k not in _INDEX_STATE_KEYS and k != "params"}
                | dict(described.get("params") or {}),
            }
        )
    return result


# -- rows <-> Arrow ----------------------------------------------------------------------------------

META_COLUMN = "$meta"
_SCALAR_ARROW = {
    "BOOL": "bool_", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FLOAT": "float32", "DOUBLE": "float64", "VARCHAR": "string", "STRING": "string",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DataType name
    encoding: str  # native | vector | json | binary
    dim: int = 0
    element_type: str | None = None


def columns_for(spec: dict[str, Any]) -> list[Column]:
    """The stored columns: every field except function outputs (Milvus regenerates those)."""
    cols = []
    for f in spec["fields"]:
        if f.get("is_function_output"):
            continue
        ftype = f["type"]
        params = f.get("params") or {}
        if ftype in _SCALAR_ARROW:
            cols.append(Column(f["name"], ftype, "native"))
        elif ftype == "ARRAY":
            cols.append(Column(f["name"], ftype, "native", element_type=f.get("element_type")))
        elif ftype == "FLOAT_VECTOR":
            cols.append(Column(f["name"], ftype, "vector", dim=int(params.get("dim", 0))))
        elif ftype in ("BINARY_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR"):
            cols.append(Column(f["name"], ftype, "binary", dim=int(params.get("dim", 0))))
        else:  # JSON, sparse vectors, int8 vectors and anything newer: JSON text is lossless enough
            cols.append(Column(f["name"], ftype, "json"))
    if spec["enable_dynamic_field"]:
        cols.append(Column(META_COLUMN, "JSON", "json"))
    return cols


def _arrow_type(col: Column) -> pa.DataType:
    import pyarrow as pa

    if col.encoding == "vector":
        return pa.list_(pa.float32(), col.dim)
    if col.encoding == "binary":
        return pa.binary()
    if col.encoding == "json":
        return pa.string()
    if col.type == "ARRAY":
        element = _SCALAR_ARROW.get(col.element_type or "", "string")
        return pa.list_(getattr(pa, element)())
    return getattr(pa, _SCALAR_ARROW[col.type])()


def arrow_schema(cols: list[Column]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(c.name, _arrow_type(c)) for c in cols])


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):  # sparse vectors have int keys; JSON keeps them as strings
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def rows_to_batch(rows: list[dict[str, Any]], cols: list[Column], schema_: pa.Schema) -> pa.RecordBatch:
    import numpy as np
    import pyarrow as pa

    known = {c.name for c in cols}
    arrays = []
    for col in cols:
        if col.name == META_COLUMN:
            extras = [{k: v for k, v in r.items() if k not in known} for r in rows]
            arrays.append(pa.array([_to_json(e) if e else None for e in extras], pa.string()))
            continue
        values = [r.get(col.name) for r in rows]
        if col.encoding == "vector":
            # fromiter over the chained lists is about twice as fast as asarray on a list of lists,
            # and this conversion competes with reading Milvus for the same CPU.
            try:
                matrix = np.fromiter(itertools.chain.from_iterable(values), dtype=np.float32,  # type: ignore[arg-type]
                                     count=len(values) * col.dim)
            except (TypeError, ValueError):
                matrix = np.asarray(values, dtype=np.float32)
            matrix = matrix.reshape(len(values), col.dim)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), col.dim))
        elif col.encoding == "binary":
            arrays.append(
                pa.array([v if isinstance(v, bytes) or v is None else bytes(v[0] if isinstance(v, list) else v)
                          for v in values], pa.binary())
            )
        elif col.encoding == "json":
            arrays.append(pa.array([_to_json(v) for v in values], pa.string()))
        else:
            arrays.append(pa.array(values, _arrow_type(col)))
    return pa.RecordBatch.from_arrays(arrays, schema=schema_)


def table_to_rows(table: pa.Table, cols: list[Column]) -> list[dict[str, Any]]:
    """Rows ready for ``MilvusClient.insert``; vectors stay numpy rows (cheap, and pymilvus takes them)."""
    names: list[str] = []
    columns: list[Any] = []
    meta: list[Any] | None = None
    n = table.num_rows
    for col in cols:
        arrow_col = table.column(col.name).combine_chunks() if table.num_rows else table.column(col.name)
        if col.name == META_COLUMN:
            meta = arrow_col.to_pylist()
            continue
        if col.encoding == "vector":
            flat = arrow_col.flatten().to_numpy(zero_copy_only=False)
            columns.append(list(flat.reshape(n, col.dim)) if n else [])
        elif col.encoding == "json":
            columns.append([json.loads(v) if v is not None else None for v in arrow_col.to_pylist()])
            if col.type == "SPARSE_FLOAT_VECTOR":
                columns[-1] = [{int(k): v for k, v in d.items()} if d is not None else None for d in columns[-1]]
        elif col.encoding == "binary":
            columns.append(arrow_col.to_pylist())
        else:
            columns.append(arrow_col.to_pylist())
        names.append(col.name)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)] if names else [
        {} for _ in range(n)
    ]
    if meta is not None:
        for row, extra in zip(rows, meta, strict=True):
            if extra:
                row.update(json.loads(extra))
    return rows


def _row_bytes(cols: list[Column]) -> int:
    """A rough size of one stored row, to size objects and insert batches."""
    size = 0
    for c in cols:
        if c.encoding == "vector":
            size += 4 * c.dim
        elif c.encoding == "binary":
            size += max(c.dim // 8, 1) * (16 if c.type != "BINARY_VECTOR" else 1)
        elif c.type in ("VARCHAR", "JSON", "ARRAY") or c.encoding == "json":
            size += 64
        else:
            size += 8
    return max(size, 8)


# -- the manifest ------------------------------------------------------------------------------------


@dataclass
class ObjectEntry:
    key: str  # relative to the backup's directory
    partition: str | None
    rows: int
    bytes: int
    sha256: str


@dataclass
class CollectionEntry:
    name: str
    schema: dict[str, Any]
    indexes: list[dict[str, Any]]
    partitions: list[str]
    partition_key: bool
    rows: int = 0
    bytes: int = 0
    count_at_start: int | None = None
    objects: list[ObjectEntry] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "schema": self.schema,
            "indexes": self.indexes,
            "partitions": self.partitions,
            "partition_key": self.partition_key,
            "rows": self.rows,
            "bytes": self.bytes,
            "count_at_start": self.count_at_start,
            "objects": [o.__dict__ for o in self.objects],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CollectionEntry:
        return cls(
            name=data["name"],
            schema=data["schema"],
            indexes=data["indexes"],
            partitions=data["partitions"],
            partition_key=data["partition_key"],
            rows=data["rows"],
            bytes=data["bytes"],
            count_at_start=data.get("count_at_start"),
            objects=[ObjectEntry(**o) for o in data["objects"]],
        )


@dataclass
class Manifest:
    id: str
    environment: str
    created_at: dt.datetime
    finished_at: dt.datetime
    milvus_version: str
    collections: list[CollectionEntry]

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.collections)

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.collections)

    def to_bytes(self) -> builtins.bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "id": self.id,
                "environment": self.environment,
                "engine": "logical",
                "created_at": self.created_at.isoformat(),
                "finished_at": self.finished_at.isoformat(),
                "milvus_version": self.milvus_version,
                "rows": self.rows,
                "bytes": self.bytes,
                "collections": [c.as_json() for c in self.collections],
            },
            indent=1,
        ).encode()

    @classmethod
    def parse(cls, raw: builtins.bytes, where: str) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            return cls(
                id=data["id"],
                environment=data["environment"],
                created_at=dt.datetime.fromisoformat(data["created_at"]),
                finished_at=dt.datetime.fromisoformat(data["finished_at"]),
                milvus_version=data.get("milvus_version", ""),
                collections=[CollectionEntry.from_json(c) for c in data["collections"]],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrationError(
                f"The manifest {where} is unreadable ({exc}); the backup cannot be used.", system="backup"
            ) from exc

    def record(self, location: str, created_by: str = "", trigger: str = "manual") -> BackupRecord:
        return BackupRecord(
            id=self.id,
            environment=self.environment,
            engine="logical",
            state="complete",
            collections=[c.name for c in self.collections],
            rows=self.rows,
            bytes=self.bytes,
            created_at=self.created_at,
            finished_at=self.finished_at,
            location=location,
            created_by=created_by,
            trigger=trigger,
        )


def _backup_dir(env: str, backup_id: str) -> str:
    return f"{env}/{backup_id}"


def _clashes(names: list[str], env: str) -> Conflict:
    listed = ", ".join(f"`{bk.escape(c)}`" for c in names)
    one = len(names) == 1
    return Conflict(
        f"{listed} already {'exists' if one else 'exist'} in `{env}`; nothing was restored.",
        hint=f"Add `--suffix _restored` to restore next to {'it' if one else 'them'}, "
        f"or `--drop-existing` to replace {'it' if one else 'them'}.",
    )


def read_manifest(store: ObjectStore, env: str, backup_id: str) -> Manifest:
    key = f"{_backup_dir(env, backup_id)}/{MANIFEST}"
    try:
        raw = store.get(key)
    except ObjectMissing:
        raise NotFound(
            f"Backup `{backup_id}` has no manifest in {store.location}: it is incomplete or was deleted.",
            hint=f"`/milvus backup list {env}` shows the usable backups.",
        ) from None
    return Manifest.parse(raw, f"{store.location}/{key}")


# -- throughput ----------------------------------------------------------------------------------------


class Meter:
    """Rows and bytes done, with a throttled progress line."""

    def __init__(self, progress: Progress, total_rows: int, every_s: float = 2.0, verb: str = "rows") -> None:
        self.progress = progress
        self.total_rows = total_rows
        self.every_s = every_s
        self.verb = verb
        self.rows = 0
        self.bytes = 0
        self.started = time.perf_counter()
        self._last = 0.0

    def add(self, rows: int, nbytes: int, label: str = "") -> None:
        self.rows += rows
        self.bytes += nbytes
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self.progress(self.line(label))

    @property
    def elapsed(self) -> float:
        return max(time.perf_counter() - self.started, 1e-9)

    def line(self, label: str = "") -> str:
        mbps = self.bytes / 1e6 / self.elapsed
        where = f"{label}: " if label else ""
        rate = self.rows / self.elapsed
        return f"{where}{self.verb} {self.rows:,} of {self.total_rows:,} ({mbps:.1f} MB/s, {rate:,.0f} rows/s)"


# -- create --------------------------------------------------------------------------------------------


def _count(client: Any, name: str, partition: str | None = None) -> int:
    kwargs: dict[str, Any] = {"partition_names": [partition]} if partition else {}
    result = client.query(name, filter="", output_fields=["count(*)"], **kwargs)
    return int(result[0]["count(*)"]) if result else 0


def _milvus_call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from pymilvus.exceptions import MilvusException

    try:
        return fn(*args, **kwargs)
    except MilvusException as exc:
        raise IntegrationError(f"Milvus failed to {what}: {exc.message}", system="milvus") from exc


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


def _heartbeat(runtime: Runtime, backup_id: str) -> Callable[[], None]:
    last = [0.0]

    def beat() -> None:
        now = time.monotonic()
        if now - last[0] >= HEARTBEAT_EVERY_S:
            last[0] = now
            _db_update(runtime, backup_id, heartbeat_at=utcnow())

    return beat


def create_backup(
    runtime: Runtime,
    env: Environment,
    collections: list[str] | None = None,
    *,
    user: str = "",
    trigger: str = "manual",
    progress: Progress = _no_progress,
    client: Any = None,
    object_mb: int | None = None,
) -> BackupRecord:
    """Back up ``collections`` (default: the configured list, or all) of ``env``; returns the record."""
    target = backup_target(env)
    if target.engine == "milvus-backup":
        return _remote_create(runtime, env, collections, user=user, trigger=trigger, progress=progress)
    if client is None:

        client = runtime.services.milvus_client(env)
    store = runtime.services.object_store(env)
    existing = sorted(_milvus_call("list collections", client.list_collections))
    wanted = collections or target.collections or existing
    unknown = [c for c in wanted if c not in existing]
    if unknown:
        raise NotFound(
            f"`{env.name}` has no collection {', '.join(f'`{bk.escape(c)}`' for c in unknown)}.",
            hint=f"Collections: {', '.join(existing) or 'none'}.",
        )
    if not wanted:
        raise UserError(f"`{env.name}` has no collections to back up.")
    running = [r for r in _db_rows(runtime, env.name) if r.state == "running" and not _is_stale(runtime, r.id)]
    if running:
        raise Conflict(f"Backup `{running[0].id}` of `{env.name}` is still running; wait for it to finish.")

    now = utcnow()
    backup_id = new_backup_id(env.name, now)
    base = _backup_dir(env.name, backup_id)
    record = BackupRecord(backup_id, env.name, "logical", "running", list(wanted), 0, 0, now,
                          location=f"{store.location}/{base}", created_by=user, trigger=trigger)
    _db_insert(runtime, record)
    beat = _heartbeat(runtime, backup_id)
    try:
        version = str(_milvus_call("report its version", client.get_server_version))
        entries = []
        for name in wanted:
            entries.append(_describe_for_backup(client, name))
        total = sum(e.count_at_start or 0 for e in entries)
        meter = Meter(progress, total, verb="backed up rows")
        object_bytes = (object_mb or target.object_mb) * 1_000_000
        for entry in entries:
            _backup_collection(client, store, base, entry, meter, object_bytes, beat)
        manifest = Manifest(backup_id, env.name, now, utcnow(), version, entries)
        # The manifest goes last: its presence is what makes the backup usable.
        store.put(f"{base}/{MANIFEST}", manifest.to_bytes())
    except BaseException as exc:
        _db_update(runtime, backup_id, state="failed", finished_at=utcnow(), error=_short(exc))
        _discard(store, base)
        raise
    done = manifest.record(record.location, user, trigger)
    _db_update(runtime, backup_id, state="complete", rows=done.rows, bytes=done.bytes, finished_at=done.finished_at)
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


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text)[:1000]


def _describe_for_backup(client: Any, name: str) -> CollectionEntry:
    spec = _milvus_call(f"describe {name}", describe_schema, client, name)
    indexes = _milvus_call(f"describe indexes of {name}", describe_indexes, client, name)
    partitions = list(_milvus_call(f"list partitions of {name}", client.list_partitions, name))
    partition_key = any(f.get("is_partition_key") for f in spec["fields"])
    state = str(_milvus_call(f"read load state of {name}", client.get_load_state, name).get("state", ""))
    if not state.endswith("Loaded"):
        if not indexes:
            raise UserError(
                f"`{name}` is not loaded and has no index, so its rows cannot be read.",
                hint="Create an index and load it, then back it up.",
            )
        # Reading needs a loaded collection; loading is what the operator would do by hand.
        _milvus_call(f"load {name}", client.load_collection, name)
    # Sealed segments read several times faster than growing ones; milvus-backup flushes first too.
    _milvus_call(f"flush {name}", client.flush, name)
    count = _milvus_call(f"count rows of {name}", _count, client, name)
    return CollectionEntry(name, spec, indexes, partitions, partition_key, count_at_start=count)


def _backup_collection(client: Any, store: ObjectStore, base: str, entry: CollectionEntry, meter: Meter,
                       object_bytes: int, beat: Callable[[], None]) -> None:
    cols = columns_for(entry.schema)
    rows_per_object = max(1_000, object_bytes // _row_bytes(cols))
    writer = _ObjectWriter(store, base, cols, rows_per_object, meter, entry.name)
    output_fields = [c.name for c in cols if c.name != META_COLUMN]
    if entry.schema["enable_dynamic_field"]:
        output_fields.append("*")
    # Partition-key collections cannot be written to by partition name: read them whole.
    passes: list[str | None] = [None] if entry.partition_key else list(entry.partitions)
    try:
        for number, partition in enumerate(passes):
            directory = f"{entry.name}/{number:03d}"
            kwargs: dict[str, Any] = {"partition_names": [partition]} if partition else {}
            iterator = _milvus_call(
                f"read {entry.name}", client.query_iterator, entry.name,
                batch_size=min(ITERATOR_BATCH, rows_per_object), filter="",
                output_fields=output_fields, **kwargs,
            )
            try:
                while True:
                    rows = _milvus_call(f"read {entry.name}", iterator.next)
                    if not rows:
                        break
                    writer.write(partition, directory, rows)
                    entry.rows += len(rows)
                    beat()
            finally:
                iterator.close()
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


@dataclass
class Listing:
    usable: list[BackupRecord]
    running: list[BackupRecord]
    incomplete: list[str]  # ids with objects but no manifest and no live writer


def _group_by_backup(objects: Iterable[ObjectInfo], env: str) -> dict[str, list[ObjectInfo]]:
    groups: dict[str, list[ObjectInfo]] = {}
    for obj in objects:
        parts = obj.key.split("/")
        if len(parts) >= 3 and parts[0] == env:
            groups.setdefault(parts[1], []).append(obj)
    return groups


def list_backups(runtime: Runtime, env: Environment) -> Listing:
    """Usable backups come from manifests in the store; the table fills in who and why.

    Manifests the table does not know (a new bot database, another replica's region) are adopted.
    """
    target = backup_target(env)
    if target.engine == "milvus-backup":
        return _remote_list(runtime, env)
    store = runtime.services.object_store(env)
    groups = _group_by_backup(store.list(f"{env.name}/"), env.name)
    known = {r.id: r for r in _db_rows(runtime, env.name)}
    usable, incomplete = [], []
    for backup_id, objects in groups.items():
        has_manifest = any(o.key.endswith(f"/{MANIFEST}") and o.key.count("/") == 2 for o in objects)
        record = known.get(backup_id)
        if has_manifest:
            if record is None or record.state != "complete":
                manifest = read_manifest(store, env.name, backup_id)
                adopted = manifest.record(f"{store.location}/{_backup_dir(env.name, backup_id)}",
                                          record.created_by if record else "", record.trigger if record else "found")
                if record is None:
                    # Another listing may adopt it at the same moment; either insert will do.
                    with contextlib.suppress(IntegrityError):
                        _db_insert(runtime, adopted)
                _db_update(runtime, backup_id, state="complete", rows=adopted.rows, bytes=adopted.bytes,
                           finished_at=adopted.finished_at, error=None)
                record = adopted
            usable.append(record)
        elif record is None or record.state != "running" or _is_stale(runtime, backup_id):
            incomplete.append(backup_id)
    running = [r for r in known.values() if r.state == "running" and not _is_stale(runtime, r.id)]
    # A completed backup whose manifest vanished from the store is not usable any more.
    for record in known.values():
        if record.state == "complete" and record.id not in {u.id for u in usable}:
            _db_update(runtime, record.id, state="missing")
    usable.sort(key=lambda r: r.created_at, reverse=True)
    return Listing(usable, running, sorted(incomplete))


def _is_stale(runtime: Runtime, backup_id: str, stale_after: dt.timedelta = STALE_AFTER) -> bool:
    t = schema.backups
    with runtime.store.begin() as conn:
        beat = conn.execute(select(t.c.heartbeat_at).where(t.c.id == backup_id)).scalar()
    return beat is None or as_utc(beat) < utcnow() - stale_after


def find_backup(runtime: Runtime, backup_id: str) -> tuple[Environment, BackupRecord | None]:
    """The environment a backup belongs to: from the table, else from the id, else by asking each store."""
    record = _db_get(runtime, backup_id)
    envs = runtime.config.environments
    if record and record.environment in envs:
        return envs[record.environment], record
    name = env_of_backup_id(backup_id)
    if name in envs and envs[name].backup is not None:
        return envs[name], None
    for env in envs.values():
        if env.backup is None:
            continue
        try:
            if env.backup.engine == "logical":
                read_manifest(runtime.services.object_store(env), env.name, backup_id)
            else:
                runtime.services.milvus_backup(env).get(backup_id)
            return env, None
        except NotFound:
            continue
    raise NotFound(f"There is no backup `{bk.escape(backup_id)}`.", hint="`/milvus backup list <env>` shows them.")


# -- verify --------------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    backup_id: str
    objects: int
    bytes: int
    problems: list[str]
    seconds: float
    engine: str = "logical"

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_backup(
    runtime: Runtime, env: Environment, backup_id: str, progress: Progress = _no_progress
) -> VerifyReport:
    """Re-read every object and check its size and SHA-256 against the manifest.

    milvus-backup keeps no per-object hashes; for its backups only the server's state is checked.
    """
    if backup_target(env).engine == "milvus-backup":
        backup = runtime.services.milvus_backup(env).get(backup_id)
        state = [] if backup.state == "complete" else [f"milvus-backup reports the backup as {backup.state}"]
        return VerifyReport(backup_id, 0, backup.size, state, 0.0, engine="milvus-backup")
    store = runtime.services.object_store(env)
    manifest = read_manifest(store, env.name, backup_id)
    base = _backup_dir(env.name, backup_id)
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
    return _check_bytes(obj, data)


def _check_bytes(obj: ObjectEntry, data: bytes) -> str | None:
    if len(data) != obj.bytes:
        return f"{obj.key}: size {len(data):,} bytes, manifest says {obj.bytes:,}"
    digest = hashlib.sha256(data).hexdigest()
    if digest != obj.sha256:
        return f"{obj.key}: SHA-256 {digest[:12]}… does not match the manifest's {obj.sha256[:12]}…"
    return None


class CorruptBackup(UserError):
    """An object of the backup does not match its manifest; nothing is restored from it."""


# -- restore -------------------------------------------------------------------------------------------


@dataclass
class CollectionResult:
    source: str
    target: str
    rows_expected: int
    rows_restored: int
    sampled: int
    sample_mismatches: list[str]
    seconds: float
    insert_seconds: float = 0.0  # of ``seconds``: creating the collection and inserting the rows


@dataclass
class RestoreReport:
    backup_id: str
    environment: str
    collections: list[CollectionResult]
    seconds: float
    bytes: int

    @property
    def rows(self) -> int:
        return sum(c.rows_restored for c in self.collections)

    def as_data(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "environment": self.environment,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "collections": [c.__dict__ for c in self.collections],
        }


def plan_restore(
    manifest: Manifest, collections: list[str] | None, suffix: str
) -> list[tuple[CollectionEntry, str]]:
    chosen = manifest.collections
    if collections:
        names = {c.name for c in manifest.collections}
        unknown = [c for c in collections if c not in names]
        if unknown:
            raise NotFound(
                f"Backup `{manifest.id}` has no collection {', '.join(f'`{bk.escape(c)}`' for c in unknown)}.",
                hint=f"It holds {', '.join(sorted(names))}.",
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
    progress: Progress = _no_progress,
    client: Any = None,
    insert_batch_rows: int | None = None,
) -> RestoreReport:
    """Rebuild collections from a backup in ``target_env``; see the module docstring for the safety rules."""
    if backup_target(source_env).engine == "milvus-backup":
        return _remote_restore(runtime, source_env, backup_id, target_env, collections=collections, suffix=suffix,
                              drop_existing=drop_existing, progress=progress)
    if client is None:

        client = runtime.services.milvus_client(target_env)
    store = runtime.services.object_store(source_env)
    _, plan, existing = _prepare_restore(store, client, source_env, backup_id, target_env, collections,
                                         suffix, drop_existing)
    base = _backup_dir(source_env.name, backup_id)
    _preflight(store, base, plan)

    started = time.perf_counter()
    token = secrets.token_hex(3)
    temps: list[str] = []
    results: list[CollectionResult] = []
    meter = Meter(progress, sum(c.rows for c, _ in plan), verb="restored rows")
    try:
        for entry, target in plan:
            temp = f"{target}__restoring_{token}"
            t0 = time.perf_counter()
            _create_collection(client, entry, temp)
            temps.append(temp)
            _load_objects(client, store, base, entry, temp, meter, insert_batch_rows)
            inserted = time.perf_counter() - t0
            _build_indexes(client, entry, temp)
            restored, sampled, mismatches = _check_restored(client, store, base, entry, temp)
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
                f"The restored data does not match backup `{backup_id}` ({details}); nothing was replaced.",
                system="backup",
            )
        # Everything checked out: swap the temporary collections into place.
        for (_entry, target), temp in zip(plan, list(temps), strict=True):
            if target in existing:
                _milvus_call(f"drop {target}", client.drop_collection, target)
            _milvus_call(f"rename {temp} to {target}", client.rename_collection, temp, target)
            temps.remove(temp)
            _milvus_call(f"load {target}", client.load_collection, target)
    finally:
        for temp in temps:
            try:
                client.drop_collection(temp)
            except Exception:  # cleanup is best effort; the original error matters more
                log.exception("could not drop temporary collection %s", temp)
    progress(meter.line())
    return RestoreReport(backup_id, target_env.name, results, time.perf_counter() - started, meter.bytes)


def _prepare_restore(
    store: ObjectStore, client: Any, source_env: Environment, backup_id: str, target_env: Environment,
    collections: list[str] | None, suffix: str, drop_existing: bool,
) -> tuple[Manifest, list[tuple[CollectionEntry, str]], set[str]]:
    manifest = read_manifest(store, source_env.name, backup_id)
    plan = plan_restore(manifest, collections, suffix)
    existing = set(_milvus_call("list collections", client.list_collections))
    clashes = [target for _, target in plan if target in existing]
    if clashes and not drop_existing:
        raise _clashes(clashes, target_env.name)
    return manifest, plan, existing


def check_restore(
    runtime: Runtime, source_env: Environment, backup_id: str, target_env: Environment, *,
    collections: list[str] | None = None, suffix: str = "", drop_existing: bool = False,
) -> list[tuple[str, str]]:
    """The checks a restore makes before touching anything, so an approval is never asked for a doomed one.

    Returns (source collection, target collection) pairs.
    """
    if backup_target(source_env).engine == "milvus-backup":
        backup = runtime.services.milvus_backup(source_env).get(backup_id)
        chosen = [c for c in backup.collections if not collections or c in collections]
        return [(c, c + suffix) for c in chosen]

    client = runtime.services.milvus_client(target_env)
    store = runtime.services.object_store(source_env)
    _, plan, _ = _prepare_restore(store, client, source_env, backup_id, target_env, collections, suffix,
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
            f"Backup does not match its manifest ({len(problems)} object(s)): {'; '.join(problems[:5])}. "
            "Nothing was restored.",
            hint="Restore from another backup; `/milvus backup verify <id>` checks one fully.",
        )


def _create_collection(client: Any, entry: CollectionEntry, name: str) -> None:
    spec = entry.schema
    kwargs: dict[str, Any] = {"consistency_level": spec.get("consistency_level") or "Bounded"}
    if spec.get("num_shards"):
        kwargs["num_shards"] = spec["num_shards"]
    if entry.partition_key:
        key_partitions = [p for p in entry.partitions if p.startswith("_pk_")]
        if key_partitions:
            kwargs["num_partitions"] = len(key_partitions)
    _milvus_call(f"create {name}", client.create_collection, name, schema=build_schema(spec), **kwargs)
    if not entry.partition_key:
        for partition in entry.partitions:
            if partition != "_default":
                _milvus_call(f"create partition {partition}", client.create_partition, name, partition)


def _decode(obj: ObjectEntry, data: bytes, cols: list[Column]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    return table_to_rows(table, cols)


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
                problem = _check_bytes(obj, data)
                if problem:
                    raise CorruptBackup(
                        f"Backup object {problem}. Nothing was restored.",
                        hint="Restore from another backup; `/milvus backup verify <id>` checks one fully.",
                    )
                results.put((obj, _decode(obj, data, cols)))
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


def _load_objects(client: Any, store: ObjectStore, base: str, entry: CollectionEntry, temp: str, meter: Meter,
                  batch_rows: int | None) -> None:
    cols = columns_for(entry.schema)
    batch = batch_rows or max(500, min(10_000, 2_000_000 // _row_bytes(cols)))
    # auto_id collections refuse inserted keys: Milvus assigns new ones (the manifest's counts still hold).
    drop_key = _pk_field(entry.schema)["name"] if entry.schema["auto_id"] else None
    for obj, rows in _fetch_objects(store, base, entry, cols):
        partition = obj.partition if obj.partition and not entry.partition_key else ""
        if drop_key:
            for row in rows:
                row.pop(drop_key, None)
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            _milvus_call(f"insert into {temp}", client.insert, temp, chunk, partition_name=partition)
            meter.add(len(chunk), obj.bytes * len(chunk) // max(obj.rows, 1), entry.name)


def _build_indexes(client: Any, entry: CollectionEntry, name: str) -> None:
    # Sealing the inserted data first makes the index build and the load work on whole segments.
    _milvus_call(f"flush {name}", client.flush, name)
    if entry.indexes:
        params = client.prepare_index_params()
        for index in entry.indexes:
            extra = {k: v for k, v in (index.get("params") or {}).items() if v is not None}
            kwargs: dict[str, Any] = {"index_type": index.get("index_type") or "", "index_name": index["index_name"]}
            if index.get("metric_type"):
                kwargs["metric_type"] = index["metric_type"]
            if extra:
                kwargs["params"] = extra
            params.add_index(index["field_name"], **kwargs)
        _milvus_call(f"create indexes on {name}", client.create_index, name, params)
    _milvus_call(f"load {name}", client.load_collection, name)


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


def _check_restored(client: Any, store: ObjectStore, base: str, entry: CollectionEntry,
                    name: str) -> tuple[int, int, list[str]]:
    """Row count of the restored collection, and a sample of rows compared with the backup's."""
    restored = _milvus_call(f"count rows of {name}", _count, client, name)
    pk = _pk_field(entry.schema)
    if entry.schema["auto_id"] or not entry.objects:
        return restored, 0, []  # auto_id keys are new on insert; counts are what can be compared
    cols = columns_for(entry.schema)
    # Spread the sample over the first and last objects, where truncation would show.
    picks = [entry.objects[0], entry.objects[-1]] if len(entry.objects) > 1 else [entry.objects[0]]
    sample: list[dict[str, Any]] = []
    for obj in picks:
        rows = _decode(obj, store.get(f"{base}/{obj.key}"), cols)
        step = max(len(rows) // (SAMPLE_ROWS // len(picks)), 1)
        sample.extend(rows[::step][: SAMPLE_ROWS // len(picks)])
    keys = [r[pk["name"]] for r in sample]
    got = _milvus_call(
        f"read back rows of {name}", client.query, name,
        filter=f"{pk['name']} in {json.dumps(keys)}", output_fields=["*"],
    )
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


# -- delete, retention, cleanup ------------------------------------------------------------------------


def delete_backup(runtime: Runtime, env: Environment, backup_id: str) -> int:
    """Delete every object of a backup, manifest first so a half-finished delete is merely incomplete."""
    if backup_target(env).engine == "milvus-backup":
        return _remote_delete(runtime, env, backup_id)
    store = runtime.services.object_store(env)
    base = _backup_dir(env.name, backup_id)
    keys = [o.key for o in store.list(f"{base}/")]
    if not keys and _db_get(runtime, backup_id) is None:
        raise NotFound(f"There is no backup `{bk.escape(backup_id)}` in `{env.name}`.")
    manifest_key = f"{base}/{MANIFEST}"
    if manifest_key in keys:
        store.delete([manifest_key])
    deleted = store.delete([k for k in keys if k != manifest_key]) + (1 if manifest_key in keys else 0)
    _db_update(runtime, backup_id, state="deleted", finished_at=utcnow())
    return deleted


def retention_victims(records: list[BackupRecord], days: int | None, keep_last: int | None,
                      now: dt.datetime) -> list[BackupRecord]:
    """Which complete backups fall outside the policy. A backup is kept if it is among the last
    ``keep_last`` OR younger than ``days``; the newest one is always kept."""
    ordered = sorted(records, key=lambda r: r.created_at, reverse=True)
    if not ordered or (days is None and keep_last is None):
        return []
    victims = []
    for index, record in enumerate(ordered):
        if index == 0:
            continue
        within_count = keep_last is not None and index < keep_last
        within_days = days is not None and record.created_at >= now - dt.timedelta(days=days)
        if not (within_count or within_days):
            victims.append(record)
    return victims


def apply_retention(runtime: Runtime, env: Environment, now: dt.datetime | None = None) -> list[str]:
    target = backup_target(env)
    listing = list_backups(runtime, env)
    victims = retention_victims(listing.usable, target.retention.days, target.retention.keep_last, now or utcnow())
    deleted = []
    for record in victims:
        delete_backup(runtime, env, record.id)
        deleted.append(record.id)
    if deleted:
        log.info("retention in %s deleted %s", env.name, ", ".join(deleted))
    return deleted


def cleanup_incomplete(runtime: Runtime, env: Environment, stale_after: dt.timedelta = STALE_AFTER) -> list[str]:
    """Delete the objects of backups that have no manifest and whose writer stopped heart-beating."""
    target = backup_target(env)
    if target.engine != "logical":
        return []
    store = runtime.services.object_store(env)
    groups = _group_by_backup(store.list(f"{env.name}/"), env.name)
    removed = []
    for backup_id, objects in groups.items():
        if any(o.key == f"{env.name}/{backup_id}/{MANIFEST}" for o in objects):
            continue
        record = _db_get(runtime, backup_id)
        newest = max(o.last_modified for o in objects)
        if record is not None and record.state == "running" and not _is_stale(runtime, backup_id, stale_after):
            continue
        if record is None and as_utc(newest) > utcnow() - stale_after:
            continue  # another bot's backup in progress, as far as we can tell
        store.delete([o.key for o in objects])
        if record is not None:
            _db_update(runtime, backup_id, state="abandoned", finished_at=utcnow(),
                       error=record.error or "the backup stopped before its manifest was written")
        removed.append(backup_id)
    # Rows of dead backups that never wrote an object.
    for record in _db_rows(runtime, env.name):
        if record.state == "running" and record.id not in groups and _is_stale(runtime, record.id, stale_after):
            _db_update(runtime, record.id, state="abandoned", finished_at=utcnow(),
                       error="the backup stopped before writing anything")
    if removed:
        log.info("removed incomplete backups of %s: %s", env.name, ", ".join(removed))
    return removed


# -- the milvus-backup engine ----------------------------------------------------------------------------


REMOTE_TIMEOUT_S = 6 * 3600.0


def _remote_name(env: str, now: dt.datetime) -> str:
    # milvus-backup accepts letters, digits and underscores in backup names.
    return f"{env.replace('-', '_')}_{now:%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


def _remote_record(env: str, backup: Any, known: BackupRecord | None = None) -> BackupRecord:
    started = dt.datetime.fromtimestamp(backup.start_time_ms / 1000, dt.UTC) if backup.start_time_ms else (
        known.created_at if known else utcnow()
    )
    ended = dt.datetime.fromtimestamp(backup.end_time_ms / 1000, dt.UTC) if backup.end_time_ms else None
    return BackupRecord(
        id=backup.name, environment=env, engine="milvus-backup", state=backup.state,
        collections=backup.collections, rows=backup.rows, bytes=backup.size, created_at=started,
        finished_at=ended, location="milvus-backup", created_by=known.created_by if known else "",
        trigger=known.trigger if known else "found", error=backup.error or None,
    )


def _remote_create(runtime: Runtime, env: Environment, collections: list[str] | None, *, user: str, trigger: str,
                   progress: Progress) -> BackupRecord:
    client = runtime.services.milvus_backup(env)
    now = utcnow()
    name = _remote_name(env.name, now)
    wanted = collections or backup_target(env).collections or []
    record = BackupRecord(name, env.name, "milvus-backup", "running", list(wanted), 0, 0, now,
                          location="milvus-backup", created_by=user, trigger=trigger)
    _db_insert(runtime, record)
    beat = _heartbeat(runtime, name)

    def on_progress(backup: Any) -> None:
        beat()
        progress(f"milvus-backup {name}: {backup.state}, {backup.progress}%")

    try:
        client.create(name, wanted or None)
        done = client.wait_backup(name, timeout_s=REMOTE_TIMEOUT_S, on_progress=on_progress)
    except BaseException as exc:
        _db_update(runtime, name, state="failed", finished_at=utcnow(), error=_short(exc))
        raise
    result = _remote_record(env.name, done, record)
    _db_update(runtime, name, state="complete", rows=result.rows, bytes=result.bytes,
               collections=result.collections, finished_at=result.finished_at or utcnow())
    result.state = "complete"
    return result


def _remote_list(runtime: Runtime, env: Environment) -> Listing:
    from integrations.milvus_backup import DONE, EXECUTING, INITIAL

    client = runtime.services.milvus_backup(env)
    known = {r.id: r for r in _db_rows(runtime, env.name)}
    usable, running, incomplete = [], [], []
    for backup in client.list():
        if backup.state_code == DONE:
            record = _remote_record(env.name, backup, known.get(backup.name))
            record.state = "complete"
            usable.append(record)
        elif backup.state_code in (INITIAL, EXECUTING):
            running.append(_remote_record(env.name, backup, known.get(backup.name)))
        else:
            incomplete.append(backup.name)
    usable.sort(key=lambda r: r.created_at, reverse=True)
    return Listing(usable, running, sorted(incomplete))


def _remote_restore(runtime: Runtime, source_env: Environment, backup_id: str, target_env: Environment, *,
                    collections: list[str] | None, suffix: str, drop_existing: bool,
                    progress: Progress) -> RestoreReport:

    if source_env.name != target_env.name:
        raise UserError(
            "milvus-backup restores into the Milvus it backed up; restoring into another environment needs "
            "the logical engine.",
        )
    client = runtime.services.milvus_backup(source_env)
    backup = client.get(backup_id)
    chosen = [c for c in backup.collections if not collections or c in collections]
    missing = [c for c in collections or [] if c not in backup.collections]
    if missing:
        raise NotFound(f"Backup `{backup_id}` has no collection {', '.join(missing)}.",
                       hint=f"It holds {', '.join(backup.collections)}.")
    milvus = runtime.services.milvus_client(target_env)
    existing = set(_milvus_call("list collections", milvus.list_collections))
    clashes = [c + suffix for c in chosen if c + suffix in existing]
    if clashes and not drop_existing:
        raise _clashes(clashes, target_env.name)
    started = time.perf_counter()
    task = client.restore(backup_id, collections=chosen, suffix=suffix, drop_existing=drop_existing)
    client.wait_restore(task.id, timeout_s=REMOTE_TIMEOUT_S,
                        on_progress=lambda t: progress(f"milvus-backup restore {t.id}: {t.state}, {t.progress}%"))
    results = []
    for name in chosen:
        target = name + suffix
        _milvus_call(f"load {target}", milvus.load_collection, target)
        restored = _milvus_call(f"count rows of {target}", _count, milvus, target)
        results.append(CollectionResult(name, target, restored, restored, 0, [], 0.0))
    return RestoreReport(backup_id, target_env.name, results, time.perf_counter() - started, backup.size)


def _remote_delete(runtime: Runtime, env: Environment, backup_id: str) -> int:
    runtime.services.milvus_backup(env).delete(backup_id)
    _db_update(runtime, backup_id, state="deleted", finished_at=utcnow())
    return 1


# -- reporting -----------------------------------------------------------------------------------------


def ops_channel(runtime: Runtime, env: Environment) -> str | None:
    return runtime.config.channels_for(env).ops


# -- schedules -----------------------------------------------------------------------------------------


def backup_jobs(config: Config) -> Iterable[JobSpec]:
    for name, env in config.environments.items():
        if env.backup is not None and env.backup.schedule:
            yield JobSpec(job_id=f"backup:{name}", task="backup", cron=env.backup.schedule,
                          timezone=config.reports.timezone, kwargs={"env": name})


def scheduled_backup(runtime: Runtime, *, env: str, **_: Any) -> str:
    """A scheduled backup: result (size and duration, or the reason it failed) to the ops channel."""
    environment = runtime.environment(env)
    channel = ops_channel(runtime, environment)
    ref = f"backup:{env}:{utcnow():%Y%m%d%H%M%S}"
    posted = False
    if channel:
        runtime.messenger.post(channel, Message(f"Scheduled backup of {env} started."), ref=ref)
        posted = True
    last = [0.0]

    def progress(text: str) -> None:
        now = time.monotonic()
        if posted and now - last[0] >= 30:
            last[0] = now
            runtime.messenger.update(ref, Message(f":hourglass_flowing_sand: Scheduled backup of {env}: {text}"))

    started = time.perf_counter()
    try:
        try:
            cleanup_incomplete(runtime, environment)
        except Exception:
            log.exception("cleanup of incomplete backups in %s failed; backing up anyway", env)
        record = create_backup(runtime, environment, user="scheduler", trigger="schedule", progress=progress)
    except Exception as exc:
        reason = getattr(exc, "message", None) or "unexpected error; see the bot's log"
        text = f":x: Scheduled backup of {env} failed after {time.perf_counter() - started:.0f} s: {reason}"
        if posted:
            runtime.messenger.update(ref, Message(text, [bk.section(bk.escape(text))]))
        raise
    took = time.perf_counter() - started
    try:
        deleted = apply_retention(runtime, environment)
        retention = f"; retention deleted {', '.join(deleted)}" if deleted else ""
    except Exception as exc:  # the backup is good; old ones simply stay until the next run
        log.exception("retention in %s failed", env)
        retention = f"; retention could not run: {getattr(exc, 'message', None) or type(exc).__name__}"
    summary = (
        f"Backup {record.id}: {len(record.collections)} collection(s), {record.rows:,} rows, "
        f"{format_bytes(record.bytes)} in {took:.0f} s{retention}"
    )
    if posted:
        done = f":white_check_mark: {summary}"
        runtime.messenger.update(ref, Message(done, [bk.section(bk.escape(done))]))
    return summary


def sweep_incomplete(runtime: Runtime) -> None:
    for env in runtime.config.environments.values():
        if env.backup is not None and env.backup.engine == "logical":
            try:
                cleanup_incomplete(runtime, env)
            except Exception:
                log.exception("cleanup of incomplete backups in %s failed", env.name)
