"""Scheduled backups: the job a config asks for, its report in the ops channel, retention after it."""


from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from bot.scheduler import jobs_from_config, run_job
from commands.backup.engine import list_backups
from tests.commands.backup.helpers import (
    aws_env,  # noqa: F401  (fixture)
    create_rich_collection,
    dev_runtime,
)

pytestmark = pytest.mark.usefixtures("aws_env")


def test_scheduled_backup_reports_to_ops_and_applies_retention(tmp_path: Path, milvus_lite_uri: str,
                                                               moto_s3: Any, bucket: Any) -> None:
    runtime, messenger = dev_runtime(tmp_path, milvus_lite_uri, moto_s3.url, schedule="0 2 * * *",
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
    usable = list_backups(runtime, env).usable
    assert len(usable) == 1 and usable[0].id in second
    ops = messenger.in_channel("C-OPS")
    assert len(ops) == 2 and all(t.startswith(":white_check_mark: Backup dev-") for t in ops)
    assert "KiB in " in ops[-1] and " s" in ops[-1]

    client.drop_collection("docs")
    failed = run_job(runtime, spec, dt.datetime(2026, 1, 3, 2, tzinfo=dt.UTC))
    assert failed and "no collections to back up" in failed
    assert messenger.in_channel("C-OPS")[-1].startswith(":x: Scheduled backup of dev failed")
    assert "no collections to back up" in messenger.in_channel("C-OPS")[-1]
