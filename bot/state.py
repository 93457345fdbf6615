"""The state store: SQLite by default, PostgreSQL by URL, behind one small interface.

Features read and write their own tables (bot/schema.py) through ``Store.begin()``; the generic
primitives every feature needs — claims for idempotency and leases for mutual exclusion — live here
so that they are implemented once, atomically, on both databases.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from bot import schema
from bot.errors import IntegrationError

log = logging.getLogger("milvus_chatops.state")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; treat them as the UTC we stored."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    description: str
    expires_at: dt.datetime


_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class _WriterTurns:
    """Writers of one process take turns on a lock that wakes the next one at once.

    SQLite lets one connection write at a time, and a connection that finds the database locked
    sleeps in SQLite's busy handler: 1, 2, 5, 10, 15, 20, 25 ms and so on, whether or not the lock
    came free meanwhile. In an alert storm the webhook's writer, the alert worker and the outbox all
    write at once, and those sleeps added up to a hundred milliseconds in front of a critical alert's
    first message. Here a transaction takes the turn at its first write and gives it back right after
    its commit or rollback; other processes (replicas) still meet SQLite's own busy handler.
    """

    def __init__(self, engine: Engine, wait_s: float = 30.0) -> None:
        # A plain lock: the pool may end a connection from another thread than the one that wrote.
        # (Two connections writing in one thread would deadlock in SQLite itself, turns or not.)
        self.lock = threading.Lock()
        self.wait_s = wait_s
        self.holders: set[int] = set()  # id() of the DBAPI connections holding a turn
        event.listen(engine, "before_cursor_execute", self._before_execute)
        dialect = engine.dialect
        for name in ("do_commit", "do_rollback", "do_close"):
            setattr(dialect, name, self._releasing(getattr(dialect, name)))

    def _before_execute(self, conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip()[:7].upper().startswith(_WRITE_VERBS):
            return
        key = id(conn.connection.dbapi_connection)
        if key in self.holders:
            return
        # Past the wait, go on without a turn: SQLite's own locking still keeps writes correct.
        if self.lock.acquire(timeout=self.wait_s):
            self.holders.add(key)

    def _releasing(self, end: Any) -> Any:
        def ended(dbapi_connection: Any) -> None:
            try:
                end(dbapi_connection)
            finally:
                # SQLAlchemy passes the pool's proxy here; the turn is held by the connection behind it.
                key = id(getattr(dbapi_connection, "dbapi_connection", dbapi_connection))
                if key in self.holders:
                    self.holders.discard(key)
                    self.lock.release()

        return ended


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = self._make_engine(url)
        self._sqlite = url.startswith("sqlite")

    @staticmethod
    def _make_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _WriterTurns(engine)

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # WAL lets the webhook write while the outbox worker reads; synchronous=FULL makes a
                # committed alert survive a power cut, which is what "stored durably" promises.
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)

    def migrate(self) -> list[str]:
        """Apply pending schema revisions (bot/migrations); returns the ids applied now."""
        from bot.migrations import upgrade

        try:
            return upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise IntegrationError(f"state store at {self.safe_url} cannot be upgraded", system="state") from exc

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def begin(self, *, durable: bool = True) -> Iterator[Connection]:
        """A transaction. ``durable=False`` (SQLite): its commit is not flushed to disk by itself.

        Every commit is safe from a crash of the bot either way. A power cut (or a kernel crash) can
        lose the last transactions committed without a flush, in the order they were committed, never
        one from the middle: WAL replays a prefix, and the next durable commit flushes everything
        before it. So a transaction may skip the flush when losing it together with everything after it
        is the same as the bot crashing just before it: the work it records is redone. It must not
        when something outside was told it happened (Alertmanager's 200, a Slack call about to be
        made). The flush costs little alone, but writers take turns, so in a storm every writer
        waited for every other writer's flush.
        """
        if durable or not self._sqlite:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            conn.commit()
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.commit()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    # -- claims: first writer wins, forever ---------------------------------------------------

    def claim(self, key: str, owner: str) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(schema.claims).values(key=key, owner=owner, claimed_at=utcnow()))
            return True
        except IntegrityError:
            return False

    def claim_owner(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.claims.c.owner).where(schema.claims.c.key == key)).first()
        return row[0] if row else None

    # -- leases: one holder at a time, until released or expired -------------------------------

    def acquire(self, name: str, owner: str, description: str, ttl: dt.timedelta) -> Lease | None:
        """Take the lease, or return None when someone else holds an unexpired one."""
        now = utcnow()
        table = schema.locks
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(delete(table).where(table.c.name == name, table.c.expires_at < now))
                    conn.execute(
                        insert(table).values(
                            name=name, owner=owner, description=description, acquired_at=now, expires_at=now + ttl
                        )
                    )
                return Lease(name, owner, description, now + ttl)
            except IntegrityError:
                return None
            except OperationalError:  # SQLite busy under contention: try again
                continue
        return None

    def hold(self, name: str, owner: str, description: str, ttl: dt.timedelta) -> bool:
        """Take the lease or extend our own, in one step: a worker that let go and re-took it would
        leave a gap in which another replica could start a second worker."""
        table = schema.locks
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                extended = conn.execute(
                    update(table)
                    .where(table.c.name == name, table.c.owner == owner)
                    .values(expires_at=now + ttl)
                ).rowcount
        except OperationalError:  # SQLite busy: the caller tries again on its next round
            return False
        return bool(extended) or self.acquire(name, owner, description, ttl) is not None

    def holder(self, name: str) -> Lease | None:
        table = schema.locks
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.name == name)).mappings().first()
        if not row or as_utc(row["expires_at"]) < utcnow():
            return None
        return Lease(row["name"], row["owner"], row["description"], as_utc(row["expires_at"]))

    def release(self, name: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(schema.locks).where(schema.locks.c.name == name, schema.locks.c.owner == owner))

    # -- a small namespaced key/value store for settings-like state ---------------------------

    def kv_get(self, namespace: str, key: str) -> Any:
        table = schema.kv
        with self.engine.connect() as conn:
            row = conn.execute(select(table.c.value).where(table.c.namespace == namespace, table.c.key == key)).first()
        return row[0] if row else None

    def kv_put(self, namespace: str, key: str, value: Any) -> None:
        table = schema.kv
        json.dumps(value)  # fail here, not inside the transaction, on values JSON cannot hold
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(table)
                .where(table.c.namespace == namespace, table.c.key == key)
                .values(value=value, updated_at=utcnow(), version=table.c.version + 1)
            ).rowcount
            if not changed:
                conn.execute(
                    insert(table).values(namespace=namespace, key=key, value=value, updated_at=utcnow(), version=1)
                )
