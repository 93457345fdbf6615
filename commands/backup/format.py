"""The logical backup format: which columns are stored, rows <-> Arrow/Parquet, the manifest, checksums.

Object layout under the store's root (an S3 bucket + prefix, or a local directory)::

    <env>/<backup-id>/<collection>/<partition-no>/part-00000.parquet
    <env>/<backup-id>/manifest.json            (written last)

Each object is a zstd Parquet file of up to ``object_mb``; the manifest lists every object with its
row count, byte size and SHA-256, and each collection with its schema, indexes and partitions. A
backup without a manifest is incomplete and never used.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import io
import itertools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot import blocks as bk
from bot.errors import IntegrationError, NotFound, UserError
from commands.backup.records import BackupRecord, backup_dir
from integrations.s3 import ObjectMissing, ObjectStore

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT = "milvus-chatops-logical/1"
MANIFEST = "manifest.json"


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


def decode(data: bytes, cols: list[Column]) -> list[dict[str, Any]]:
    """The rows of one stored object."""
    import pyarrow.parquet as pq

    return table_to_rows(pq.read_table(io.BytesIO(data)), cols)


def row_bytes(cols: list[Column]) -> int:
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


def read_manifest(store: ObjectStore, env: str, backup_id: str) -> Manifest:
    key = f"{backup_dir(env, backup_id)}/{MANIFEST}"
    try:
        raw = store.get(key)
    except ObjectMissing:
        raise NotFound(
            f"Backup `{bk.escape(backup_id)}` has no manifest in {store.location}: it is incomplete or was deleted.",
            hint=f"`/milvus backup list {env}` shows the usable backups.",
        ) from None
    return Manifest.parse(raw, f"{store.location}/{key}")


# -- checksums ---------------------------------------------------------------------------------------


def check_bytes(obj: ObjectEntry, data: bytes) -> str | None:
    if len(data) != obj.bytes:
        return f"{obj.key}: size {len(data):,} bytes, manifest says {obj.bytes:,}"
    digest = hashlib.sha256(data).hexdigest()
    if digest != obj.sha256:
        return f"{obj.key}: SHA-256 {digest[:12]}… does not match the manifest's {obj.sha256[:12]}…"
    return None


class CorruptBackup(UserError):
    """An object of the backup does not match its manifest; nothing is restored from it."""
