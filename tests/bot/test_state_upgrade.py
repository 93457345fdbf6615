"""The state store upgrades in place, through Alembic, on SQLite and PostgreSQL.

The dumps in state_dumps/ are databases as the previous release left them (made once by
state_dumps/make_dump.py from that release's schema in git history), with a row of every kind.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from bot import schema
from bot.migrations import revisions
from bot.state import Store
from tests.bot.test_cli import cli

DUMPS = Path(__file__).parent / "state_dumps"
PREVIOUS_RELEASE = "5d8cf9e"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_url")


def load_dump(url: str, release: str) -> None:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            conn.executescript((DUMPS / f"{release}.sqlite.sql").read_text())
        return
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute((DUMPS / f"{release}.postgresql.sql").read_text())


def schema_drift(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), schema.metadata)


def test_a_new_store_gets_every_revision_once_and_matches_the_models(db_url):
    store = Store(db_url)
    assert store.migrate() == revisions()
    assert store.migrate() == []
    # A model changed in bot/schema.py without a revision shows up here, with what to add.
    assert schema_drift(store) == []
    store.engine.dispose()


def test_the_previous_release_database_is_recognised_upgraded_and_keeps_its_data(db_url, tmp_path):
    load_dump(db_url, PREVIOUS_RELEASE)

    upgrade = cli("db", "upgrade", data_dir=tmp_path, env={"MILVUS_CHATOPS_DATABASE_URL": db_url})
    assert upgrade.returncode == 0, upgrade.stderr
    # Recognised at the old runner's last step: only what came after it runs, no table is re-created.
    assert "applied 0007_outbox_priority, 0008_alert_storms, 0009_readiness_runs, 0010_retire_runner;" in upgrade.stdout
    assert "0001_core" not in upgrade.stdout

    store = Store(db_url)
    assert schema_drift(store) == []
    assert not inspect(store.engine).has_table("schema_migrations")
    with store.begin() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in schema.metadata.tables}
        pending = conn.execute(text("SELECT state, title FROM approval_requests WHERE id = 'ap-old-1'")).one()
        backup = conn.execute(text("SELECT rows, bytes, collections FROM backups")).one()
        # Columns added since take the values that mean "as before" for the rows already there.
        queued = conn.execute(text("SELECT priority, state FROM outbox")).one()
        group = conn.execute(text("SELECT own_message, storm_id FROM alert_groups")).one()
    assert counts == {
        "audit_log": 2, "claims": 1, "locks": 1, "kv": 1, "outbox": 1, "message_refs": 1, "job_runs": 1,
        "approval_requests": 1, "approval_votes": 1, "alert_notifications": 1, "alert_groups": 1, "backups": 1,
        "alert_storms": 0, "readiness_runs": 0,
    }
    assert tuple(pending) == ("pending", "Deploy Milvus 2.4.14 to prod")
    assert backup[0] == 1000 and backup[1] == 48_128
    assert tuple(queued) == (0, "pending") and tuple(group) == (1, None)
    assert store.kv_get("alerts", "muted:prod") == {"until": "2026-11-21"}
    store.engine.dispose()

    # What an admin sees: the old history next to the new, in order, ids continuing past the old ones.
    audit = cli("run", "/milvus audit", "--json", data_dir=tmp_path, env={"MILVUS_CHATOPS_DATABASE_URL": db_url})
    assert audit.returncode == 0, audit.stderr
    entries = json.loads(audit.stdout)["data"]["entries"]
    assert [(e["user"], e["action"]) for e in entries[-2:]] == [("U0BOB", "backup create"), ("U0ALICE", "deploy prod")]


def test_replicas_starting_together_apply_each_revision_once(db_url):
    load_dump(db_url, PREVIOUS_RELEASE)
    stores = [Store(db_url) for _ in range(4)]
    applied: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def start(store: Store) -> None:
        barrier.wait()
        try:
            applied.append(store.migrate())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    new = ["0007_outbox_priority", "0008_alert_storms", "0009_readiness_runs", "0010_retire_runner"]
    assert sorted(applied) == [[], [], [], new]
    for store in stores:
        store.engine.dispose()
