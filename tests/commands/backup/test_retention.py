"""Which backups a retention policy deletes."""


from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.state import utcnow
from commands.backup.records import BackupRecord
from commands.backup.retention import retention_victims
from tests.commands.backup.helpers import (
    aws_env,  # noqa: F401  (fixture)
    )

pytestmark = pytest.mark.usefixtures("aws_env")


def test_retention_keeps_newest_and_policy(tmp_path: Path) -> None:
    now = utcnow()

    def rec(days_ago: float) -> BackupRecord:
        return BackupRecord(f"dev-{days_ago}", "dev", "logical", "complete", ["c"], 1, 1,
                                    now - dt.timedelta(days=days_ago))

    records = [rec(0.5), rec(2), rec(8), rec(30)]
    assert [r.id for r in retention_victims(records, 7, None, now)] == ["dev-8", "dev-30"]
    assert [r.id for r in retention_victims(records, None, 2, now)] == ["dev-8", "dev-30"]
    # Either rule keeps a backup: the last 3 OR the last 7 days.
    assert [r.id for r in retention_victims(records, 7, 3, now)] == ["dev-30"]
    # The newest good backup survives even when every backup is older than the policy.
    old = [rec(40), rec(50)]
    assert [r.id for r in retention_victims(old, 7, None, now)] == ["dev-50"]
    assert retention_victims([], 7, 1, now) == []
