"""Recovering what a dead process left behind: backups still marked running, their partial objects,
``__restoring_`` collections of an interrupted restore, and objects of backups nobody finished.

A process that runs a backup or a restore holds a lease (records.keepalive). Once the lease has lapsed,
or its holder on this host has exited, the work is dead: its record is marked failed, its objects
removed and its temporary collections dropped. This runs when ``serve`` starts and every minute after
(a sweep), and inline before a new backup or restore, so a ``kill -9`` never blocks the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from bot import schema
from bot.config import Environment
from bot.state import as_utc, utcnow
from commands.backup.format import MANIFEST
from commands.backup.records import (
    STALE_AFTER,
    backup_dir,
    backup_lease,
    backup_target,
    db_get,
    db_rows,
    db_update,
    drop_lease,
    env_of_backup_id,
    is_stale,
    writer_alive,
)

if TYPE_CHECKING:
    from bot.context import Runtime
    from integrations.s3 import ObjectInfo

log = logging.getLogger("milvus_chatops.backup")

RESTORES = "backup-restores"  # kv namespace: restores in flight and the temporary collections they made
DIED = "the bot's process stopped while this backup was running; its partial objects were removed"


# -- backups -------------------------------------------------------------------------------------------


def reclaim_dead_backups(runtime: Runtime, env: Environment) -> list[str]:
    """Mark backups of ``env`` whose writer is gone as failed and remove their objects."""
    reclaimed = []
    for record in db_rows(runtime, env.name):
        # milvus-backup runs its backups itself: a dead bot does not stop them, and its listing tells.
        if record.state != "running" or record.engine != "logical" or not is_stale(runtime, record.id):
            continue
        if env_of_backup_id(record.id) == env.name:
            store = runtime.services.object_store(env)
            keys = [o.key for o in store.list(f"{backup_dir(env.name, record.id)}/")]
            manifest = f"{backup_dir(env.name, record.id)}/{MANIFEST}"
            if manifest in keys:
                continue  # it finished writing before it died; listing adopts it as complete
            if keys:
                store.delete(keys)
        db_update(runtime, record.id, state="failed", finished_at=utcnow(), error=record.error or DIED)
        drop_lease(runtime, backup_lease(record.id))
        reclaimed.append(record.id)
    if reclaimed:
        log.warning("recovered backups of %s whose process had stopped: %s", env.name, ", ".join(reclaimed))
    return reclaimed


def group_by_backup(objects: Iterable[ObjectInfo], env: str) -> dict[str, list[ObjectInfo]]:
    groups: dict[str, list[ObjectInfo]] = {}
    for obj in objects:
        parts = obj.key.split("/")
        # Only what our ids name: anything else under the prefix is not ours to list or remove.
        if len(parts) >= 3 and parts[0] == env and env_of_backup_id(parts[1]) == env:
            groups.setdefault(parts[1], []).append(obj)
    return groups


def cleanup_incomplete(runtime: Runtime, env: Environment, stale_after: dt.timedelta = STALE_AFTER) -> list[str]:
    """Delete the objects of backups that have no manifest and whose writer is gone."""
    target = backup_target(env)
    if target.engine != "logical":
        return []
    store = runtime.services.object_store(env)
    groups = group_by_backup(store.list(f"{env.name}/"), env.name)
    removed = []
    for backup_id, objects in groups.items():
        if any(o.key == f"{env.name}/{backup_id}/{MANIFEST}" for o in objects):
            continue
        record = db_get(runtime, backup_id)
        newest = max(o.last_modified for o in objects)
        if record is not None and record.state == "running" and not is_stale(runtime, backup_id, stale_after):
            continue
        if record is None and as_utc(newest) > utcnow() - stale_after:
            continue  # another bot's backup in progress, as far as we can tell
        store.delete([o.key for o in objects])
        if record is not None:
            db_update(runtime, backup_id, state="abandoned", finished_at=utcnow(),
                      error=record.error or "the backup stopped before its manifest was written")
        removed.append(backup_id)
    # Rows of dead backups that never wrote an object.
    for record in db_rows(runtime, env.name):
        if record.state == "running" and record.id not in groups and is_stale(runtime, record.id, stale_after):
            db_update(runtime, record.id, state="abandoned", finished_at=utcnow(),
                      error="the backup stopped before writing anything")
    if removed:
        log.info("removed incomplete backups of %s: %s", env.name, ", ".join(removed))
    return removed


# -- restores ------------------------------------------------------------------------------------------


def restore_lease(token: str) -> str:
    return f"restore:{token}"


def note_restore(runtime: Runtime, token: str, env: str, temps: list[str]) -> None:
    """Written before the first temporary collection is created, so a crash leaves a trail to them."""
    runtime.store.kv_put(RESTORES, token, {"env": env, "temps": temps, "started": utcnow().isoformat()})


def forget_restore(runtime: Runtime, token: str) -> None:
    with runtime.store.begin() as conn:
        conn.execute(delete(schema.kv).where(schema.kv.c.namespace == RESTORES, schema.kv.c.key == token))


def _restores(runtime: Runtime) -> list[tuple[str, dict[str, Any]]]:
    t = schema.kv
    with runtime.store.begin() as conn:
        return [(row.key, dict(row.value)) for row in conn.execute(select(t.c.key, t.c.value)
                                                                    .where(t.c.namespace == RESTORES))]


def reclaim_dead_restores(runtime: Runtime, env: str | None = None) -> list[str]:
    """Drop the temporary collections of restores whose process is gone; returns what was dropped."""
    dropped = []
    for token, entry in _restores(runtime):
        if (env is not None and entry.get("env") != env) or writer_alive(runtime, restore_lease(token)):
            continue
        environment = runtime.config.environments.get(str(entry.get("env")))
        try:
            if environment is not None:
                milvus = runtime.services.milvus_data(environment)
                existing = set(milvus.collections())
                for temp in entry.get("temps", []):
                    if temp in existing and "__restoring_" in temp:
                        milvus.drop(temp)
                        dropped.append(temp)
        except Exception:  # that Milvus is down: keep the trail, the next sweep tries again
            log.warning("could not drop the temporary collections of restore %s yet", token, exc_info=True)
            continue
        forget_restore(runtime, token)
        drop_lease(runtime, restore_lease(token))
    if dropped:
        log.warning("dropped temporary collections of restores whose process had stopped: %s", ", ".join(dropped))
    return dropped


# -- the sweep -------------------------------------------------------------------------------------------


def recover(runtime: Runtime) -> None:
    """The start-up and periodic sweep: every environment's dead backups, then dead restores."""
    for env in runtime.config.environments.values():
        if env.backup is None:
            continue
        try:
            reclaim_dead_backups(runtime, env)
        except Exception:
            log.warning("recovering dead backups of %s failed; the next sweep tries again", env.name, exc_info=True)
    try:
        reclaim_dead_restores(runtime)
    except Exception:
        log.warning("dropping collections of dead restores failed; the next sweep tries again", exc_info=True)
