"""/milvus backup | restore: logical backups to S3 or a local dir (or milvus-backup), scheduled,
retained, checksummed and verified; restores through temporary collections."""

from __future__ import annotations

from bot.registry import Registry
from commands.backup import commands, engine, restore_command

INCOMPLETE_SWEEP_S = 3600.0


def register(registry: Registry) -> None:
    registry.add(commands.create, commands.list_, commands.show, commands.verify, commands.delete,
                 restore_command.restore_command)
    registry.executor("backup_delete", commands.execute_delete)
    registry.executor("restore", restore_command.execute_restore)
    registry.job_source(engine.backup_jobs)
    registry.task("backup", engine.scheduled_backup)
    registry.sweep("backup_sweep_incomplete", INCOMPLETE_SWEEP_S, engine.sweep_incomplete)
