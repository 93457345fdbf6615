"""The logical backup engine on real parts: a milvus-lite server and moto's S3 server on loopback.

Every claim is proven by a round trip: what comes back is compared row by row, vector by vector.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymilvus import MilvusClient

from bot.config import LOCAL_OPERATOR
from bot.errors import Conflict, IntegrationError
from bot.scheduler import jobs_from_config, run_job
from bot.state import utcnow
from commands.backup import engine as backups
from tests.bot.backup_helpers import (
    BUCKET,
    all_rows,
    assert_same_rows,
    aws_env,  # noqa: F401  (fixture)
    create_rich_collection,
    make_runtime,
    s3_backup,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def bucket(moto_s3: Any) -> Any:
    client = moto_s3.client()
    client.create_bucket(Bucket=BUCKET)
    return client


def _runtime(tmp_path: Path, milvus_uri: str, moto_url: str, **backup: Any) -> Any:
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


def _objects(s3: Any, prefix: str = "chatops/dev/") -> list[dict[str, Any]]:
    return s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])


def test_round_trip_restores_every_row_and_vector(tmp_path: Path, milvus_lite_uri: str, moto_s3: Any,
                                                  bucket: Any) -> None:
    runtime, _ = _runtime(tmp_path, milvus_lite_uri, moto_s3.url, object_mb=1, sse="AES256")
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=6_000)
    create_rich_collection(client, "small", rows=10, dim=4, seed=3)
    before = {name: all_rows(client, name) for name in ("docs", "small")}
    described_before = client.describe_collection("docs")
    recent_ids = [r["id"] for r in all_rows(client, "docs", "recent")]
    lines: list[str] = []

    record = backups.create_backup(runtime, env, progress=lines.append)

    assert record.state == "complete" and record.collections == ["docs", "small"]
    assert record.rows == 6_010
    keys = [o["Key"] for o in _objects(bucket)]
    data_keys = [k for k in keys if k.endswith(".parquet")]
    assert len(data_keys) >= 3, keys  # 1 MB objects: the 6,000-row collection spans several
    assert record.bytes == sum(o["Size"] for o in _objects(bucket) if o["Key"].endswith(".parquet"))
    for key in keys:  # SSE-S3 on every put, the manifest included
        assert bucket.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"
    assert lines and "of 6,010" in lines[-1]

    for name in ("docs", "small"):
        client.drop_collection(name)
    report = backups.restore_backup(runtime, env, record.id, env)

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
    runtime, _ = _runtime(tmp_path, milvus_lite_uri, moto_s3.url)
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=500)
    before = all_rows(client, "docs")
    record = backups.create_backup(runtime, env)
    client.delete("docs", filter="id < 100")
    changed = all_rows(client, "docs")

    with pytest.raises(Conflict) as refused:
        backups.restore_backup(runtime, env, record.id, env)
    assert "`docs` already exists" in refused.value.message and "--drop-existing" in str(refused.value.hint)
    assert_same_rows(changed, all_rows(client, "docs"))  # untouched

    report = backups.restore_backup(runtime, env, record.id, env, suffix="_copy")
    assert report.collections[0].target == "docs_copy"
    assert_same_rows(before, all_rows(client, "docs_copy"))

    backups.restore_backup(runtime, env, record.id, env, collections=["docs"], drop_existing=True)
    assert_same_rows(before, all_rows(client, "docs"))


def test_corrupted_object_is_named_by_verify_and_restore_refuses(tmp_path: Path, milvus_lite_uri: str,
                                                                 moto_s3: Any, bucket: Any) -> None:
    runtime, _ = _runtime(tmp_path, milvus_lite_uri, moto_s3.url, object_mb=1)
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=6_000)
    record = backups.create_backup(runtime, env)
    assert backups.verify_backup(runtime, env, record.id).ok

    # Flip bytes in the LAST object, same size: the size pre-check passes, the earlier objects are
    # inserted, and only the hash check catches it, which proves the partial restore is undone.
    data_keys = sorted(o["Key"] for o in _objects(bucket) if o["Key"].endswith(".parquet"))
    victim = data_keys[-1]
    body = bytearray(bucket.get_object(Bucket=BUCKET, Key=victim)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    bucket.put_object(Bucket=BUCKET, Key=victim, Body=bytes(body))
    short = victim.split(f"{record.id}/", 1)[1]

    report = backups.verify_backup(runtime, env, record.id)
    assert not report.ok and len(report.problems) == 1
    assert report.problems[0].startswith(f"{short}: SHA-256")

    client.drop_collection("docs")
    with pytest.raises(backups.CorruptBackup) as refused:
        backups.restore_backup(runtime, env, record.id, env)
    assert short in refused.value.message and "Nothing was restored" in refused.value.message
    assert client.list_collections() == []  # the temporary collection was dropped

    # A truncated object is refused before Milvus is touched at all.
    bucket.put_object(Bucket=BUCKET, Key=victim, Body=bytes(body[:100]))
    with pytest.raises(backups.CorruptBackup, match="size 100 bytes"):
        backups.restore_backup(runtime, env, record.id, env)
    assert client.list_collections() == []


def test_s3_unreachable_gives_a_clear_error_and_restores_nothing(tmp_path: Path, milvus_lite_uri: str,
                                                                 moto_s3: Any, bucket: Any) -> None:
    runtime, _ = _runtime(tmp_path, milvus_lite_uri, moto_s3.url)
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=300)
    record = backups.create_backup(runtime, env)
    client.drop_collection("docs")

    # The same bucket behind an endpoint nothing listens on.
    dead_runtime, _ = _runtime(tmp_path / "dead", milvus_lite_uri, "http://127.0.0.1:9")
    dead_env = dead_runtime.config.environments["dev"]
    dead_runtime.services.cache.get(f"milvus:{dead_env.name}", lambda: client)
    with pytest.raises(IntegrationError) as failed:
        backups.restore_backup(dead_runtime, dead_env, record.id, dead_env)
    assert "S3 is unreachable" in failed.value.message
    assert client.list_collections() == []

    create_rich_collection(client, "docs", rows=300)
    with pytest.raises(IntegrationError, match="S3 is unreachable"):
        backups.create_backup(dead_runtime, dead_env)
    assert backups.list_backups(runtime, env).usable[0].id == record.id


KILL_SCRIPT = """
import sys
from commands import main
sys.exit(main(["run", "/milvus backup create dev", "--config", sys.argv[1]]))
"""


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None or proc.stderr is None:
        return "(still running)"
    return proc.stderr.read().decode(errors="replace")[-2000:]


def test_backup_killed_midway_is_never_usable_and_is_cleaned_up(tmp_path: Path, milvus_lite_uri: str,
                                                                moto_s3: Any, bucket: Any) -> None:
    config = {
        "environments": {
            "dev": {"milvus": {"uri": milvus_lite_uri, "timeout_s": 60},
                    "backup": s3_backup(moto_s3.url, object_mb=1)}
        },
        "access": [{"role": "admin", "users": [LOCAL_OPERATOR]}],
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    client = MilvusClient(uri=milvus_lite_uri)
    create_rich_collection(client, "docs", rows=40_000, dim=64)
    env_vars = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(config_path)], env=env_vars,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        wait_for(lambda: len([o for o in _objects(bucket) if o["Key"].endswith(".parquet")]) >= 2, timeout=60,
                 message=lambda: f"no objects written; backup process exited {proc.poll()}: {_stderr(proc)}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    keys = [o["Key"] for o in _objects(bucket)]
    assert not any(k.endswith("manifest.json") for k in keys), "the backup finished before it was killed"

    runtime, _ = make_runtime(tmp_path, config)
    env = runtime.config.environments["dev"]
    listing = backups.list_backups(runtime, env)
    assert listing.usable == []
    backup_id = keys[0].split("/")[2]
    # Its heartbeat is fresh, so it still looks like it is running and nothing is deleted yet.
    assert [r.id for r in listing.running] == [backup_id]
    assert backups.cleanup_incomplete(runtime, env) == []
    assert _objects(bucket)

    # Once the writer has been silent long enough, the sweep removes every object it left.
    assert backups.cleanup_incomplete(runtime, env, stale_after=dt.timedelta(0)) == [backup_id]
    assert _objects(bucket) == []
    row = backups._db_get(runtime, backup_id)
    assert row is not None and row.state == "abandoned"
    assert backups.list_backups(runtime, env).usable == []


def test_retention_keeps_newest_and_policy(tmp_path: Path) -> None:
    now = utcnow()

    def rec(days_ago: float) -> backups.BackupRecord:
        return backups.BackupRecord(f"dev-{days_ago}", "dev", "logical", "complete", ["c"], 1, 1,
                                    now - dt.timedelta(days=days_ago))

    records = [rec(0.5), rec(2), rec(8), rec(30)]
    assert [r.id for r in backups.retention_victims(records, 7, None, now)] == ["dev-8", "dev-30"]
    assert [r.id for r in backups.retention_victims(records, None, 2, now)] == ["dev-8", "dev-30"]
    # Either rule keeps a backup: the last 3 OR the last 7 days.
    assert [r.id for r in backups.retention_victims(records, 7, 3, now)] == ["dev-30"]
    # The newest good backup survives even when every backup is older than the policy.
    old = [rec(40), rec(50)]
    assert [r.id for r in backups.retention_victims(old, 7, None, now)] == ["dev-50"]
    assert backups.retention_victims([], 7, 1, now) == []


def test_scheduled_backup_reports_to_ops_and_applies_retention(tmp_path: Path, milvus_lite_uri: str,
                                                               moto_s3: Any, bucket: Any) -> None:
    runtime, messenger = _runtime(tmp_path, milvus_lite_uri, moto_s3.url, schedule="0 2 * * *",
                                  retention={"days": None, "keep_last": 1})
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=200)
    [spec] = [s for s in jobs_from_config(runtime.registry, runtime.config) if s.task == "backup"]
    assert (spec.job_id, spec.cron, spec.kwargs) == ("backup:dev", "0 2 * * *", {"env": "dev"})

    first = run_job(runtime, spec, dt.datetime(2026, 1, 1, 2, tzinfo=dt.UTC))
    second = run_job(runtime, spec, dt.datetime(2026, 1, 2, 2, tzinfo=dt.UTC))
    assert run_job(runtime, spec, dt.datetime(2026, 1, 2, 2, tzinfo=dt.UTC)) is None  # claimed once

    assert first and second and "200 rows" in second and "retention deleted" in second
    usable = backups.list_backups(runtime, env).usable
    assert len(usable) == 1 and usable[0].id in second
    ops = messenger.in_channel("C-OPS")
    assert len(ops) == 2 and all(t.startswith(":white_check_mark: Backup dev-") for t in ops)
    assert "KiB in " in ops[-1] and " s" in ops[-1]

    client.drop_collection("docs")
    failed = run_job(runtime, spec, dt.datetime(2026, 1, 3, 2, tzinfo=dt.UTC))
    assert failed and "no collections to back up" in failed
    assert messenger.in_channel("C-OPS")[-1].startswith(":x: Scheduled backup of dev failed")
    assert "no collections to back up" in messenger.in_channel("C-OPS")[-1]


def test_local_directory_store_round_trip(tmp_path: Path) -> None:
    """The embedded default: Milvus Lite in process and backups in a directory."""
    config = {"environments": {"local": {"milvus": {"uri": str(tmp_path / "milvus.db")},
                                         "backup": {"local_dir": str(tmp_path / "backups")}}}}
    runtime, _ = make_runtime(tmp_path, config)
    env = runtime.config.environments["local"]
    client = runtime.services.milvus_client(env)
    try:
        create_rich_collection(client, "docs", rows=400, dim=8)
        before = all_rows(client, "docs")
        record = backups.create_backup(runtime, env)
        assert (tmp_path / "backups" / "local" / record.id / "manifest.json").exists()
        client.drop_collection("docs")
        backups.restore_backup(runtime, env, record.id, env)
        assert_same_rows(before, all_rows(client, "docs"))
        assert backups.delete_backup(runtime, env, record.id) >= 2
        assert not (tmp_path / "backups" / "local" / record.id).exists()
        assert backups.list_backups(runtime, env).usable == []
    finally:
        runtime.services.close_all()


def test_a_new_bot_database_finds_backups_by_their_manifests(tmp_path: Path, milvus_lite_uri: str, moto_s3: Any,
                                                             bucket: Any) -> None:
    runtime, _ = _runtime(tmp_path / "old", milvus_lite_uri, moto_s3.url)
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=100)
    before = all_rows(client, "docs")
    record = backups.create_backup(runtime, env)

    fresh, _ = _runtime(tmp_path / "new", milvus_lite_uri, moto_s3.url)  # e.g. the bot moved to a new cluster
    fresh_env = fresh.config.environments["dev"]
    [found] = backups.list_backups(fresh, fresh_env).usable
    assert (found.id, found.rows, found.bytes, found.collections) == (record.id, 100, record.bytes, ["docs"])
    assert backups.find_backup(fresh, record.id)[0].name == "dev"
    backups.restore_backup(fresh, fresh_env, record.id, fresh_env, suffix="_again")
    assert_same_rows(before, all_rows(client, "docs_again"))


def test_s3_going_down_mid_restore_leaves_nothing_half_restored(tmp_path: Path, milvus_lite_uri: str) -> None:
    from tests.support.servers import start_moto_s3

    own_s3 = start_moto_s3()  # this test stops it, so it gets its own
    try:
        own_s3.client().create_bucket(Bucket=BUCKET)
        runtime, _ = _runtime(tmp_path, milvus_lite_uri, own_s3.url, object_mb=1)
        env = runtime.config.environments["dev"]
        client = runtime.services.milvus_client(env)
        create_rich_collection(client, "docs", rows=8_000, dim=64)
        record = backups.create_backup(runtime, env)
        objects = backups.read_manifest(runtime.services.object_store(env), "dev", record.id).collections[0].objects
        assert len(objects) >= 4
        client.drop_collection("docs")
        stopped: list[str] = []

        def stop_s3_after_first_rows(line: str) -> None:
            if not stopped:
                stopped.append(line)
                own_s3.stop()

        with pytest.raises(IntegrationError) as failed:
            backups.restore_backup(runtime, env, record.id, env, progress=stop_s3_after_first_rows)
        assert stopped and "restored rows" in stopped[0]  # it failed part-way, after rows went in
        assert "S3 is unreachable" in failed.value.message
        assert client.list_collections() == []
    finally:
        own_s3.stop()
