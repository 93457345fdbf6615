"""Shared by the backup tests: a runtime on real parts, a collection with every common field type, and
row-by-row comparison."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.context import Runtime
from bot.reply import Attachment, Message
from bot.settings import Settings
from bot.state import Store
from tests.support.runtime import build_test_runtime

BUCKET = "milvus-backups"


class RecordingMessenger:
    """Stands in for the Slack outbox: keeps every post and the latest version of each message."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.current: dict[str, Message] = {}
        self.lock = threading.Lock()

    def post(self, channel: str, message: Message, *, ref: str | None = None, thread_ref: str | None = None,
             dedupe_key: str | None = None) -> str:
        with self.lock:
            ref = ref or f"msg-{len(self.posts)}"
            self.posts.append({"channel": channel, "ref": ref, "thread_ref": thread_ref, "message": message})
            self.current[ref] = message
            return ref

    def update(self, ref: str, message: Message) -> None:
        with self.lock:
            self.current[ref] = message

    def upload(self, channel: str, files: list[Attachment], *, thread_ref: str | None = None,
               comment: str = "") -> None:
        return None

    def in_channel(self, channel: str) -> list[str]:
        """The latest text of every message posted in ``channel``."""
        with self.lock:
            return [self.current[p["ref"]].text for p in self.posts if p["channel"] == channel]


def make_runtime(tmp_path: Path, config: dict[str, Any]) -> tuple[Runtime, RecordingMessenger]:
    settings = Settings(MILVUS_CHATOPS_DATA_DIR=str(tmp_path))
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    messenger = RecordingMessenger()
    runtime = build_test_runtime(settings=settings, config=config, store=store, messenger=messenger)
    return runtime, messenger


def s3_backup(moto_url: str, **extra: Any) -> dict[str, Any]:
    return {"bucket": BUCKET, "prefix": "chatops", "endpoint_url": moto_url, "region": "us-east-1", **extra}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials the way production gets them: from the environment (boto3's default chain)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def create_rich_collection(client: Any, name: str, rows: int = 3_000, dim: int = 16, seed: int = 7) -> None:
    """int64 pk, varchar, float, double, bool, nullable, JSON, arrays, a float vector, dynamic fields,
    two partitions and an index, loaded."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True, description="rich test data")
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("title", DataType.VARCHAR, max_length=128)
    schema.add_field("score", DataType.FLOAT)
    schema.add_field("weight", DataType.DOUBLE)
    schema.add_field("flag", DataType.BOOL)
    schema.add_field("small", DataType.INT16)
    schema.add_field("note", DataType.VARCHAR, max_length=32, nullable=True)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8, max_length=16)
    schema.add_field("nums", DataType.ARRAY, element_type=DataType.INT64, max_capacity=8)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    client.create_partition(name, "recent")
    rng = np.random.default_rng(seed)
    data = []
    for i in range(rows):
        row: dict[str, Any] = {
            "id": i * 3 + 1,
            "title": f"doc {i} — ünïcode \"quoted\"",
            "score": float(rng.random()),
            "weight": float(rng.random()) * 1e6,
            "flag": bool(i % 2),
            "small": int(i % 30_000) - 15_000,
            "note": None if i % 3 else f"n{i}",
            "meta": {"i": i, "nested": {"list": [1, "two", None, 3.5]}, "ok": i % 5 == 0},
            "tags": [f"t{i % 7}", "x"][: i % 3],
            "nums": list(range(i % 5)),
            "vec": rng.random(dim, dtype=np.float32).tolist(),
        }
        if i % 4 == 0:
            row["extra_dynamic"] = {"k": i}
        if i % 10 == 0:
            row["color"] = "red"
        data.append(row)
    split = rows * 2 // 3
    for start in range(0, split, 1000):
        client.insert(name, data[start : min(start + 1000, split)])
    for start in range(split, rows, 1000):
        client.insert(name, data[start : min(start + 1000, rows)], partition_name="recent")
    client.load_collection(name)


def all_rows(client: Any, name: str, partition: str | None = None) -> list[dict[str, Any]]:
    client.load_collection(name)
    kwargs: dict[str, Any] = {"partition_names": [partition]} if partition else {}
    iterator = client.query_iterator(name, batch_size=1000, filter="", output_fields=["*"], **kwargs)
    rows: list[dict[str, Any]] = []
    try:
        while batch := iterator.next():
            rows.extend(batch)
    finally:
        iterator.close()
    return sorted(rows, key=lambda r: r["id"])


def canonical(row: dict[str, Any]) -> str:
    """A row as text where vectors compare as float32, so equal data gives equal text."""
    out = {}
    for key, value in row.items():
        if key == "vec":
            out[key] = np.asarray(value, dtype=np.float32).tobytes().hex()
        elif isinstance(value, float):
            out[key] = repr(np.float32(value)) if key == "score" else repr(value)
        else:
            out[key] = value
    return json.dumps(out, sort_keys=True, default=str)


def assert_same_rows(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> None:
    assert len(actual) == len(expected), f"{len(actual)} rows restored, {len(expected)} backed up"
    for want, got in zip(expected, actual, strict=True):
        assert canonical(got) == canonical(want), f"row {want['id']} differs:\n{want}\n{got}"


def dev_runtime(tmp_path: Path, milvus_uri: str, moto_url: str, **backup: Any) -> Any:
    """One environment, `dev`, on the given Milvus and S3, reporting to `C-OPS`."""
    config = {
        "environments": {
            "dev": {
                "milvus": {"uri": milvus_uri, "timeout_s": 60},
                "backup": s3_backup(moto_url, **backup),
                "channels": {"ops": "C-OPS"},
            }
        }
    }
    return make_runtime(tmp_path, config)


def s3_objects(s3: Any, prefix: str = "chatops/dev/") -> list[dict[str, Any]]:
    return s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
