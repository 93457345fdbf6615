"""Results of load tests and drills in the state store: written once per run, read by the next run
(to compare) and by the checklist (to judge how recent and how good the evidence is)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from bot import schema
from bot.state import as_utc, utcnow

if TYPE_CHECKING:
    from bot.context import Runtime

LOADTEST, DRILL_RESTORE, DRILL_POD = "loadtest", "drill_restore", "drill_pod"


@dataclass(frozen=True)
class RunRecord:
    id: str
    environment: str
    kind: str
    subject: str
    started_at: dt.datetime
    finished_at: dt.datetime
    passed: bool
    trigger: str
    created_by: str
    result: dict[str, Any]

    def age(self, now: dt.datetime | None = None) -> dt.timedelta:
        return (now or utcnow()) - self.finished_at


def save(runtime: Runtime, *, environment: str, kind: str, subject: str, started_at: dt.datetime, passed: bool,
         result: dict[str, Any], created_by: str, trigger: str = "manual") -> RunRecord:
    record = RunRecord(secrets.token_hex(6), environment, kind, subject[:255], started_at, utcnow(), passed,
                       trigger, created_by, result)
    with runtime.store.begin() as conn:
        conn.execute(insert(schema.readiness_runs).values(
            id=record.id, environment=environment, kind=kind, subject=record.subject, started_at=started_at,
            finished_at=record.finished_at, passed=int(passed), trigger=trigger, created_by=created_by,
            result=result,
        ))
    return record


def latest(runtime: Runtime, environment: str, kind: str, *, subject: str | None = None,
           exclude: str | None = None) -> RunRecord | None:
    t = schema.readiness_runs
    query = select(t).where(t.c.environment == environment, t.c.kind == kind)
    if subject is not None:
        query = query.where(t.c.subject == subject)
    if exclude is not None:
        query = query.where(t.c.id != exclude)
    with runtime.store.begin() as conn:
        row = conn.execute(query.order_by(t.c.finished_at.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return RunRecord(row["id"], row["environment"], row["kind"], row["subject"], as_utc(row["started_at"]),
                     as_utc(row["finished_at"]), bool(row["passed"]), row["trigger"], row["created_by"],
                     dict(row["result"] or {}))
