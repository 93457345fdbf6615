"""/milvus backup | restore: logical backups to S3 or a local dir (or milvus-backup), scheduled,
retained, checksummed and verified; restores through temporary collections; recovery of what a dead
process left behind.

Modules, from the bottom up: ``records`` (state store rows, ids, leases), ``progress``, ``format``
(columns, Parquet, manifest, checksums), ``remote`` (milvus-backup), ``recovery``, ``engine`` (create,
list, find), ``restore`` (verify, restore), ``retention``, ``schedule``, ``commands``.
"""

from __future__ import annotations

from bot.registry import Registry
from commands.backup import commands, recovery, schedule

INCOMPLETE_SWEEP_S = 3600.0
# Dead backups and restores are found by a database query; cheap enough to look every minute.
RECOVERY_SWEEP_S = 60.0


def register(registry: Registry) -> None:
    registry.add(commands.create, commands.list_, commands.show, commands.verify, commands.delete,
                 commands.restore_command)
    registry.executor("backup_delete", commands.execute_delete)
    registry.executor("restore", commands.execute_restore)
    registry.job_source(schedule.backup_jobs)
    registry.task("backup", schedule.scheduled_backup)
    registry.sweep("backup_recover", RECOVERY_SWEEP_S, recovery.recover, at_start=True)
    registry.sweep("backup_sweep_incomplete", INCOMPLETE_SWEEP_S, schedule.sweep_incomplete)
