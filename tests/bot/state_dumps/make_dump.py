"""Write the SQL dumps the upgrade test loads: a state store as a past release left it, with data.

Run once per release whose upgrade path we keep testing, then commit the dumps; the test never runs
old code:

    .venv/bin/python tests/bot/state_dumps/make_dump.py 5d8cf9e

It takes that commit's bot/schema.py (and its migration steps) from git, builds the database with
them exactly as that release did, on SQLite and on a throwaway PostgreSQL, fills in a row or more of
every kind of state, and dumps both.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, insert

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
AT = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)


def old_schema(commit: str):  # type: ignore[no-untyped-def]
    source = subprocess.run(["git", "show", f"{commit}:bot/schema.py"], cwd=ROOT, check=True, capture_output=True)
    path = Path(tempfile.mkdtemp()) / "old_schema.py"
    path.write_bytes(source.stdout)
    spec = importlib.util.spec_from_file_location("old_schema", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fill(url: str, s) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    with engine.begin() as conn:
        s.schema_migrations.create(conn)
        for step_id, step in s.MIGRATIONS:
            step(conn)
            conn.execute(insert(s.schema_migrations).values(id=step_id, applied_at=AT))
        conn.execute(insert(s.audit_log), [
            dict(at=AT, user_id="U0ALICE", action="deploy prod", kind="command", environment="prod",
                 arguments={"version": "2.4.13"}, outcome="ok", detail="deployed 2.4.13", reference=None,
                 channel="C0OPS", duration_ms=81234.5),
            dict(at=AT + dt.timedelta(minutes=1), user_id="U0BOB", action="backup create", kind="command",
                 environment="prod", arguments={}, outcome="denied", detail="needs role operator",
                 reference=None, channel="C0OPS", duration_ms=3.2),
        ])
        conn.execute(insert(s.claims).values(key="approve:ap-old-1:U0CAROL", owner="U0CAROL", claimed_at=AT))
        conn.execute(insert(s.locks).values(name="deploy:prod", owner="U0ALICE", description="deploy of 2.4.13",
                                            acquired_at=AT, expires_at=AT + dt.timedelta(minutes=30)))
        conn.execute(insert(s.kv).values(namespace="alerts", key="muted:prod", value={"until": "2026-11-21"},
                                         updated_at=AT, version=3))
        conn.execute(insert(s.outbox).values(channel="C0OPS", op="post", ref="msg-old-1", thread_ref=None,
                                             payload={"text": "queued before the upgrade"}, dedupe_key="old-1",
                                             state="pending", attempts=0, not_before=AT, last_error=None,
                                             created_at=AT))
        conn.execute(insert(s.message_refs).values(ref="msg-old-0", channel="C0OPS", ts="1763631000.000100"))
        conn.execute(insert(s.job_runs).values(job_id="backup-nightly:prod", scheduled_for=AT, task="backup",
                                               owner="replica-a", started_at=AT, finished_at=AT, outcome="ok",
                                               summary="1 collection"))
        conn.execute(insert(s.approval_requests).values(
            id="ap-old-1", kind="deploy", environment="prod", title="Deploy Milvus 2.4.14 to prod",
            requester="U0ALICE", payload={"version": "2.4.14"}, payload_hash="ab" * 32,
            summary_blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "2.4.13 -> 2.4.14"}}],
            approvals_required=1, state="pending", channel="C0OPS", message_ref="msg-old-0", created_at=AT,
            expires_at=AT + dt.timedelta(days=3650), decided_at=None, decided_by=None, reason=None, result=None))
        conn.execute(insert(s.approval_votes).values(request_id="ap-old-1", user_id="U0CAROL", vote="approve",
                                                     payload_hash="cd" * 32, at=AT))
        conn.execute(insert(s.alert_notifications).values(
            dedupe_key="n" * 64, group_id="g-old-1", environment="prod", group_key='{}:{alertname="X"}',
            severity="critical", payload={"status": "firing"}, state="done", received_at=AT, processed_at=AT))
        conn.execute(insert(s.alert_groups).values(
            id="g-old-1", environment="prod", group_key='{}:{alertname="X"}', episode=1, channel="C0OPS",
            severity="critical", status="firing", alerts={}, group_labels={}, common_labels={},
            common_annotations={}, external_url=None, first_seen=AT, updated_at=AT, resolved_at=None,
            acked_by=None, acked_at=None, silences=[], last_notification_id=1))
        conn.execute(insert(s.backups).values(
            id="prod-20261120-0930", environment="prod", engine="logical", state="complete",
            collections=["docs"], rows=1000, bytes=48_128, location="s3://backups/prod-20261120-0930",
            created_at=AT, finished_at=AT, heartbeat_at=AT, created_by="U0ALICE", trigger="manual", error=None))
    engine.dispose()


def main(commit: str) -> None:
    s = old_schema(commit)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "state.db"
        fill(f"sqlite:///{db}", s)
        with sqlite3.connect(db) as conn:
            (HERE / f"{commit}.sqlite.sql").write_text("\n".join(conn.iterdump()) + "\n")
    sys.path.insert(0, str(ROOT))
    from tests.support.servers import postgres_bin_dir, start_postgres

    server = start_postgres()
    try:
        assert server.url and server.dsn
        fill(server.url, s)
        dump = subprocess.run(
            [str(postgres_bin_dir() / "pg_dump"), "--no-owner", "--no-privileges", "--inserts", server.dsn],
            check=True, capture_output=True, text=True,
        )
        # psql meta-commands (\\restrict) are not SQL; the test loads the dump through psycopg.
        sql = "\n".join(line for line in dump.stdout.splitlines() if not line.startswith("\\"))
        (HERE / f"{commit}.postgresql.sql").write_text(sql + "\n")
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1])
