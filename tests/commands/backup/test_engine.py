"""Creating and listing logical backups on real parts: S3 (moto) or a local directory, milvus-lite."""


from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.errors import IntegrationError
from commands.backup.engine import create_backup, find_backup, list_backups
from commands.backup.restore import restore_backup
from commands.backup.retention import delete_backup
from tests.commands.backup.helpers import (
    all_rows,
    assert_same_rows,
    aws_env,  # noqa: F401  (fixture)
    create_rich_collection,
    dev_runtime,
    make_runtime,
)

pytestmark = pytest.mark.usefixtures("aws_env")


def test_s3_unreachable_gives_a_clear_error_and_restores_nothing(tmp_path: Path, milvus_lite_uri: str,
                                                                 moto_s3: Any, bucket: Any) -> None:
    runtime, _ = dev_runtime(tmp_path, milvus_lite_uri, moto_s3.url)
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=300)
    record = create_backup(runtime, env)
    client.drop_collection("docs")

    # The same bucket behind an endpoint nothing listens on.
    dead_runtime, _ = dev_runtime(tmp_path / "dead", milvus_lite_uri, "http://127.0.0.1:9")
    dead_env = dead_runtime.config.environments["dev"]
    dead_runtime.services.cache.get(f"milvus:{dead_env.name}", lambda: client)
    with pytest.raises(IntegrationError) as failed:
        restore_backup(dead_runtime, dead_env, record.id, dead_env)
    assert "S3 is unreachable" in failed.value.message
    assert client.list_collections() == []

    create_rich_collection(client, "docs", rows=300)
    with pytest.raises(IntegrationError, match="S3 is unreachable"):
        create_backup(dead_runtime, dead_env)
    assert list_backups(runtime, env).usable[0].id == record.id


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
        record = create_backup(runtime, env)
        assert (tmp_path / "backups" / "local" / record.id / "manifest.json").exists()
        client.drop_collection("docs")
        restore_backup(runtime, env, record.id, env)
        assert_same_rows(before, all_rows(client, "docs"))
        assert delete_backup(runtime, env, record.id) >= 2
        assert not (tmp_path / "backups" / "local" / record.id).exists()
        assert list_backups(runtime, env).usable == []
    finally:
        runtime.services.close_all()


def test_a_new_bot_database_finds_backups_by_their_manifests(tmp_path: Path, milvus_lite_uri: str, moto_s3: Any,
                                                             bucket: Any) -> None:
    runtime, _ = dev_runtime(tmp_path / "old", milvus_lite_uri, moto_s3.url)
    env = runtime.config.environments["dev"]
    client = runtime.services.milvus_client(env)
    create_rich_collection(client, "docs", rows=100)
    before = all_rows(client, "docs")
    record = create_backup(runtime, env)

    fresh, _ = dev_runtime(tmp_path / "new", milvus_lite_uri, moto_s3.url)  # e.g. the bot moved to a new cluster
    fresh_env = fresh.config.environments["dev"]
    [found] = list_backups(fresh, fresh_env).usable
    assert (found.id, found.rows, found.bytes, found.collections) == (record.id, 100, record.bytes, ["docs"])
    assert find_backup(fresh, record.id)[0].name == "dev"
    restore_backup(fresh, fresh_env, record.id, fresh_env, suffix="_again")
    assert_same_rows(before, all_rows(client, "docs_again"))
