"""Capacity planning for Milvus: the official sizing tool's arithmetic, and what it leaves out.

Pure: no I/O, no Slack. ``plan(PlanInput) -> Plan``; ``Plan.to_data()`` is the ``plan`` structured
data of `run --json` (its keys are part of the bot's interface).

Where the official tool (milvus.io/tools/sizing for 2.6, /tools/sizing-v250 for 2.5) models an input,
every figure here is the tool's: index memory, loading memory, query node local disk, the query node
shape and count, proxy / mixCoord / dataNode / indexNode / streamingNode tiers, standalone sizing,
the mode thresholds, and the etcd / MinIO / Pulsar / Kafka / ZooKeeper pods and volumes. The numbers
and worked cases are written down in docs/ (the sizing page); the tests pin each of them.

Where the tool is silent we go further and say so in the "show the math" lines:

- replicas (``replica_number`` R): each replica is a full in-memory copy on its own query nodes, so
  loading memory and query node local disk are multiplied by R and the query node tier is chosen on
  the total. Proxy, mixCoord, data/index nodes handle one copy of the writes and keep the tool's
  tier for one copy; streaming nodes follow the tool's rule on total query node cores.
- IVF_PQ: ``ceil(m * nbits / 8)`` bytes of codes per vector + ``nlist * d * 4`` centroids
  + ``2^nbits * d * 4`` codebook (Faiss' ProductQuantizer layout; Milvus docs for the ranges).
- BIN_FLAT / BIN_IVF_FLAT: ``d / 8`` bytes per vector (+ ``nlist * d / 8`` centroids for IVF).
- growth: the same arithmetic today and at the end of each quarter of the horizon; "stops fitting"
  is the first month whose loading memory (or local disk) exceeds what today's query nodes
  provide, or whose mode changes.
- object storage: raw binlogs + index files + one raw copy per retained backup (milvus-backup copies
  binlogs only, never index files).
- cost: 730 hours a month times cores and memory, plus disk and object storage per GiB-month.

Everything is in bytes internally and GiB (1024^3) in the output; "1M vectors" is 10^6.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bot.args import parse_bytes, parse_count
from bot.blocks import escape
from bot.config import PriceTable
from bot.errors import UsageError

__all__ = [
    "IndexType",
    "MessageQueue",
    "MonthlyCost",
    "NodeGroup",
    "Phase",
    "Plan",
    "PlanInput",
    "PlanInputError",
    "PriceTable",
    "Refine",
    "Resource",
    "parse_plan_input",
    "plan",
    "query_nodes_for",
    "scale_level_for",
    "standalone_for",
    "streaming_nodes_for",
]

GIB = 1024**3
MIB = 1024**2
MAX_DIM = 32768  # proxy.maxDimension
LOAD_FACTOR = 1.15  # the tool's overhead on loaded index + growing segments
HOURS_PER_MONTH = 730  # 365 * 24 / 12
# Milvus refuses a load that would pass this share of query node memory
# (queryCoord.overloadedMemoryThresholdPercentage = 90).
OVERLOAD_THRESHOLD = 0.90

# The tool states its thresholds in "N vectors of 768 float32 dimensions"; we compare bytes, so a
# 1536-d collection reaches each threshold with half the vectors.
_REF_ROW = 768 * 4
CLUSTER_SUGGESTED_BYTES = 10_000_000 * _REF_ROW
CLUSTER_SUGGESTED_BYTES_DISKANN = 50_000_000 * _REF_ROW
STANDALONE_MAX_BYTES = 100_000_000 * _REF_ROW
STANDALONE_MAX_BYTES_DISKANN = 500_000_000 * _REF_ROW
BEYOND_BYTES = 1_000_000_000 * _REF_ROW
DEPS_LARGE_BYTES = 100_000_000 * _REF_ROW  # cluster dependencies step up at raw >= this
STANDALONE_DEPS_BIG_BYTES = 1_000_000 * _REF_ROW  # standalone etcd/MinIO memory steps up at raw >= this

# Scale levels of the seed deployment, on total loading memory G (GiB). They follow the tool's query
# node shape breaks: one 2c/8G or 4c/16G node, several 4c/16G nodes, 8c/32G nodes, 16c+ nodes.
SCALE_LEVELS: tuple[tuple[float, str], ...] = ((16, "small"), (96, "medium"), (512, "large"))
SCALE_TOP = "extra large"


class IndexType(StrEnum):
    FLAT = "FLAT"
    IVF_FLAT = "IVF_FLAT"
    IVF_SQ8 = "IVF_SQ8"
    IVF_PQ = "IVF_PQ"
    IVF_RABITQ = "IVF_RABITQ"
    HNSW = "HNSW"
    DISKANN = "DISKANN"
    SCANN = "SCANN"
    BIN_FLAT = "BIN_FLAT"
    BIN_IVF_FLAT = "BIN_IVF_FLAT"


BINARY_INDEXES = frozenset({IndexType.BIN_FLAT, IndexType.BIN_IVF_FLAT})
IVF_INDEXES = frozenset(
    {IndexType.IVF_FLAT, IndexType.IVF_SQ8, IndexType.IVF_PQ, IndexType.IVF_RABITQ, IndexType.BIN_IVF_FLAT}
)
# What the official tool models; the rest is documented arithmetic of our own.
TOOL_INDEXES = frozenset(
    {
        IndexType.FLAT,
        IndexType.IVF_FLAT,
        IndexType.IVF_SQ8,
        IndexType.IVF_RABITQ,
        IndexType.HNSW,
        IndexType.DISKANN,
        IndexType.SCANN,
    }
)


class Refine(StrEnum):
    NONE = "none"
    SQ6 = "sq6"
    SQ8 = "sq8"
    FP16 = "fp16"
    BF16 = "bf16"
    SQ32 = "sq32"


REFINE_BITS = {Refine.NONE: 0, Refine.SQ6: 6, Refine.SQ8: 8, Refine.FP16: 16, Refine.BF16: 16, Refine.SQ32: 32}


class MessageQueue(StrEnum):
    PULSAR = "pulsar"
    KAFKA = "kafka"
    WOODPECKER = "woodpecker"


Mode = Literal["standalone", "cluster", "beyond"]


class PlanInputError(UsageError):
    """The input cannot be planned; ``problems`` lists each reason, written for the user."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        # Problems quote what the user typed; as Slack text, `<!channel>` must stay inert.
        shown = [escape(p) for p in problems]
        text = f" {shown[0]}" if len(shown) == 1 else "".join(f"\n• {p}" for p in shown)
        super().__init__(f"Cannot plan this:{text}", hint="See `/milvus help plan` for the arguments.")


def _enum_value(enum: type[StrEnum], value: Any, what: str, aliases: Mapping[str, str] | None = None) -> Any:
    if not isinstance(value, str):
        return value
    key = value.strip().replace("-", "_")
    key = key.upper() if enum is IndexType else key.lower()
    if aliases:
        key = aliases.get(key, key)
    try:
        return enum(key)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise ValueError(f"unknown {what} '{value}'; choose one of {choices}") from None


def _count(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        for unit in ("/month", "/mo", "per month"):
            text = text.removesuffix(unit).strip()
        # "-5" is a number, just not a count: the field's own range check says what it must be.
        if text.startswith("-") and text[1:].strip()[:1].isdigit():
            return -parse_count(text[1:].strip())
        return parse_count(text)
    return value


def _range(what: str, value: int | float, low: int | float, high: int | float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low:,} and {high:,} (got {value:,})")


class PlanInput(BaseModel):
    """What ``/milvus plan`` takes. Defaults are the official tool's (HNSW M 30, max_degree 56, ...).

    Validation messages are short sentences for the user: ``parse_plan_input`` turns them into a
    ``PlanInputError``. Field order matters: a validator sees only the fields declared above it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vectors: int = Field(description="number of vectors, e.g. 100M")
    dim: int = Field(description="vector dimension (2..32768; bits for binary vectors)")
    index: IndexType = Field(default=IndexType.HNSW, description="index type")
    m: int = Field(default=30, description="HNSW M (2..2048)")
    pq_m: int | None = Field(
        default=None, validate_default=True, description="IVF_PQ m, a divisor of dim (default dim/2)"
    )
    nbits: int = Field(default=8, description="IVF_PQ bits per code (1..64)")
    nlist: int = Field(default=128, description="IVF nlist (1..65536)")
    refine: Refine = Field(default=Refine.NONE, description="IVF_RABITQ refine: none, sq6, sq8, fp16, bf16, sq32")
    max_degree: int = Field(default=56, description="DISKANN max_degree (1..512)")
    with_raw_data: bool = Field(default=True, description="SCANN keeps raw vectors")
    scalar_bytes: float = Field(default=0.0, description="average bytes of scalar fields per row")
    scalars_mmap: bool = Field(default=False, description="scalar fields memory-mapped from local disk")
    replicas: int = Field(default=1, description="in-memory replicas (replica_number)")
    segment_size_mb: int = Field(default=1024, description="segment size: 512, 1024 or 2048 MB")
    milvus_version: Literal["2.5", "2.6"] = Field(default="2.6", description="Milvus 2.5 or 2.6")
    mq: MessageQueue | None = Field(
        default=None, description="message queue: woodpecker (2.6 default), pulsar (2.5 default), kafka"
    )
    growth_per_month: int = Field(default=0, description="new vectors per month, e.g. 5M")
    months: int = Field(default=0, description="planning horizon in months (0..120)")
    target_qps: float | None = Field(default=None, description="target search QPS (recorded, not modelled)")
    backup_retention_copies: int = Field(default=0, description="backups kept in object storage")
    prices: PriceTable | None = Field(default=None, description="price table for the monthly cost")

    @field_validator("vectors", "growth_per_month", mode="before")
    @classmethod
    def _counts(cls, value: Any) -> Any:
        return _count(value)

    @field_validator("scalar_bytes", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return float(value)  # an average: keep the fraction that parse_bytes would drop
        except ValueError:
            return parse_bytes(value)

    @field_validator("index", mode="before")
    @classmethod
    def _index_name(cls, value: Any) -> Any:
        return _enum_value(IndexType, value, "index")

    @field_validator("refine", mode="before")
    @classmethod
    def _refine_name(cls, value: Any) -> Any:
        if value is None:
            return Refine.NONE
        return _enum_value(Refine, value, "refine type", aliases={"fp32": "sq32"})

    @field_validator("mq", mode="before")
    @classmethod
    def _mq_name(cls, value: Any) -> Any:
        return _enum_value(MessageQueue, value, "message queue")

    @field_validator("milvus_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, int | float):
            value = f"{value:.1f}"
        if isinstance(value, str):
            parts = value.strip().lstrip("vV").split(".")
            if len(parts) >= 2 and f"{parts[0]}.{parts[1]}" in ("2.5", "2.6"):
                return f"{parts[0]}.{parts[1]}"
            raise ValueError(f"Milvus version must be 2.5 or 2.6 (got '{value}')")
        return value

    @field_validator("vectors")
    @classmethod
    def _vectors(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"vectors must be at least 1 (got {value:,})")
        if value > 10**12:
            raise ValueError(f"{value:,} vectors is past anything one Milvus database holds (limit 1T)")
        return value

    @field_validator("dim")
    @classmethod
    def _dim(cls, value: int) -> int:
        if value > MAX_DIM:
            raise ValueError(f"dimension {value:,} is above Milvus' maximum of {MAX_DIM:,}")
        if value < 2:
            raise ValueError(f"dimension must be at least 2 (got {value})")
        return value

    @field_validator("index")
    @classmethod
    def _index(cls, value: IndexType, info: ValidationInfo) -> IndexType:
        dim = info.data.get("dim")
        if value in BINARY_INDEXES and dim is not None and dim % 8:
            raise ValueError(f"{value.value} needs binary vectors whose dimension is a multiple of 8 (got {dim})")
        return value

    @field_validator("m")
    @classmethod
    def _hnsw_m(cls, value: int) -> int:
        _range("HNSW M", value, 2, 2048)
        return value

    @field_validator("pq_m")
    @classmethod
    def _pq_m(cls, value: int | None, info: ValidationInfo) -> int | None:
        dim, index = info.data.get("dim"), info.data.get("index")
        if index is not IndexType.IVF_PQ or dim is None:
            return value
        if value is None:
            if dim % 2:
                raise ValueError(f"IVF_PQ needs --pq-m, a divisor of the dimension {dim}")
            return dim // 2  # the Milvus docs' recommended default, m = D/2
        _range("IVF_PQ m", value, 1, 65536)
        if dim % value:
            raise ValueError(f"IVF_PQ m must divide the dimension: {dim} is not a multiple of {value}")
        return value

    @field_validator("nbits")
    @classmethod
    def _nbits(cls, value: int) -> int:
        _range("IVF_PQ nbits", value, 1, 64)
        return value

    @field_validator("nlist")
    @classmethod
    def _nlist(cls, value: int) -> int:
        _range("nlist", value, 1, 65536)
        return value

    @field_validator("max_degree")
    @classmethod
    def _max_degree(cls, value: int) -> int:
        _range("DISKANN max_degree", value, 1, 512)
        return value

    @field_validator("scalar_bytes")
    @classmethod
    def _scalar_bytes(cls, value: float) -> float:
        _range("scalar bytes per row", value, 0, 64 * MIB)
        return value

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: int) -> int:
        _range("replicas", value, 1, 64)
        return value

    @field_validator("segment_size_mb")
    @classmethod
    def _segment(cls, value: int) -> int:
        if value not in (512, 1024, 2048):
            raise ValueError(f"segment size must be 512, 1024 or 2048 MB (got {value})")
        return value

    @field_validator("milvus_version", mode="after")
    @classmethod
    def _version_supports_index(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("index") is IndexType.IVF_RABITQ and value != "2.6":
            raise ValueError(f"IVF_RABITQ needs Milvus 2.6 (got {value})")
        return value

    @field_validator("mq", mode="after")
    @classmethod
    def _mq_version(cls, value: MessageQueue | None, info: ValidationInfo) -> MessageQueue | None:
        if value is MessageQueue.WOODPECKER and info.data.get("milvus_version") == "2.5":
            raise ValueError("woodpecker needs Milvus 2.6; on 2.5 choose pulsar or kafka")
        return value

    @field_validator("growth_per_month")
    @classmethod
    def _growth(cls, value: int) -> int:
        _range("growth per month", value, 0, 10**12)
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, value: int) -> int:
        _range("months", value, 0, 120)
        return value

    @field_validator("target_qps")
    @classmethod
    def _qps(cls, value: float | None) -> float | None:
        if value is not None:
            _range("target QPS", value, 0, 10**7)
        return value

    @field_validator("backup_retention_copies")
    @classmethod
    def _backups(cls, value: int) -> int:
        _range("backup retention copies", value, 0, 1000)
        return value

    @property
    def is_binary(self) -> bool:
        return self.index in BINARY_INDEXES

    @property
    def row_bytes(self) -> float:
        """Bytes of one raw vector: float32 for float indexes, one bit per dimension for binary."""
        return self.dim / 8 if self.is_binary else self.dim * 4


_LABELS = {
    "vectors": "vectors",
    "dim": "dimension",
    "index": "index",
    "m": "HNSW M",
    "pq_m": "IVF_PQ m",
    "nbits": "nbits",
    "nlist": "nlist",
    "refine": "refine",
    "max_degree": "DISKANN max_degree",
    "with_raw_data": "with_raw_data",
    "scalar_bytes": "scalar bytes per row",
    "scalars_mmap": "scalars_mmap",
    "replicas": "replicas",
    "segment_size_mb": "segment size",
    "milvus_version": "Milvus version",
    "mq": "message queue",
    "growth_per_month": "growth per month",
    "months": "months",
    "target_qps": "target QPS",
    "backup_retention_copies": "backup retention copies",
    "prices": "prices",
}


def _friendly(err: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    label = " ".join(_LABELS.get(p, p) for p in loc) or "input"
    kind, msg = err["type"], str(err["msg"])
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "missing":
        return f"{label} is required"
    if kind == "extra_forbidden":
        return f"unknown option '{loc[-1] if loc else ''}'"
    if kind.startswith("int_"):
        return f"{label} must be a whole number (got {err.get('input')!r})"
    if kind.startswith("float_"):
        return f"{label} must be a number (got {err.get('input')!r})"
    if kind.startswith("bool_"):
        return f"{label} must be true or false (got {err.get('input')!r})"
    if kind == "literal_error":
        return f"{label} {msg.removeprefix('Input ')} (got {err.get('input')!r})"
    return f"{label}: {msg}"


def parse_plan_input(data: Mapping[str, Any]) -> PlanInput:
    """Validate raw fields (strings like ``"100M"`` welcome) into a ``PlanInput``.

    Raises ``PlanInputError`` (a ``UsageError``) whose ``problems`` are user-readable sentences.
    """
    try:
        return PlanInput.model_validate(dict(data))
    except ValidationError as exc:
        raise PlanInputError([_friendly(e) for e in exc.errors()]) from None


# --------------------------------------------------------------------------------------------------
# Output model


def _cpu_quantity(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def _memory_quantity(gib: float) -> str:
    return f"{int(gib)}Gi" if float(gib).is_integer() else f"{math.ceil(gib * 1024)}Mi"


@dataclass(frozen=True)
class Resource:
    """One pod kind: ``replicas`` pods of ``cpu`` cores and ``memory_gib`` each, ``volume_gib`` per pod.

    Requests equal limits: loaded segments cannot be reclaimed, so a memory limit above the request
    only lets the scheduler overcommit memory a query node will really hold (then OOM-kill it).
    """

    name: str
    replicas: int
    cpu: float
    memory_gib: float
    volume_gib: float = 0.0
    # Pods with several volumes (Pulsar bookies: journal + ledgers); volume_gib is their sum.
    volumes: tuple[tuple[str, float], ...] = ()
    # JVM pods (Pulsar, Kafka, ZooKeeper) get no limits: the chart's heap flags (bookies and brokers
    # -Xmx4g plus 8g direct memory) exceed the tool's figures, and a limit would OOM-kill them.
    jvm: bool = False

    @property
    def requests(self) -> dict[str, str]:
        return {"cpu": _cpu_quantity(self.cpu), "memory": _memory_quantity(self.memory_gib)}

    @property
    def limits(self) -> dict[str, str]:
        return {} if self.jvm else self.requests

    @property
    def total_cpu(self) -> float:
        return self.replicas * self.cpu

    @property
    def total_memory_gib(self) -> float:
        return self.replicas * self.memory_gib

    @property
    def total_volume_gib(self) -> float:
        return self.replicas * self.volume_gib

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "replicas": self.replicas,
            "cpu": self.cpu,
            "memory_gib": self.memory_gib,
            "volume_gib": round(self.volume_gib, 2),
            "requests": self.requests,
            "limits": self.limits,
        }
        if self.volumes:
            data["volumes"] = {name: round(size, 2) for name, size in self.volumes}
        return data


@dataclass(frozen=True)
class NodeGroup:
    """Query nodes: ``count`` pods of ``cpu`` cores / ``memory_gib``; ``local_disk_gib`` per pod."""

    count: int
    cpu: float
    memory_gib: float
    local_disk_gib: float = 0.0

    @property
    def total_memory_gib(self) -> float:
        return self.count * self.memory_gib

    @property
    def total_cpu(self) -> float:
        return self.count * self.cpu


@dataclass(frozen=True)
class MonthlyCost:
    currency: str
    cpu: float
    memory: float
    disk: float
    object_storage: float
    formulas: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return self.cpu + self.memory + self.disk + self.object_storage

    def to_data(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "cpu": round(self.cpu, 2),
            "memory": round(self.memory, 2),
            "disk": round(self.disk, 2),
            "object_storage": round(self.object_storage, 2),
            "total": round(self.total, 2),
        }


@dataclass(frozen=True)
class Phase:
    """The deployment a month of the horizon needs; ``fits_today`` is whether today's still holds it."""

    month: int
    vectors: int
    mode: Mode
    raw_data_gib: float
    loading_memory_gib: float
    local_disk_gib: float
    object_storage_gib: float
    query_nodes: NodeGroup
    total_cpu: float
    total_memory_gib: float
    fits_today: bool
    monthly_cost: MonthlyCost | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "vectors": self.vectors,
            "mode": self.mode,
            "raw_data_gib": round(self.raw_data_gib, 2),
            "loading_memory_gib": round(self.loading_memory_gib, 2),
            "local_disk_gib": round(self.local_disk_gib, 2),
            "object_storage_gib": round(self.object_storage_gib, 2),
            "query_nodes": _node_data(self.query_nodes),
            "total_cpu": self.total_cpu,
            "total_memory_gib": self.total_memory_gib,
            "fits_today": self.fits_today,
            "monthly_cost": self.monthly_cost.to_data() if self.monthly_cost else None,
        }


def _node_data(group: NodeGroup) -> dict[str, Any]:
    return {
        "count": group.count,
        "cpu": group.cpu,
        "memory_gib": group.memory_gib,
        "local_disk_gib": round(group.local_disk_gib, 2),
    }


@dataclass(frozen=True)
class Plan:
    """A capacity plan. GiB figures are unrounded; ``to_data`` rounds to 2 decimals."""

    input: PlanInput
    mode: Mode
    scale: str
    message_queue: str  # effective: pulsar, kafka, woodpecker or rocksmq (2.5 standalone)
    vector_data_gib: float
    raw_data_gib: float
    index_memory_gib: float
    loading_memory_per_replica_gib: float
    loading_memory_gib: float
    local_disk_gib: float
    object_storage_gib: float
    query_nodes: NodeGroup
    components: tuple[Resource, ...]
    dependencies: tuple[Resource, ...]
    phases: tuple[Phase, ...]
    stops_fitting_month: int | None
    monthly_cost: MonthlyCost | None
    risks: tuple[str, ...]
    notes: tuple[str, ...]
    math: tuple[tuple[str, str], ...] = field(default=())

    @property
    def milvus_cpu(self) -> float:
        return sum(c.total_cpu for c in self.components)

    @property
    def milvus_memory_gib(self) -> float:
        return sum(c.total_memory_gib for c in self.components)

    @property
    def dependencies_cpu(self) -> float:
        return sum(d.total_cpu for d in self.dependencies)

    @property
    def dependencies_memory_gib(self) -> float:
        return sum(d.total_memory_gib for d in self.dependencies)

    @property
    def volumes_gib(self) -> float:
        return sum(r.total_volume_gib for r in (*self.components, *self.dependencies))

    def component(self, name: str) -> Resource | None:
        return next((c for c in (*self.components, *self.dependencies) if c.name == name), None)

    def to_data(self) -> dict[str, Any]:
        """The ``plan`` data of `run --json` (the keys others rely on first, then additions)."""
        return {
            "mode": self.mode,
            "raw_data_gib": round(self.raw_data_gib, 2),
            "index_memory_gib": round(self.index_memory_gib, 2),
            "loading_memory_gib": round(self.loading_memory_gib, 2),
            "local_disk_gib": round(self.local_disk_gib, 2),
            "query_nodes": _node_data(self.query_nodes),
            "components": [c.to_data() for c in self.components],
            "dependencies": [d.to_data() for d in self.dependencies],
            "scale": self.scale,
            "milvus_version": self.input.milvus_version,
            "index": self.input.index.value,
            "replicas": self.input.replicas,
            "message_queue": self.message_queue,
            "vector_data_gib": round(self.vector_data_gib, 2),
            "loading_memory_per_replica_gib": round(self.loading_memory_per_replica_gib, 2),
            "object_storage_gib": round(self.object_storage_gib, 2),
            "totals": {
                "milvus_cpu": self.milvus_cpu,
                "milvus_memory_gib": self.milvus_memory_gib,
                "dependencies_cpu": self.dependencies_cpu,
                "dependencies_memory_gib": self.dependencies_memory_gib,
                "volumes_gib": round(self.volumes_gib, 2),
            },
            "phases": [p.to_data() for p in self.phases],
            "stops_fitting_month": self.stops_fitting_month,
            "monthly_cost": self.monthly_cost.to_data() if self.monthly_cost else None,
            "risks": list(self.risks),
            "notes": list(self.notes),
            "math": [{"figure": f, "formula": m} for f, m in self.math],
        }


# --------------------------------------------------------------------------------------------------
# The tool's tables


@dataclass(frozen=True)
class _Tier:
    """One row of the tool's table, for loading memory G in [previous upper, upper) GiB."""

    upper: float
    query_node: tuple[float, float]  # cores, GiB
    query_node_count: int | None  # None: ceil(G / node memory)
    proxy: tuple[float, float]
    mixcoord: tuple[float, float]
    datanode_26: tuple[float, float, int]  # cores, GiB, count
    datanode_25: tuple[float, float, int]
    indexnode_25: tuple[float, float, int]


_INF = math.inf
_TIERS: tuple[_Tier, ...] = (
    _Tier(8, (2, 8), 1, (1, 4), (1, 4), (2, 8, 1), (2, 8, 1), (2, 8, 1)),
    _Tier(16, (4, 16), 1, (2, 8), (2, 8), (4, 16, 1), (2, 8, 1), (4, 16, 1)),
    _Tier(32, (4, 16), 2, (2, 8), (2, 8), (4, 16, 2), (2, 8, 1), (4, 16, 2)),
    _Tier(48, (4, 16), 3, (2, 8), (2, 8), (4, 16, 2), (2, 8, 1), (4, 16, 2)),
    _Tier(64, (4, 16), 4, (2, 8), (2, 8), (4, 16, 2), (2, 8, 1), (4, 16, 2)),
    _Tier(80, (4, 16), 5, (2, 8), (2, 8), (4, 16, 4), (2, 8, 1), (4, 16, 4)),
    _Tier(96, (4, 16), 6, (2, 8), (2, 8), (4, 16, 4), (2, 8, 1), (4, 16, 4)),
    _Tier(512, (8, 32), None, (8, 32), (8, 32), (8, 16, 8), (8, 32, 1), (8, 16, 8)),
    _Tier(2048, (16, 64), None, (8, 32), (8, 32), (8, 16, 8), (8, 32, 1), (8, 16, 8)),
    _Tier(_INF, (32, 128), None, (8, 32), (8, 32), (8, 16, 8), (8, 32, 1), (8, 16, 8)),
)


_UPPERS = tuple(t.upper for t in _TIERS)


def _tier(g_gib: float) -> _Tier:
    # Lower bound inclusive, upper exclusive: G = 8.0 is in the 8-16 row (bisect_right puts it there).
    return _TIERS[bisect_right(_UPPERS, g_gib)]


def _tier_range(g_gib: float) -> str:
    index = bisect_right(_UPPERS, g_gib)
    low = 0 if index == 0 else _TIERS[index - 1].upper
    high = _TIERS[index].upper
    return f"[{low:g}, {high:g})" if high != _INF else f"[{low:g}, ∞)"


def query_nodes_for(g_gib: float) -> NodeGroup:
    """The tool's query node shape and count for loading memory G (GiB)."""
    tier = _tier(g_gib)
    cpu, mem = tier.query_node
    count = tier.query_node_count or max(1, math.ceil(g_gib / mem))
    return NodeGroup(count=count, cpu=cpu, memory_gib=mem)


def standalone_for(g_gib: float) -> tuple[float, float]:
    """The tool's standalone pod (cores, GiB): 8 GiB up to G = 8, 16 up to 16, then 32 GiB steps."""
    if g_gib <= 8:
        mem = 8.0
    elif g_gib <= 16:
        mem = 16.0
    else:
        mem = math.ceil(g_gib / 32) * 32.0
    return mem / 4, mem


def streaming_nodes_for(query_node_cores: float) -> tuple[float, float, int]:
    """The tool's streaming nodes (2.6) as (cores, GiB, count), from c = ceil(query node cores / 16)."""
    c = math.ceil(query_node_cores / 16)
    if c <= 1:
        return 2, 8, 1
    if c == 2:
        return 4, 16, 1
    if c <= 4:
        return 4, 16, 2
    if c <= 8:
        return 8, 32, 2
    return 8, 32, math.ceil(2 * c / 8)


def scale_level_for(g_gib: float) -> str:
    """small < 16 GiB <= medium < 96 GiB <= large < 512 GiB <= extra large (total loading memory)."""
    return next((name for upper, name in SCALE_LEVELS if g_gib < upper), SCALE_TOP)


# --------------------------------------------------------------------------------------------------
# Arithmetic


def _gib(n_bytes: float) -> float:
    return n_bytes / GIB


def _n(value: float) -> str:
    """A figure as the math lines show it: 1 decimal, thousands separators."""
    return f"{value:,.1f}"


@dataclass(frozen=True)
class _Figures:
    """Everything that depends on the vector count; computed for today and each month of growth.

    Numbers only: the formulas are built once, for today (``_index_formula``, ``_mode_reason``),
    because growth recomputes these figures for many months.
    """

    vectors: int
    vector_bytes: float
    scalar_total_bytes: float
    raw_bytes: float
    index_bytes: float
    scalar_memory_bytes: float
    loading_per_replica_gib: float
    loading_gib: float
    local_disk_per_replica_gib: float
    local_disk_gib: float
    index_file_bytes: float
    object_bytes: float
    mode: Mode


def _index_bytes(inp: PlanInput, n: int, v: float) -> float:
    """Index memory in bytes (V = raw vector bytes); ``_index_formula`` says the same in words."""
    idx = inp.index
    centroids = inp.nlist * inp.row_bytes
    if idx is IndexType.FLAT or idx is IndexType.BIN_FLAT:
        return v
    if idx is IndexType.IVF_FLAT or idx is IndexType.BIN_IVF_FLAT:
        return v + centroids
    if idx is IndexType.IVF_SQ8:
        return v / 4 + centroids
    if idx is IndexType.IVF_RABITQ:
        return v * (1 / 32 + REFINE_BITS[inp.refine] / 32) + centroids
    if idx is IndexType.SCANN:
        return 9 * v / 8 if inp.with_raw_data else v / 8
    if idx is IndexType.HNSW:
        return (1 + 2 * inp.m / inp.dim) * v
    if idx is IndexType.DISKANN:
        return v / 4
    # IVF_PQ (Faiss layout): codes + coarse centroids + 2^nbits codewords over the full dimension
    d = inp.dim
    code = math.ceil((inp.pq_m or d // 2) * inp.nbits / 8)
    return n * code + inp.nlist * d * 4 + (2**inp.nbits) * d * 4


def _index_formula(inp: PlanInput, n: int, v: float) -> str:
    d, nlist, row = inp.dim, inp.nlist, inp.row_bytes
    vg, cg = _n(_gib(v)), f"{nlist} x {row:g} B"
    idx = inp.index
    if idx is IndexType.FLAT:
        return f"V = {vg} GiB"
    if idx is IndexType.IVF_FLAT:
        return f"V + nlist x row = {vg} GiB + {cg}"
    if idx is IndexType.IVF_SQ8:
        return f"V/4 + nlist x row = {vg}/4 GiB + {cg}"
    if idx is IndexType.IVF_RABITQ:
        bits = REFINE_BITS[inp.refine]
        return (
            f"V x (1/32 + {bits}/32) + nlist x row = {vg} x {(1 + bits) / 32:g} GiB + {cg} (refine {inp.refine.value})"
        )
    if idx is IndexType.SCANN:
        if inp.with_raw_data:
            return f"9V/8 (with raw data) = 9 x {vg}/8 GiB"
        return f"V/8 (without raw data) = {vg}/8 GiB"
    if idx is IndexType.HNSW:
        return f"(1 + 2M/d) x V = (1 + {2 * inp.m}/{d}) x {vg} GiB"
    if idx is IndexType.DISKANN:
        return f"V/4 (PQ codes and cache in memory) = {vg}/4 GiB"
    if idx is IndexType.IVF_PQ:
        code = math.ceil((inp.pq_m or d // 2) * inp.nbits / 8)
        return (
            f"N x ceil(m x nbits / 8) + nlist x d x 4 + 2^nbits x d x 4 = {n:,} x {code} B"
            f" + {nlist} x {d} x 4 B + {2**inp.nbits:,} x {d} x 4 B (Faiss PQ layout; not in the tool)"
        )
    if idx is IndexType.BIN_FLAT:
        return f"N x d/8 = {n:,} x {d}/8 B (binary; not in the tool)"
    return f"N x d/8 + nlist x d/8 = {vg} GiB + {cg} (binary; not in the tool)"


def _mode_limits(inp: PlanInput) -> tuple[float, float, str, str]:
    """(cluster suggested above, standalone ruled out above) in bytes, and their labels."""
    if inp.index is IndexType.DISKANN:
        return CLUSTER_SUGGESTED_BYTES_DISKANN, STANDALONE_MAX_BYTES_DISKANN, "50M", "500M"
    return CLUSTER_SUGGESTED_BYTES, STANDALONE_MAX_BYTES, "10M", "100M"


def _mode(inp: PlanInput, vector_bytes: float) -> Mode:
    suggested = _mode_limits(inp)[0]
    if vector_bytes > BEYOND_BYTES:
        return "beyond"
    if vector_bytes > suggested or inp.replicas > 1:
        return "cluster"
    return "standalone"


def _mode_reason(inp: PlanInput, vector_bytes: float) -> str:
    suggested, ruled_out, suggested_n, ruled_out_n = _mode_limits(inp)
    size = f"{_n(_gib(vector_bytes))} GiB of raw vectors"
    if vector_bytes > BEYOND_BYTES:
        return f"{size} > 1B x 768d ({_n(_gib(BEYOND_BYTES))} GiB): past one cluster"
    if vector_bytes > ruled_out:
        return f"{size} > {ruled_out_n} x 768d ({_n(_gib(ruled_out))} GiB): standalone is ruled out"
    if vector_bytes > suggested:
        return f"{size} > {suggested_n} x 768d ({_n(_gib(suggested))} GiB): cluster suggested"
    if inp.replicas > 1:
        return f"{inp.replicas} replicas need one query node each: standalone has one"
    return f"{size} <= {suggested_n} x 768d ({_n(_gib(suggested))} GiB): standalone"


def _figures(inp: PlanInput, vectors: int) -> _Figures:
    r = inp.replicas
    v = vectors * inp.row_bytes
    scalars = vectors * inp.scalar_bytes
    index_bytes = _index_bytes(inp, vectors, v)
    scalar_mem = scalars / 10 if inp.scalars_mmap else scalars
    scalar_disk = scalars if inp.scalars_mmap else 0.0
    segment_gib = inp.segment_size_mb / 1024
    if inp.index is IndexType.DISKANN:
        loading = _gib(index_bytes) * LOAD_FACTOR + _gib(scalar_mem)
        disk_index = (1 + inp.max_degree / inp.dim) * v
        local_disk = _gib(disk_index + scalar_disk)
        # Uploaded index files: the Vamana graph with full vectors, plus PQ codes
        # (DiskIndex.PQCodeBudgetGBRatio = 0.125 of raw vectors).
        index_files = disk_index + v / 8
    else:
        loading = (_gib(index_bytes) + 2 * segment_gib) * LOAD_FACTOR + _gib(scalar_mem)
        local_disk = _gib(scalar_disk)
        index_files = index_bytes
    raw = v + scalars
    objects = raw + index_files + inp.backup_retention_copies * raw
    return _Figures(
        vectors=vectors,
        vector_bytes=v,
        scalar_total_bytes=scalars,
        raw_bytes=raw,
        index_bytes=index_bytes,
        scalar_memory_bytes=scalar_mem,
        loading_per_replica_gib=loading,
        loading_gib=loading * r,
        local_disk_per_replica_gib=local_disk,
        local_disk_gib=local_disk * r,
        index_file_bytes=index_files,
        object_bytes=objects,
        mode=_mode(inp, v),
    )


def _effective_mq(inp: PlanInput, mode: Mode) -> str:
    if mode == "standalone" and inp.mq is None:
        return "woodpecker" if inp.milvus_version == "2.6" else "rocksmq"
    if inp.mq is not None:
        return inp.mq.value
    return "woodpecker" if inp.milvus_version == "2.6" else "pulsar"


@dataclass(frozen=True)
class _Deployment:
    query_nodes: NodeGroup
    components: tuple[Resource, ...]
    dependencies: tuple[Resource, ...]
    message_queue: str
    math: tuple[tuple[str, str], ...]


def _deployment(inp: PlanInput, fig: _Figures, explain: bool = False) -> _Deployment:
    g1, g = fig.loading_per_replica_gib, fig.loading_gib
    lines: list[tuple[str, str]] = []
    mq = _effective_mq(inp, fig.mode)
    components: list[Resource] = []
    if fig.mode == "standalone":
        cpu, mem = standalone_for(g)
        disk = math.ceil(fig.local_disk_gib)
        qn = NodeGroup(count=1, cpu=cpu, memory_gib=mem, local_disk_gib=disk)
        # 50 GiB is the chart's default volume (WAL, metadata); local disk data comes on top.
        components.append(Resource("standalone", 1, cpu, mem, volume_gib=50 + disk))
        if explain:
            rule = "8 GiB if G <= 8" if g <= 8 else "16 GiB if G <= 16" if g <= 16 else "ceil(G/32) x 32 GiB"
            lines.append(("standalone", f"G = {_n(g)} GiB → {rule} = {mem:g} GiB, cores = memory/4 = {cpu:g}"))
    else:
        base = query_nodes_for(g)
        per_node_disk = math.ceil(fig.local_disk_gib / base.count) if fig.local_disk_gib else 0
        qn = NodeGroup(base.count, base.cpu, base.memory_gib, per_node_disk)
        if explain:
            count_rule = (
                f"ceil({_n(g)}/{base.memory_gib:g}) = {base.count}"
                if _tier(g).query_node_count is None
                else f"{base.count}"
            )
            lines.append(
                (
                    "query nodes",
                    f"G = {_n(g)} GiB in {_tier_range(g)} → {base.cpu:g}c/{base.memory_gib:g}G x {count_rule}",
                )
            )
        one = _tier(g1)
        components.append(Resource("proxy", 1, one.proxy[0], one.proxy[1]))
        components.append(Resource("mixCoord", 1, one.mixcoord[0], one.mixcoord[1]))
        components.append(Resource("queryNode", qn.count, qn.cpu, qn.memory_gib, volume_gib=per_node_disk))
        if inp.milvus_version == "2.6":
            dn_cpu, dn_mem, dn_count = one.datanode_26
            components.append(Resource("dataNode", dn_count, dn_cpu, dn_mem))
            sn_cpu, sn_mem, sn_count = streaming_nodes_for(qn.total_cpu)
            components.append(Resource("streamingNode", sn_count, sn_cpu, sn_mem))
            if explain:
                lines.append(
                    (
                        "streaming nodes",
                        f"c = ceil({qn.total_cpu:g} query node cores / 16) = {math.ceil(qn.total_cpu / 16)}"
                        f" → {sn_cpu:g}c/{sn_mem:g}G x {sn_count}",
                    )
                )
        else:
            dn_cpu, dn_mem, dn_count = one.datanode_25
            components.append(Resource("dataNode", dn_count, dn_cpu, dn_mem))
            in_cpu, in_mem, in_count = one.indexnode_25
            components.append(Resource("indexNode", in_count, in_cpu, in_mem))
        if explain:
            lines.append(
                (
                    "proxy, mixCoord, data/index nodes",
                    f"tool tier for one copy's G = {_n(g1)} GiB in {_tier_range(g1)} (Milvus {inp.milvus_version})",
                )
            )
    deps, dep_lines = _dependencies(inp, fig, mq, explain)
    return _Deployment(qn, tuple(components), deps, mq, tuple(lines + dep_lines))


def _dependencies(
    inp: PlanInput, fig: _Figures, mq: str, explain: bool
) -> tuple[tuple[Resource, ...], list[tuple[str, str]]]:
    raw_gib = _gib(fig.raw_bytes)
    raw_ceil = math.ceil(raw_gib)
    minio_volume = max(math.ceil(raw_gib + fig.loading_per_replica_gib), 30)
    lines: list[tuple[str, str]] = []
    deps: list[Resource] = []
    if fig.mode == "standalone":
        big = fig.raw_bytes >= STANDALONE_DEPS_BIG_BYTES
        deps.append(Resource("etcd", 1, 0.5, 2 if big else 1, volume_gib=10))
        deps.append(Resource("minio", 1, 1, 8 if big else 4, volume_gib=minio_volume))
        large = False
    else:
        large = fig.raw_bytes >= DEPS_LARGE_BYTES
        deps.append(Resource("etcd", 3, 1, 8 if large else 4, volume_gib=50 if large else 20))
        deps.append(Resource("minio", 4, 1, 8, volume_gib=minio_volume))
    zk_mem, zk_vol = (4, 50) if large else (2, 30)
    ledgers = max(raw_ceil, 20)
    if mq == "pulsar":
        journal = min(raw_ceil * 0.5, 50)
        bookie_cpu, bookie_mem = (2, 16) if large else (1, 8)
        deps.append(
            Resource(
                "pulsar-bookie",
                3,
                bookie_cpu,
                bookie_mem,
                volume_gib=ledgers + journal,
                volumes=(("journal", journal), ("ledgers", ledgers)),
                jvm=True,
            )
        )
        broker_cpu, broker_mem = (2, 8) if large else (1, 4)
        proxy_cpu, proxy_mem = (1, 4) if large else (0.5, 4)
        deps.append(Resource("pulsar-broker", 2, broker_cpu, broker_mem, jvm=True))
        deps.append(Resource("pulsar-proxy", 2, proxy_cpu, proxy_mem, jvm=True))
        deps.append(Resource("pulsar-zookeeper", 3, 0.5, zk_mem, volume_gib=zk_vol, jvm=True))
    elif mq == "kafka":
        kafka_cpu, kafka_mem = (4, 16) if large else (2, 8)
        deps.append(Resource("kafka", 3, kafka_cpu, kafka_mem, volume_gib=ledgers, jvm=True))
        deps.append(Resource("kafka-zookeeper", 3, 0.5, zk_mem, volume_gib=zk_vol, jvm=True))
    if explain:
        g1 = _n(fig.loading_per_replica_gib)
        lines.append(
            (
                "MinIO volume per pod",
                f"max(ceil(raw + G), 30) = max(ceil({_n(raw_gib)} + {g1}), 30) = {minio_volume} GiB",
            )
        )
        if mq == "pulsar":
            lines.append(
                (
                    "Pulsar bookie volumes",
                    f"ledgers = max(ceil(raw), 20) = {ledgers} GiB;"
                    f" journal = min(ceil(raw) x 0.5, 50) = {min(raw_ceil * 0.5, 50):g} GiB",
                )
            )
        elif mq == "kafka":
            lines.append(("Kafka broker volume", f"max(ceil(raw), 20) = {ledgers} GiB"))
        if fig.mode != "standalone":
            tier = ">=" if large else "<"
            lines.append(
                ("dependency tier", f"raw {_n(raw_gib)} GiB {tier} 100M x 768d ({_n(_gib(DEPS_LARGE_BYTES))} GiB)")
            )
    return tuple(deps), lines


def _cost(
    prices: PriceTable, components: tuple[Resource, ...], deps: tuple[Resource, ...], object_gib: float
) -> MonthlyCost:
    pods = (*components, *deps)
    cores = sum(p.total_cpu for p in pods)
    memory = sum(p.total_memory_gib for p in pods)
    # MinIO is the object store: priced by the data it holds (object storage), not again as disk.
    disk = sum(p.total_volume_gib for p in pods if p.name != "minio")
    cpu_cost = cores * prices.core_hour * HOURS_PER_MONTH
    mem_cost = memory * prices.gib_hour * HOURS_PER_MONTH
    disk_cost = disk * prices.disk_gib_month
    obj_cost = object_gib * prices.object_gib_month
    formulas = (
        f"cpu: {cores:g} cores x {prices.core_hour:g}/core-hour x {HOURS_PER_MONTH} h = {cpu_cost:,.2f}",
        f"memory: {memory:g} GiB x {prices.gib_hour:g}/GiB-hour x {HOURS_PER_MONTH} h = {mem_cost:,.2f}",
        f"disk: {disk:,.1f} GiB x {prices.disk_gib_month:g}/GiB-month = {disk_cost:,.2f}",
        f"object storage: {object_gib:,.1f} GiB x {prices.object_gib_month:g}/GiB-month = {obj_cost:,.2f}",
    )
    return MonthlyCost(prices.currency, cpu_cost, mem_cost, disk_cost, obj_cost, formulas)


def _phase_months(months: int) -> list[int]:
    """Today and the end of each quarter of the horizon: 12 months -> 0, 3, 6, 9, 12; 7 -> 0, 2, 4, 6, 7.

    Quarters of the horizon (not every 3 months) keep a reply at five rows for any horizon; the
    month the plan stops fitting is found exactly and reported on its own.
    """
    return sorted({0, *(math.ceil(months * k / 4) for k in range(1, 5))}) if months else [0]


def _fits(today: _Figures, today_qn: NodeGroup, later: _Figures) -> bool:
    if later.mode != today.mode:
        return False
    if later.loading_gib > today_qn.total_memory_gib:
        return False
    return later.local_disk_gib <= max(today_qn.local_disk_gib * today_qn.count, today.local_disk_gib)


def plan(inp: PlanInput) -> Plan:
    """Size a Milvus deployment for ``inp``; see the module docstring for where each figure comes from."""
    fig = _figures(inp, inp.vectors)
    dep = _deployment(inp, fig, explain=True)
    mode_reason = _mode_reason(inp, fig.vector_bytes)
    qn = dep.query_nodes
    math_lines: list[tuple[str, str]] = []
    r = inp.replicas
    segment_gib = inp.segment_size_mb / 1024
    row = f"{inp.dim}/8" if inp.is_binary else f"{inp.dim} x 4"
    math_lines.append(("raw vectors V", f"{inp.vectors:,} x {row} B = {_n(_gib(fig.vector_bytes))} GiB"))
    if inp.scalar_bytes:
        math_lines.append(
            (
                "scalars",
                f"{inp.vectors:,} x {inp.scalar_bytes:g} B = {_n(_gib(fig.scalar_total_bytes))} GiB"
                + (" (mmap: 1/10 in memory, all on local disk)" if inp.scalars_mmap else ""),
            )
        )
    math_lines.append(("raw data", f"V + scalars = {_n(_gib(fig.raw_bytes))} GiB"))
    math_lines.append(
        (
            f"index memory ({inp.index.value})",
            f"{_index_formula(inp, inp.vectors, fig.vector_bytes)} = {_n(_gib(fig.index_bytes))} GiB",
        )
    )
    scalar_mem = _n(_gib(fig.scalar_memory_bytes))
    if inp.index is IndexType.DISKANN:
        math_lines.append(
            (
                "loading memory (one copy)",
                f"index x 1.15 + scalars = {_n(_gib(fig.index_bytes))} x 1.15 + {scalar_mem}"
                f" = {_n(fig.loading_per_replica_gib)} GiB",
            )
        )
        math_lines.append(
            (
                "local disk (one copy)",
                f"(1 + max_degree/d) x V = (1 + {inp.max_degree}/{inp.dim}) x {_n(_gib(fig.vector_bytes))}"
                f" = {_n(fig.local_disk_per_replica_gib)} GiB",
            )
        )
    else:
        math_lines.append(
            (
                "loading memory (one copy)",
                f"(index + 2 x segment) x 1.15 + scalars = ({_n(_gib(fig.index_bytes))} + 2 x {segment_gib:g})"
                f" x 1.15 + {scalar_mem} = {_n(fig.loading_per_replica_gib)} GiB",
            )
        )
    if r > 1:
        math_lines.append(
            (
                "loading memory (all replicas)",
                f"{_n(fig.loading_per_replica_gib)} x {r} replicas = {_n(fig.loading_gib)} GiB"
                " (each replica is a full copy; not in the tool)",
            )
        )
        if fig.local_disk_gib:
            math_lines.append(
                (
                    "local disk (all replicas)",
                    f"{_n(fig.local_disk_per_replica_gib)} x {r} = {_n(fig.local_disk_gib)} GiB",
                )
            )
    math_lines.append(("mode", mode_reason))
    math_lines.extend(dep.math)
    object_gib = _gib(fig.object_bytes)
    math_lines.append(
        (
            "object storage",
            f"raw + index files + {inp.backup_retention_copies} backups x raw = {_n(_gib(fig.raw_bytes))}"
            f" + {_n(_gib(fig.index_file_bytes))} + {inp.backup_retention_copies} x {_n(_gib(fig.raw_bytes))}"
            f" = {_n(object_gib)} GiB",
        )
    )
    # The 1.15 factor is the tool's headroom: what stays resident is G / 1.15. With the tool's tiers
    # that is at most 87% of query node memory, under the 90% at which Milvus refuses a load.
    resident = fig.loading_gib / LOAD_FACTOR
    math_lines.append(
        (
            "headroom",
            f"resident = G / 1.15 = {_n(resident)} GiB = {resident / qn.total_memory_gib:.0%} of"
            f" {_n(qn.total_memory_gib)} GiB query node memory (Milvus refuses loads above"
            f" {OVERLOAD_THRESHOLD:.0%})",
        )
    )
    scale = scale_level_for(fig.loading_gib)
    math_lines.append(("scale level", f"G = {_n(fig.loading_gib)} GiB → {scale} (<16 small, <96 medium, <512 large)"))

    cost = _cost(inp.prices, dep.components, dep.dependencies, object_gib) if inp.prices else None
    if cost:
        math_lines.extend(("monthly cost", f) for f in cost.formulas)

    phases, stops = _growth(inp, fig, dep, cost)
    if stops is not None:
        math_lines.append(("stops fitting", _stop_reason(inp, fig, qn, stops)))

    risks, notes = _risks(inp, fig, dep, stops, mode_reason)
    return Plan(
        input=inp,
        mode=fig.mode,
        scale=scale,
        message_queue=dep.message_queue,
        vector_data_gib=_gib(fig.vector_bytes),
        raw_data_gib=_gib(fig.raw_bytes),
        index_memory_gib=_gib(fig.index_bytes),
        loading_memory_per_replica_gib=fig.loading_per_replica_gib,
        loading_memory_gib=fig.loading_gib,
        local_disk_gib=fig.local_disk_gib,
        object_storage_gib=object_gib,
        query_nodes=qn,
        components=dep.components,
        dependencies=dep.dependencies,
        phases=phases,
        stops_fitting_month=stops,
        monthly_cost=cost,
        risks=tuple(risks),
        notes=tuple(notes),
        math=tuple(math_lines),
    )


def _stop_reason(inp: PlanInput, today: _Figures, qn: NodeGroup, month: int) -> str:
    later = _figures(inp, inp.vectors + month * inp.growth_per_month)
    head = f"month {month}: {inp.vectors:,} + {month} x {inp.growth_per_month:,} = {later.vectors:,} vectors"
    if later.mode != today.mode:
        return f"{head} make it a {later.mode} plan (today: {today.mode})"
    if later.loading_gib > qn.total_memory_gib:
        return (
            f"{head} need G = {_n(later.loading_gib)} GiB > today's {qn.count} x {qn.memory_gib:g} GiB"
            " of query node memory"
        )
    return f"{head} need {_n(later.local_disk_gib)} GiB of local disk > today's {qn.count} x {qn.local_disk_gib:g} GiB"


def _growth(
    inp: PlanInput, today: _Figures, today_dep: _Deployment, today_cost: MonthlyCost | None
) -> tuple[tuple[Phase, ...], int | None]:
    qn = today_dep.query_nodes

    def fits(month: int) -> bool:
        return _fits(today, qn, _figures(inp, inp.vectors + month * inp.growth_per_month))

    stops = None
    if inp.growth_per_month and inp.months and not fits(inp.months):
        # Memory, disk and mode only grow with the month, so the first month that does not fit
        # can be bisected: fits(low) holds, fits(high) does not.
        low, high = 0, inp.months
        while high - low > 1:
            mid = (low + high) // 2
            if fits(mid):
                low = mid
            else:
                high = mid
        stops = high
    phases = []
    for month in _phase_months(inp.months):
        if month == 0:
            fig, dep = today, today_dep
        else:
            fig = _figures(inp, inp.vectors + month * inp.growth_per_month)
            dep = _deployment(inp, fig)
        pods = (*dep.components, *dep.dependencies)
        object_gib = _gib(fig.object_bytes)
        if month == 0:
            cost = today_cost
        else:
            cost = _cost(inp.prices, dep.components, dep.dependencies, object_gib) if inp.prices else None
        phases.append(
            Phase(
                month=month,
                vectors=fig.vectors,
                mode=fig.mode,
                raw_data_gib=_gib(fig.raw_bytes),
                loading_memory_gib=fig.loading_gib,
                local_disk_gib=fig.local_disk_gib,
                object_storage_gib=object_gib,
                query_nodes=dep.query_nodes,
                total_cpu=sum(p.total_cpu for p in pods),
                total_memory_gib=sum(p.total_memory_gib for p in pods),
                fits_today=_fits(today, qn, fig),
                monthly_cost=cost,
            )
        )
    return tuple(phases), stops


def _risks(
    inp: PlanInput, fig: _Figures, dep: _Deployment, stops: int | None, mode_reason: str
) -> tuple[list[str], list[str]]:
    risks: list[str] = []
    notes: list[str] = []
    if fig.mode == "beyond":
        risks.append(
            f"Beyond one cluster: {_n(_gib(fig.vector_bytes))} GiB of raw vectors is past the official tool's"
            " 1B x 768d limit. Split the data across clusters (or collections on separate resource groups)"
            " or ask Zilliz; the figures below are the arithmetic, not a tested layout."
        )
    elif fig.mode == "cluster" and "suggested" in mode_reason and inp.replicas == 1:
        notes.append("Cluster is suggested at this size; standalone still works up to 100M x 768d.")
    if fig.mode != "standalone":
        notes.append("A Kubernetes cluster for Milvus needs at least 8 cores and 32 GiB (128 GiB recommended).")
    if stops is not None:
        risks.append(f"Growth: today's deployment stops fitting in month {stops} of {inp.months}; see the phases.")
    if inp.index is IndexType.DISKANN:
        notes.append("DISKANN reads from local disk on every search: give query nodes NVMe SSDs.")
    if inp.index not in TOOL_INDEXES:
        notes.append(f"The official tool does not model {inp.index.value}; its memory formula is ours (see the math).")
    if inp.index is IndexType.IVF_PQ and inp.nbits > 16:
        risks.append(f"IVF_PQ nbits {inp.nbits}: the codebook holds 2^{inp.nbits} centroids per sub-vector.")
    if inp.index in IVF_INDEXES and inp.nlist > inp.vectors:
        risks.append(f"nlist {inp.nlist:,} is more than the {inp.vectors:,} vectors to cluster.")
    if inp.replicas > 1:
        notes.append(
            f"{inp.replicas} replicas: loading memory and local disk are multiplied by {inp.replicas};"
            " the official tool has no replica factor."
        )
    if inp.target_qps is not None:
        notes.append(
            f"Target {inp.target_qps:g} QPS is not modelled: throughput depends on index parameters, top-k"
            " and filters. Load-test one replica, then add replicas (read QPS scales about linearly)."
        )
    if dep.message_queue == "woodpecker" and fig.mode != "standalone":
        notes.append("Woodpecker runs inside the streaming nodes and stores its log in object storage: no MQ pods.")
    return risks, notes
