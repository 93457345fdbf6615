"""Backup records in the state store, backup ids, and the liveness of the process writing a backup.

A record says who took a backup, why, and how it ended; the store (S3 or a directory) says whether it is
usable (a manifest). While a backup or a restore runs, its process holds a lease that a background
thread renews; a record whose lease has lapsed, or whose holder on this host has exited, belongs to a
dead process and is recovered (see recovery.py) instead of blocking new work.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update

from bot import blocks as bk
from bot import schema
from bot.config import BackupTarget, Environment
from bot.errors import Conflict, UsageError, UserError
from bot.state import as_utc, utcnow

if TYPE_CHECKING:
    from bot.context import Runtime

log = logging.getLogger("milvus_chatops.backup")

# Ids the bot generates: ``<env>-YYYYMMDD-HHMMSS-<hex>`` (logical engine; env names are [a-z][a-z0-9-]*),
# and what milvus-backup accepts as a name (letters, digits, underscores). Neither can hold a path.
LOGICAL_ID = re.compile(r"^(?P<env>[a-z][a-z0-9-]{0,30})-(?P<date>\d{8})-(?P<time>\d{6})-[0-9a-f]{4}$")
REMOTE_ID = re.compile(r"^[A-Za-z0-9_]{1,100}$")
ID_EXAMPLE = "prod-20260101-020000-ab12"

# A running backup or restore renews its lease this often; one not renewed for LEASE_TTL is dead.
LEASE_EVERY_S = 10.0
LEASE_TTL = dt.timedelta(seconds=60)
STALE_AFTER = dt.timedelta(minutes=10)


# -- ids -----------------------------------------------------------------------------------------------


def new_backup_id(env: str, now: dt.datetime | None = None) -> str:
    """``<env>-YYYYMMDD-HHMMSS-<hex>``: sortable, and names the environment it came from."""
    now = now or utcnow()
    return f"{env}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def env_of_backup_id(backup_id: str) -> str | None:
    match = LOGICAL_ID.fullmatch(backup_id)
    return match.group("env") if match else None


def check_backup_id(backup_id: str) -> str:
    """Refuse anything that is not an id the bot (or milvus-backup) could have made: ids become paths."""
    if LOGICAL_ID.fullmatch(backup_id) or REMOTE_ID.fullmatch(backup_id):
        return backup_id
    raise UsageError(
        f"{bk.code(backup_id[:120])} is not a backup id.",
        hint=f"Backup ids look like `{ID_EXAMPLE}`; `/milvus backup list <env>` shows them.",
    )


def check_belongs(env: Environment, backup_id: str) -> str:
    """A logical backup id names its environment; one of another environment is refused, so no command
    on ``env`` reads or deletes anything outside ``env``'s own prefix."""
    check_backup_id(backup_id)
    if backup_target(env).engine == "milvus-backup":
        if not REMOTE_ID.fullmatch(backup_id):
            raise UsageError(f"{bk.code(backup_id)} is not a milvus-backup backup name.",
                             hint=f"`/milvus backup list {env.name}` shows them.")
        return backup_id
    owner = env_of_backup_id(backup_id)
    if owner != env.name:
        raise UsageError(
            f"Backup {bk.code(backup_id)} is not a backup of `{env.name}`"
            + (f" (its id names `{owner}`)." if owner else "."),
            hint=f"`/milvus backup list {env.name}` shows the backups of `{env.name}`.",
        )
    return backup_id


def backup_dir(env: str, backup_id: str) -> str:
    """Where a logical backup's objects live, under its environment's own prefix."""
    match = LOGICAL_ID.fullmatch(backup_id)
    if not match or match.group("env") != env:
        raise UsageError(f"{bk.code(backup_id)} is not a backup of `{env}`.",
                         hint=f"`/milvus backup list {env}` shows them.")
    return f"{env}/{backup_id}"


def backup_target(env: Environment) -> BackupTarget:
    if env.backup is None:
        raise UserError(
            f"Backups are not configured for `{env.name}`.",
            hint="Add a `backup:` section (bucket or local_dir) to the environment in the bot's config.",
        )
    return env.backup


def ops_channel(runtime: Runtime, env: Environment) -> str | None:
    return runtime.config.channels_for(env).ops


def clashes(names: list[str], env: str) -> Conflict:
    """A restore would overwrite ``names``: refused unless the user says how."""
    listed = ", ".join(f"`{bk.escape(c)}`" for c in names)
    one = len(names) == 1
    return Conflict(
        f"{listed} already {'exists' if one else 'exist'} in `{env}`; nothing was restored.",
        hint=f"Add `--suffix _restored` to restore next to {'it' if one else 'them'}, "
        f"or `--drop-existing` to replace {'it' if one else 'them'}.",
    )


def short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text)[:1000]


# -- records -------------------------------------------------------------------------------------------


@dataclass
class BackupRecord:
    id: str
    environment: str
    engine: str
    state: str
    collections: list[str]
    rows: int
    bytes: int
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    location: str = ""
    created_by: str = ""
    trigger: str = "manual"
    error: str | None = None

    def as_data(self) -> dict[str, Any]:
        """The contract's shape for ``backup create`` / ``backup list``."""
        return {
            "id": self.id,
            "environment": self.environment,
            "engine": self.engine,
            "state": self.state,
            "collections": self.collections,
            "rows": self.rows,
            "bytes": self.bytes,
            "created_at": self.created_at.isoformat(),
        }

    @property
    def duration_s(self) -> float | None:
        return (self.finished_at - self.created_at).total_seconds() if self.finished_at else None


def _record_from_row(row: Any) -> BackupRecord:
    return BackupRecord(
        id=row["id"],
        environment=row["environment"],
        engine=row["engine"],
        state=row["state"],
        collections=list(row["collections"] or []),
        rows=int(row["rows"] or 0),
        bytes=int(row["bytes"] or 0),
        created_at=as_utc(row["created_at"]),
        finished_at=as_utc(row["finished_at"]) if row["finished_at"] else None,
        location=row["location"],
        created_by=row["created_by"],
        trigger=row["trigger"],
        error=row["error"],
    )


def db_get(runtime: Runtime, backup_id: str) -> BackupRecord | None:
    t = schema.backups
    with runtime.store.begin() as conn:
        row = conn.execute(select(t).where(t.c.id == backup_id)).mappings().first()
    return _record_from_row(row) if row else None


def db_rows(runtime: Runtime, env: str) -> list[BackupRecord]:
    t = schema.backups
    with runtime.store.begin() as conn:
        rows = conn.execute(select(t).where(t.c.environment == env).order_by(t.c.created_at.desc())).mappings()
        return [_record_from_row(r) for r in rows]


def db_update(runtime: Runtime, backup_id: str, **values: Any) -> None:
    t = schema.backups
    with runtime.store.begin() as conn:
        conn.execute(update(t).where(t.c.id == backup_id).values(**values))


def db_insert(runtime: Runtime, record: BackupRecord) -> None:
    with runtime.store.begin() as conn:
        conn.execute(
            insert(schema.backups).values(
                id=record.id,
                environment=record.environment,
                engine=record.engine,
                state=record.state,
                collections=record.collections,
                rows=record.rows,
                bytes=record.bytes,
                location=record.location,
                created_at=record.created_at,
                finished_at=record.finished_at,
                heartbeat_at=utcnow(),
                created_by=record.created_by,
                trigger=record.trigger,
                error=record.error,
            )
        )


# -- results ---------------------------------------------------------------------------------------------


@dataclass
class Listing:
    usable: list[BackupRecord]
    running: list[BackupRecord]
    incomplete: list[str]  # ids with objects but no manifest and no live writer


@dataclass
class VerifyReport:
    backup_id: str
    objects: int
    bytes: int
    problems: list[str]
    seconds: float
    engine: str = "logical"

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class CollectionResult:
    source: str
    target: str
    rows_expected: int
    rows_restored: int
    sampled: int
    sample_mismatches: list[str]
    seconds: float
    insert_seconds: float = 0.0  # of ``seconds``: creating the collection and inserting the rows


@dataclass
class RestoreReport:
    backup_id: str
    environment: str
    collections: list[CollectionResult]
    seconds: float
    bytes: int

    @property
    def rows(self) -> int:
        return sum(c.rows_restored for c in self.collections)

    def as_data(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "environment": self.environment,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "collections": [c.__dict__ for c in self.collections],
        }


# -- liveness of the writing process -----------------------------------------------------------------


def _start_ticks(pid: int) -> str:
    """The process' start time in clock ticks since boot (Linux), so a reused pid is not mistaken for it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _machine() -> str:
    """This host and pid namespace: only a process seen through the same ones can be checked by pid."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        namespace = "?"
    return f"{socket.gethostname()}/{namespace}"


def this_process() -> str:
    """How a lease names its holder: machine, pid and the pid's start time."""
    return f"{_machine()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _holder_gone(owner: str) -> bool:
    """True when ``owner`` is a process of this host that no longer runs (killed, crashed)."""
    machine, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if machine != _machine() or machine.endswith("/?") or not pid_text.isdigit():
        return False  # another host's process: only its lease expiry tells
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(started) and started != "?" and _start_ticks(pid) not in (started, "?")


def lease_state(runtime: Runtime, lease: str) -> bool | None:
    """Whether the process that took ``lease`` still runs: its lease is current and, when it ran on this
    host, the process is still there (so a ``kill -9`` is noticed at once, not when the lease expires).
    None when no lease was ever taken under that name (or it was released)."""
    t = schema.locks
    with runtime.store.begin() as conn:
        row = conn.execute(select(t.c.owner, t.c.expires_at).where(t.c.name == lease)).first()
    if row is None:
        return None
    return as_utc(row.expires_at) >= utcnow() and not _holder_gone(row.owner)


def writer_alive(runtime: Runtime, lease: str) -> bool:
    return bool(lease_state(runtime, lease))


def heartbeat_older_than(runtime: Runtime, backup_id: str, age: dt.timedelta) -> bool:
    t = schema.backups
    with runtime.store.begin() as conn:
        beat = conn.execute(select(t.c.heartbeat_at).where(t.c.id == backup_id)).scalar()
    return beat is None or as_utc(beat) < utcnow() - age


def backup_lease(backup_id: str) -> str:
    return f"backup:{backup_id}"


def is_stale(runtime: Runtime, backup_id: str, stale_after: dt.timedelta = STALE_AFTER) -> bool:
    """A running backup whose writer is gone, or (as a backstop) has not beaten for ``stale_after``."""
    alive = lease_state(runtime, backup_lease(backup_id))
    if alive is None:
        # No lease: a writer that only beats the row (a bot from before leases, mid-upgrade) or one that
        # died before taking it. The heartbeat decides, with the lease's own grace.
        alive = not heartbeat_older_than(runtime, backup_id, LEASE_TTL)
    return not alive or heartbeat_older_than(runtime, backup_id, stale_after)


@contextlib.contextmanager
def keepalive(runtime: Runtime, lease: str, description: str, backup_id: str | None = None) -> Iterator[None]:
    """Hold ``lease`` for this process while the block runs, renewed by a thread (so a long Milvus call
    cannot make a live backup look dead), and released at the end however the block ends."""
    store = runtime.store
    store.hold(lease, this_process(), description, LEASE_TTL)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_EVERY_S):
            try:
                store.hold(lease, this_process(), description, LEASE_TTL)
                if backup_id is not None:
                    db_update(runtime, backup_id, heartbeat_at=utcnow())
            except Exception:  # a state store hiccup: the next round tries again
                log.debug("renewing lease %s failed", lease, exc_info=True)

    thread = threading.Thread(target=renew, name=f"lease-{lease}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(Exception):
            store.release(lease, this_process())


def drop_lease(runtime: Runtime, lease: str) -> None:
    """Forget a dead holder's lease once its work has been recovered."""
    with runtime.store.begin() as conn:
        conn.execute(delete(schema.locks).where(schema.locks.c.name == lease))
