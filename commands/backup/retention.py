"""Deleting backups, one on request or the ones a retention policy no longer keeps."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from bot import blocks as bk
from bot.config import Environment
from bot.errors import NotFound
from bot.state import utcnow
from commands.backup.engine import list_backups
from commands.backup.format import MANIFEST
from commands.backup.records import BackupRecord, backup_dir, backup_target, check_belongs, db_get, db_update
from commands.backup.remote import remote_delete

if TYPE_CHECKING:
    from bot.context import Runtime

log = logging.getLogger("milvus_chatops.backup")


def delete_backup(runtime: Runtime, env: Environment, backup_id: str) -> int:
    """Delete every object of a backup, manifest first so a half-finished delete is merely incomplete."""
    check_belongs(env, backup_id)
    if backup_target(env).engine == "milvus-backup":
        return remote_delete(runtime, env, backup_id)
    store = runtime.services.object_store(env)
    base = backup_dir(env.name, backup_id)
    keys = [o.key for o in store.list(f"{base}/")]
    if not keys and db_get(runtime, backup_id) is None:
        raise NotFound(f"There is no backup `{bk.escape(backup_id)}` in `{env.name}`.")
    manifest_key = f"{base}/{MANIFEST}"
    if manifest_key in keys:
        store.delete([manifest_key])
    deleted = store.delete([k for k in keys if k != manifest_key]) + (1 if manifest_key in keys else 0)
    db_update(runtime, backup_id, state="deleted", finished_at=utcnow())
    return deleted


def retention_victims(records: list[BackupRecord], days: int | None, keep_last: int | None,
                      now: dt.datetime) -> list[BackupRecord]:
    """Which complete backups fall outside the policy. A backup is kept if it is among the last
    ``keep_last`` OR younger than ``days``; the newest one is always kept."""
    ordered = sorted(records, key=lambda r: r.created_at, reverse=True)
    if not ordered or (days is None and keep_last is None):
        return []
    victims = []
    for index, record in enumerate(ordered):
        if index == 0:
            continue
        within_count = keep_last is not None and index < keep_last
        within_days = days is not None and record.created_at >= now - dt.timedelta(days=days)
        if not (within_count or within_days):
            victims.append(record)
    return victims


def apply_retention(runtime: Runtime, env: Environment, now: dt.datetime | None = None) -> list[str]:
    target = backup_target(env)
    listing = list_backups(runtime, env)
    victims = retention_victims(listing.usable, target.retention.days, target.retention.keep_last, now or utcnow())
    deleted = []
    for record in victims:
        delete_backup(runtime, env, record.id)
        deleted.append(record.id)
    if deleted:
        log.info("retention in %s deleted %s", env.name, ", ".join(deleted))
    return deleted
