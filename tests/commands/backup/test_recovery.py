"""What a dead process leaves behind is recovered: a backup or a restore SIGKILLed mid-way, in a real
``milvus-chatops run`` subprocess, neither blocks the next one nor leaves objects or ``__restoring_``
collections behind, whether the next command or a restarted ``serve`` finds them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymilvus import MilvusClient

from bot.access import Identity
from bot.config import LOCAL_OPERATOR
from bot.dispatch import Dispatcher
from commands.backup.engine import create_backup, list_backups
from commands.backup.records import db_get
from tests.commands.backup.helpers import (
    aws_env,  # noqa: F401  (fixture)
    create_rich_collection,
    make_runtime,
    s3_backup,
    s3_objects,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.usefixtures("aws_env")
ROOT = Path(__file__).parents[3]

RUN_SCRIPT = """
import sys
from commands import main
sys.exit(main(["run", sys.argv[2], "--config", sys.argv[1]]))
"""


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None or proc.stderr is None:
        return "(still running)"
    return proc.stderr.read().decode(errors="replace")[-2000:]


def _config(tmp_path: Path, milvus_uri: str, moto_url: str) -> tuple[dict[str, Any], Path]:
    config = {
        "environments": {
            "dev": {"milvus": {"uri": milvus_uri, "timeout_s": 60},
                    "backup": s3_backup(moto_url, object_mb=1)}
        },
        "access": [{"role": "admin", "users": [LOCAL_OPERATOR]}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return config, path


def _kill_midway(tmp_path: Path, config_path: Path, command: str, started: Callable[[], bool]) -> None:
    """Run ``command`` in its own ``milvus-chatops run`` process and SIGKILL it once ``started()``."""
    env_vars = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(config_path), command], env=env_vars,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        wait_for(started, timeout=90,
                 message=lambda: f"{command} did not get going; it exited {proc.poll()}: {_stderr(proc)}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()


def _parquet(bucket: Any) -> list[str]:
    return [o["Key"] for o in s3_objects(bucket) if o["Key"].endswith(".parquet")]


def test_a_backup_killed_midway_does_not_block_the_next_and_its_objects_go(
        tmp_path: Path, milvus_lite_uri: str, moto_s3: Any, bucket: Any) -> None:
    config, config_path = _config(tmp_path, milvus_lite_uri, moto_s3.url)
    client = MilvusClient(uri=milvus_lite_uri)
    create_rich_collection(client, "docs", rows=40_000, dim=64)
    runtime, _ = make_runtime(tmp_path, config)
    env = runtime.config.environments["dev"]
    dispatcher = Dispatcher(runtime)
    refused: list[str] = []

    def writing_and_still_refused_elsewhere() -> bool:
        if len(_parquet(bucket)) < 2:
            return False
        # While its process lives, another process may not start a second backup of `dev`.
        if not refused:
            outcome = dispatcher.run_command("/milvus backup create dev", Identity(LOCAL_OPERATOR), channel="t")
            refused.append(outcome.reply.text)
        return True

    _kill_midway(tmp_path, config_path, "/milvus backup create dev", writing_and_still_refused_elsewhere)
    keys = [o["Key"] for o in s3_objects(bucket)]
    assert not any(k.endswith("manifest.json") for k in keys), "the backup finished before it was killed"
    killed = keys[0].split("/")[2]
    assert refused and "is still running" in refused[0] and killed in refused[0]

    listing = list_backups(runtime, env)
    assert listing.usable == [] and listing.running == []  # its process is gone: not "running"
    assert listing.incomplete == [killed]

    # The next backup starts at once (not 10 minutes later) and takes the dead one's objects away.
    outcome = dispatcher.run_command("/milvus backup create dev", Identity(LOCAL_OPERATOR), channel="t")
    assert outcome.exit_code == 0, outcome.reply.text
    fresh = outcome.reply.data["id"]
    assert not [k for k in _parquet(bucket) if f"/{killed}/" in k]
    record = db_get(runtime, killed)
    assert record is not None and record.state == "failed" and "process stopped" in str(record.error)
    assert [b.id for b in list_backups(runtime, env).usable] == [fresh]


def test_serve_recovers_a_killed_backup_and_a_killed_restore_when_it_starts(
        tmp_path: Path, milvus_lite_uri: str, moto_s3: Any, bucket: Any, bot_server: Any) -> None:
    config, config_path = _config(tmp_path, milvus_lite_uri, moto_s3.url)
    client = MilvusClient(uri=milvus_lite_uri)
    create_rich_collection(client, "docs", rows=40_000, dim=64)
    runtime, _ = make_runtime(tmp_path, config)
    record = create_backup(runtime, runtime.config.environments["dev"])
    runtime.services.close_all()
    done = set(_parquet(bucket))

    def restoring() -> list[str]:
        return [c for c in client.list_collections() if "__restoring_" in c]

    _kill_midway(tmp_path, config_path, f"/milvus restore {record.id} --to dev --suffix _r",
                 lambda: bool(restoring()) and client.get_collection_stats(restoring()[0])["row_count"] > 0)
    assert restoring(), "the restore finished before it was killed"
    _kill_midway(tmp_path, config_path, "/milvus backup create dev",
                 lambda: len(set(_parquet(bucket)) - done) >= 2)
    partial = set(_parquet(bucket)) - done
    killed = next(iter(partial)).split("/")[2]

    bot_server(config_path.read_text(), data_dir=tmp_path)
    wait_for(lambda: not restoring(), timeout=60,
             message=lambda: f"serve left {restoring()} behind after it started")
    assert sorted(client.list_collections()) == ["docs"]
    wait_for(lambda: (found := db_get(runtime, killed)) is not None and found.state == "failed", timeout=60,
             message="serve did not mark the killed backup failed when it started")
    assert set(_parquet(bucket)) == done  # the killed backup's objects are gone, the good one's stay
