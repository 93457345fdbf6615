"""The ``milvus-backup`` engine: the environment's milvus-backup server does the work
(integrations/milvus_backup.py); the bot adds records, schedules, retention, progress and approval."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import TYPE_CHECKING, Any

from bot import blocks as bk
from bot.config import Environment
from bot.errors import NotFound, UserError
from bot.state import utcnow
from commands.backup.progress import Progress
from commands.backup.records import (
    BackupRecord,
    CollectionResult,
    Listing,
    RestoreReport,
    VerifyReport,
    backup_lease,
    backup_target,
    db_insert,
    db_rows,
    db_update,
    keepalive,
    short,
)
from commands.backup.records import (
    clashes as clashes_error,
)

if TYPE_CHECKING:
    from bot.context import Runtime

REMOTE_TIMEOUT_S = 6 * 3600.0


def _remote_name(env: str, now: dt.datetime) -> str:
    # milvus-backup accepts letters, digits and underscores in backup names.
    return f"{env.replace('-', '_')}_{now:%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


def _remote_record(env: str, backup: Any, known: BackupRecord | None = None) -> BackupRecord:
    started = dt.datetime.fromtimestamp(backup.start_time_ms / 1000, dt.UTC) if backup.start_time_ms else (
        known.created_at if known else utcnow()
    )
    ended = dt.datetime.fromtimestamp(backup.end_time_ms / 1000, dt.UTC) if backup.end_time_ms else None
    return BackupRecord(
        id=backup.name, environment=env, engine="milvus-backup", state=backup.state,
        collections=backup.collections, rows=backup.rows, bytes=backup.size, created_at=started,
        finished_at=ended, location="milvus-backup", created_by=known.created_by if known else "",
        trigger=known.trigger if known else "found", error=backup.error or None,
    )


def remote_create(runtime: Runtime, env: Environment, collections: list[str] | None, *, user: str, trigger: str,
                  progress: Progress) -> BackupRecord:
    client = runtime.services.milvus_backup(env)
    now = utcnow()
    name = _remote_name(env.name, now)
    wanted = collections or backup_target(env).collections or []
    record = BackupRecord(name, env.name, "milvus-backup", "running", list(wanted), 0, 0, now,
                          location="milvus-backup", created_by=user, trigger=trigger)
    db_insert(runtime, record)

    def on_progress(backup: Any) -> None:
        progress(f"milvus-backup {name}: {backup.state}, {backup.progress}%")

    try:
        with keepalive(runtime, backup_lease(name), f"milvus-backup {name} of {env.name}", name):
            client.create(name, wanted or None)
            done = client.wait_backup(name, timeout_s=REMOTE_TIMEOUT_S, on_progress=on_progress)
    except BaseException as exc:
        db_update(runtime, name, state="failed", finished_at=utcnow(), error=short(exc))
        raise
    result = _remote_record(env.name, done, record)
    db_update(runtime, name, state="complete", rows=result.rows, bytes=result.bytes,
              collections=result.collections, finished_at=result.finished_at or utcnow())
    result.state = "complete"
    return result


def remote_list(runtime: Runtime, env: Environment) -> Listing:
    from integrations.milvus_backup import DONE, EXECUTING, INITIAL

    client = runtime.services.milvus_backup(env)
    known = {r.id: r for r in db_rows(runtime, env.name)}
    usable, running, incomplete = [], [], []
    for backup in client.list():
        if backup.state_code == DONE:
            record = _remote_record(env.name, backup, known.get(backup.name))
            record.state = "complete"
            usable.append(record)
        elif backup.state_code in (INITIAL, EXECUTING):
            running.append(_remote_record(env.name, backup, known.get(backup.name)))
        else:
            incomplete.append(backup.name)
    usable.sort(key=lambda r: r.created_at, reverse=True)
    return Listing(usable, running, sorted(incomplete))


def remote_verify(runtime: Runtime, env: Environment, backup_id: str) -> VerifyReport:
    """milvus-backup keeps no per-object hashes; for its backups only the server's state is checked."""
    backup = runtime.services.milvus_backup(env).get(backup_id)
    state = [] if backup.state == "complete" else [f"milvus-backup reports the backup as {backup.state}"]
    return VerifyReport(backup_id, 0, backup.size, state, 0.0, engine="milvus-backup")


def remote_check_restore(runtime: Runtime, env: Environment, backup_id: str, collections: list[str] | None,
                         suffix: str) -> list[tuple[str, str]]:
    backup = runtime.services.milvus_backup(env).get(backup_id)
    chosen = [c for c in backup.collections if not collections or c in collections]
    return [(c, c + suffix) for c in chosen]


def remote_restore(runtime: Runtime, source_env: Environment, backup_id: str, target_env: Environment, *,
                   collections: list[str] | None, suffix: str, drop_existing: bool,
                   progress: Progress) -> RestoreReport:
    if source_env.name != target_env.name:
        raise UserError(
            "milvus-backup restores into the Milvus it backed up; restoring into another environment needs "
            "the logical engine.",
        )
    client = runtime.services.milvus_backup(source_env)
    backup = client.get(backup_id)
    chosen = [c for c in backup.collections if not collections or c in collections]
    missing = [c for c in collections or [] if c not in backup.collections]
    if missing:
        raise NotFound(f"Backup `{bk.escape(backup_id)}` has no collection {bk.escape(', '.join(missing))}.",
                       hint=f"It holds {bk.escape(', '.join(backup.collections))}.")
    milvus = runtime.services.milvus_data(target_env)
    existing = set(milvus.collections())
    clashes = [c + suffix for c in chosen if c + suffix in existing]
    if clashes and not drop_existing:
        raise clashes_error(clashes, target_env.name)
    started = time.perf_counter()
    task = client.restore(backup_id, collections=chosen, suffix=suffix, drop_existing=drop_existing)
    client.wait_restore(task.id, timeout_s=REMOTE_TIMEOUT_S,
                        on_progress=lambda t: progress(f"milvus-backup restore {t.id}: {t.state}, {t.progress}%"))
    results = []
    for name in chosen:
        target = name + suffix
        milvus.load(target)
        restored = milvus.count(target)
        results.append(CollectionResult(name, target, restored, restored, 0, [], 0.0))
    return RestoreReport(backup_id, target_env.name, results, time.perf_counter() - started, backup.size)


def remote_delete(runtime: Runtime, env: Environment, backup_id: str) -> int:
    runtime.services.milvus_backup(env).delete(backup_id)
    db_update(runtime, backup_id, state="deleted", finished_at=utcnow())
    return 1
