"""State-store schema migrations, run by Alembic on SQLite and PostgreSQL.

``upgrade(engine)`` is what start-up and ``milvus-chatops db upgrade`` call. It holds a lock for the
whole upgrade (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) so that two replicas
starting at once apply each revision once, and it runs every pending revision in one transaction, so
a failed upgrade leaves the database as it was.

A database made by a release before Alembic carries the old runner's ``schema_migrations`` table
instead of ``alembic_version``; its step ids are the ids of the first revisions here, so it is
stamped at the last step it had and upgraded from there. How to add a revision: docs/state-store.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("milvus_chatops.state")

HERE = Path(__file__).resolve().parent
# The hand-written runner's step ids, in order; the first revisions carry the same ids. (0007 to
# 0009 never shipped under the old runner, but databases made from main between them have them.)
LEGACY_STEPS = (
    "0001_core", "0002_outbox", "0003_job_runs", "0004_approvals", "0005_alerts", "0006_backups",
    "0007_outbox_priority", "0008_alert_storms", "0009_readiness_runs",
)  # fmt: skip
# Any constant shared by every replica; PostgreSQL advisory locks are keyed by a bigint.
_PG_LOCK_KEY = 0x6D696C767573  # "milvus"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


def current(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, target: str = "head") -> list[str]:
    """Apply every pending revision up to ``target``; returns the ids applied now, oldest first.
    (A target other than head is for tests that need a database as an older release left it.)"""
    from alembic import command

    # Alembic narrates each plugin and step at INFO; one line of ours below says what was applied.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    every = revisions()
    goal = every[-1] if target == "head" else target
    with _locked(engine) as conn:
        before = current(conn)
        if before is None:
            before = _adopt_legacy(conn)
        if before == goal:
            return []
        command.upgrade(alembic_config(conn), goal)
    applied = every[every.index(before) + 1 if before else 0 : every.index(goal) + 1]
    log.info("state store upgraded: %s", ", ".join(applied))
    return applied


def _adopt_legacy(conn: Connection) -> str | None:
    """Stamp a database made by the old runner at the last step it applied."""
    from alembic import command

    if not inspect(conn).has_table("schema_migrations"):
        return None
    done = {row[0] for row in conn.execute(text("SELECT id FROM schema_migrations"))}
    last = None
    for step in LEGACY_STEPS:
        if step not in done:
            break
        last = step
    if last is not None:
        command.stamp(alembic_config(conn), last)
        log.info("state store from before Alembic recognised at %s", last)
    return last


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    # An in-memory SQLite database exists only on its own connection: upgrade that one as it is.
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        # pysqlite starts transactions lazily and not for DDL; a separate engine whose BEGIN takes
        # the write lock at once makes the whole upgrade one transaction that one process runs.
        locked = create_engine(engine.url, connect_args={"timeout": 60, "isolation_level": None})

        @event.listens_for(locked, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        try:
            with locked.begin() as conn:
                yield conn
        finally:
            locked.dispose()
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        yield conn
