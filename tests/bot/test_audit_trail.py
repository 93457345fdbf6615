"""The audit trail as an admin reads it and as a full disk or a hostile command line tests it: the real
console script in a subprocess, its SQLite state store, `/milvus audit --json` to read the rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.bot.test_cli import cli

BOT_TOKEN = "xoxb-1111111111-2222222222-abcdefghijklmnop"


def audit_rows(data_dir: Path) -> list[dict]:
    out = cli("run", "/milvus audit --limit 50", "--json", data_dir=data_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    return [e for e in json.loads(out.stdout)["data"]["entries"] if e["action"] != "audit"]


def test_a_command_that_fails_to_parse_is_stored_redacted_and_capped(tmp_path):
    typed = f"/milvus deploy local --set auth.password=hunter2 --token {BOT_TOKEN} --bogus AKIAABCDEFGHIJKLMNOP"
    assert cli("run", typed, data_dir=tmp_path).returncode == 1
    huge = "/milvus plan " + "x" * 100_000
    assert cli("run", huge, data_dir=tmp_path).returncode == 1

    rows = audit_rows(tmp_path)
    stored = json.dumps(rows)
    for secret in ("hunter2", BOT_TOKEN, "AKIAABCDEFGHIJKLMNOP"):
        assert secret not in stored
    assert "auth.password=***" in stored  # still readable: what was tried, not with what
    assert all(len(json.dumps(r["arguments"])) < 5000 for r in rows)
    assert any(r["arguments"].get("truncated_from_chars", 0) > 100_000 for r in rows)


def test_run_as_another_user_is_recorded_as_the_cli_not_as_slack(tmp_path):
    assert cli("run", "/milvus whoami", "--user", "U0SOMEONE", data_dir=tmp_path).returncode == 0
    (row,) = [r for r in audit_rows(tmp_path) if r["action"] == "whoami"]
    assert row["user"] == "U0SOMEONE" and row["kind"] == "cli"


def test_changes_are_refused_while_the_audit_log_cannot_be_written(tmp_path):
    assert cli("run", "/milvus whoami", data_dir=tmp_path).returncode == 0  # creates the state store
    # The database refuses audit rows the way a full disk does; everything else still works.
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute(
            "CREATE TRIGGER disk_full BEFORE INSERT ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )

    create = cli("run", "/milvus backup create local", "--json", data_dir=tmp_path)
    assert create.returncode == 2
    text = json.loads(create.stdout)["text"]
    assert "audit log cannot be written" in text and "nothing was changed" in text
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").rglob("*.json"))

    # Reading goes on: status and the plan answer although their rows are lost (and logged).
    assert cli("run", "/milvus plan --vectors 1M --dim 768", "--json", data_dir=tmp_path).returncode == 0
    listing = cli("run", "/milvus backup list local", "--json", data_dir=tmp_path)
    assert listing.returncode == 0 and json.loads(listing.stdout)["data"] == []
