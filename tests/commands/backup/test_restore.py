"""Restores on real parts (a milvus-lite server, moto's S3 server on loopback): every claim is proven by
a round trip, compared row by row, vector by vector; failures leave nothing half restored."""


from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.errors import Conflict, IntegrationError
from commands.backup.engine import create_backup
from commands.backup.format import CorruptBackup, read_manifest
from commands.backup.restore import restore_backup, verify_backup
from tests.commands.backup.helpers import (
    BUCKET,
    all_rows,
    assert_same_rows,
    aws_env,  # noqa: F401  (fixture)
    create_rich_collection,
    dev_runtime,
    s3_objects,
)

pytestmark = pytest.mark.usefixtures("aws_env")


def test_round_trip_restores_every_row_and_vector(tmp_path: Path, milvus_lite_uri: str, moto_s3: Any,
                                                  bucket: Any) -> None:
    runtime, _ = dev_runtime(tmp_path, milvus_lite_uri, moto_s3.url, object_mb=1, sse="AES256")
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=6_000)
    create_rich_collection(client, "small", rows=10, dim=4, seed=3)
    before = {name: all_rows(client, name) for name in ("docs", "small")}
    described_before = client.describe_collection("docs")
    recent_ids = [r["id"] for r in all_rows(client, "docs", "recent")]
    lines: list[str] = []

    record = create_backup(runtime, env, progress=lines.append)

    assert record.state == "complete" and record.collections == ["docs", "small"]
    assert record.rows == 6_010
    keys = [o["Key"] for o in s3_objects(bucket)]
    data_keys = [k for k in keys if k.endswith(".parquet")]
    assert len(data_keys) >= 3, keys  # 1 MB objects: the 6,000-row collection spans several
    assert record.bytes == sum(o["Size"] for o in s3_objects(bucket) if o["Key"].endswith(".parquet"))
    for key in keys:  # SSE-S3 on every put, the manifest included
        assert bucket.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"
    assert lines and "of 6,010" in lines[-1]

    for name in ("docs", "small"):
        client.drop_collection(name)
    report = restore_backup(runtime, env, record.id, env)

    assert [(c.target, c.rows_restored, c.rows_expected) for c in report.collections] == [
        ("docs", 6_000, 6_000), ("small", 10, 10)
    ]
    assert report.collections[0].sampled > 0 and not report.collections[0].sample_mismatches
    for name in ("docs", "small"):
        assert_same_rows(before[name], all_rows(client, name))
    assert [r["id"] for r in all_rows(client, "docs", "recent")] == recent_ids
    described = client.describe_collection("docs")
    assert described["enable_dynamic_field"]
    assert described["fields"] == described_before["fields"]
    assert described["description"] == described_before["description"]
    assert [i for i in client.list_indexes("docs")] == ["vec"]
    assert not [c for c in client.list_collections() if "__restoring_" in c]


def test_restore_into_existing_needs_drop_existing(tmp_path: Path, milvus_lite_uri: str, moto_s3: Any,
                                                   bucket: Any) -> None:
    runtime, _ = dev_runtime(tmp_path, milvus_lite_uri, moto_s3.url)
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=500)
    before = all_rows(client, "docs")
    record = create_backup(runtime, env)
    client.delete("docs", filter="id < 100")
    changed = all_rows(client, "docs")

    with pytest.raises(Conflict) as refused:
        restore_backup(runtime, env, record.id, env)
    assert "`docs` already exists" in refused.value.message and "--drop-existing" in str(refused.value.hint)
    assert_same_rows(changed, all_rows(client, "docs"))  # untouched

    report = restore_backup(runtime, env, record.id, env, suffix="_copy")
    assert report.collections[0].target == "docs_copy"
    assert_same_rows(before, all_rows(client, "docs_copy"))

    restore_backup(runtime, env, record.id, env, collections=["docs"], drop_existing=True)
    assert_same_rows(before, all_rows(client, "docs"))


def test_corrupted_object_is_named_by_verify_and_restore_refuses(tmp_path: Path, milvus_lite_uri: str,
                                                                 moto_s3: Any, bucket: Any) -> None:
    runtime, _ = dev_runtime(tmp_path, milvus_lite_uri, moto_s3.url, object_mb=1)
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=6_000)
    record = create_backup(runtime, env)
    assert verify_backup(runtime, env, record.id).ok

    # Flip bytes in the LAST object, same size: the size pre-check passes, the earlier objects are
    # inserted, and only the hash check catches it, which proves the partial restore is undone.
    data_keys = sorted(o["Key"] for o in s3_objects(bucket) if o["Key"].endswith(".parquet"))
    victim = data_keys[-1]
    body = bytearray(bucket.get_object(Bucket=BUCKET, Key=victim)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    bucket.put_object(Bucket=BUCKET, Key=victim, Body=bytes(body))
    short = victim.split(f"{record.id}/", 1)[1]

    report = verify_backup(runtime, env, record.id)
    assert not report.ok and len(report.problems) == 1
    assert report.problems[0].startswith(f"{short}: SHA-256")

    client.drop_collection("docs")
    with pytest.raises(CorruptBackup) as refused:
        restore_backup(runtime, env, record.id, env)
    assert short in refused.value.message and "Nothing was restored" in refused.value.message
    assert client.list_collections() == []  # the temporary collection was dropped

    # A truncated object is refused before Milvus is touched at all.
    bucket.put_object(Bucket=BUCKET, Key=victim, Body=bytes(body[:100]))
    with pytest.raises(CorruptBackup, match="size 100 bytes"):
        restore_backup(runtime, env, record.id, env)
    assert client.list_collections() == []


def test_s3_going_down_mid_restore_leaves_nothing_half_restored(tmp_path: Path, milvus_lite_uri: str) -> None:
    from tests.support.servers import start_moto_s3

    own_s3 = start_moto_s3()  # this test stops it, so it gets its own
    try:
        own_s3.client().create_bucket(Bucket=BUCKET)
        runtime, _ = dev_runtime(tmp_path, milvus_lite_uri, own_s3.url, object_mb=1)
        env = runtime.config.environments["dev"]
        client = runtime.services.milvus_client(env)
        create_rich_collection(client, "docs", rows=8_000, dim=64)
        record = create_backup(runtime, env)
        objects = read_manifest(runtime.services.object_store(env), "dev", record.id).collections[0].objects
        assert len(objects) >= 4
        client.drop_collection("docs")
        stopped: list[str] = []

        def stop_s3_after_first_rows(line: str) -> None:
            if not stopped:
                stopped.append(line)
                own_s3.stop()

        with pytest.raises(IntegrationError) as failed:
            restore_backup(runtime, env, record.id, env, progress=stop_s3_after_first_rows)
        assert stopped and "restored rows" in stopped[0]  # it failed part-way, after rows went in
        assert "S3 is unreachable" in failed.value.message
        assert client.list_collections() == []
    finally:
        own_s3.stop()
