"""The audit log: one row per command, button press, modal, scheduled job and webhook action."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from bot import schema
from bot.state import Store, as_utc, utcnow


@dataclass(frozen=True)
class AuditEntry:
    at: dt.datetime
    user_id: str
    action: str
    kind: str
    environment: str | None
    arguments: dict[str, Any]
    outcome: str
    detail: str | None
    reference: str | None
    duration_ms: float


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(
        self,
        *,
        user_id: str,
        action: str,
        kind: str,
        environment: str | None,
        arguments: dict[str, Any],
        outcome: str,
        detail: str | None = None,
        reference: str | None = None,
        channel: str | None = None,
        duration_ms: float = 0.0,
    ) -> None:
        with self.store.begin() as conn:
            conn.execute(
                insert(schema.audit_log).values(
                    at=utcnow(),
                    user_id=user_id,
                    action=action[:200],
                    kind=kind,
                    environment=environment,
                    arguments=arguments,
                    outcome=outcome,
                    detail=(detail or "")[:2000] or None,
                    reference=reference,
                    channel=channel,
                    duration_ms=round(duration_ms, 2),
                )
            )

    def recent(
        self, *, environment: str | None = None, user_id: str | None = None, limit: int = 20
    ) -> list[AuditEntry]:
        t = schema.audit_log
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if environment:
            query = query.where(t.c.environment == environment)
        if user_id:
            query = query.where(t.c.user_id == user_id)
        with self.store.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AuditEntry(
                at=as_utc(r["at"]),
                user_id=r["user_id"],
                action=r["action"],
                kind=r["kind"],
                environment=r["environment"],
                arguments=r["arguments"],
                outcome=r["outcome"],
                detail=r["detail"],
                reference=r["reference"],
                duration_ms=r["duration_ms"],
            )
            for r in rows
        ]
