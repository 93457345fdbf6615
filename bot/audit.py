"""The audit log: one row per command, button press, modal, scheduled job and webhook action."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from bot import schema
from bot.redact import redact, redact_text
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


# Caps applied before anything is stored: a row is evidence, not a dump, and a command line pasted
# with a megabyte of text must neither bloat the table nor fail the insert (PostgreSQL checks lengths).
MAX_ARGUMENTS_CHARS = 4000
MAX_DETAIL_CHARS = 2000
_COLUMN_CHARS = {"user_id": 64, "action": 200, "kind": 16, "environment": 64, "reference": 16, "channel": 64}


class AuditLog:
    """``secrets()`` lists the values to mask; every row is redacted and capped here, whoever writes it."""

    def __init__(self, store: Store, secrets: Callable[[], list[str]] = list) -> None:
        self.store = store
        self.secrets = secrets

    def _arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        redacted: dict[str, Any] = json.loads(json.dumps(redact(arguments, self.secrets()), default=str))
        dumped = json.dumps(redacted, ensure_ascii=False)
        if len(dumped) <= MAX_ARGUMENTS_CHARS:
            return redacted
        return {"truncated_from_chars": len(dumped), "preview": dumped[: MAX_ARGUMENTS_CHARS // 2]}

    def _detail(self, detail: str | None) -> str | None:
        return redact_text(detail, self.secrets())[:MAX_DETAIL_CHARS] if detail else None

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
    ) -> int:
        """Store one row; returns its id (``finish`` completes a row written before the work ran)."""
        columns = {
            name: value[:_COLUMN_CHARS[name]] if isinstance(value, str) else value
            for name, value in (
                ("user_id", user_id), ("action", action), ("kind", kind), ("environment", environment),
                ("reference", reference), ("channel", channel),
            )
        }
        with self.store.begin() as conn:
            result = conn.execute(
                insert(schema.audit_log).values(
                    at=utcnow(),
                    arguments=self._arguments(arguments),
                    outcome=outcome,
                    detail=self._detail(detail),
                    duration_ms=round(duration_ms, 2),
                    **columns,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish(
        self, row_id: int, *, outcome: str, detail: str | None = None, reference: str | None = None,
        duration_ms: float = 0.0,
    ) -> None:
        t = schema.audit_log
        with self.store.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == row_id)
                .values(
                    outcome=outcome,
                    detail=self._detail(detail),
                    reference=(reference or "")[: _COLUMN_CHARS["reference"]] or None,
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
