"""The Alertmanager webhook (``POST /alertmanager``): bearer token, version-4 JSON, durable store.

It answers 200 only after the notification's row has committed; a re-delivery of the same group state
hits the unique dedupe key and changes nothing. Alertmanager retries anything that is not 2xx, so a
crash before the commit loses nothing either. The worker (commands/alerts/worker.py) does the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from bot import schema
from bot.state import utcnow
from commands.alerts.groups import SEVERITY_RANK, group_id_for, highest_severity, resolve_environment, severity_of

if TYPE_CHECKING:
    from bot.context import Runtime

log = logging.getLogger("milvus_chatops.alerts")

MAX_BODY_BYTES = 5 * 1024 * 1024

# Intake wakes the worker in this process; other replicas find the rows on their next poll.
WAKE = threading.Event()
# Set with WAKE for emergency and critical groups: the worker looks at once instead of waiting for
# the next 50 ms tick, because those are the first thing an on-call person needs in a storm.
URGENT = threading.Event()
# Webhooks being stored right now in this process; the worker steps aside for them (see
# yield_to_intake), because Alertmanager is waiting on those answers and Slack is not.
_intake_inflight = 0
_intake_lock = threading.Lock()


def yield_to_intake(limit: float = 0.02) -> None:
    deadline = time.monotonic() + limit
    while _intake_inflight and not URGENT.is_set() and time.monotonic() < deadline:
        time.sleep(0.002)


class BadWebhook(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason




def _validate(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise BadWebhook(413, f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadWebhook(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadWebhook(400, "body must be a JSON object")
    if str(data.get("version")) != "4":
        raise BadWebhook(400, f"unsupported webhook version {data.get('version')!r}; expected \"4\"")
    if not isinstance(data.get("groupKey"), str) or not data["groupKey"]:
        raise BadWebhook(400, "groupKey is missing")
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise BadWebhook(400, "alerts must be a non-empty list")
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise BadWebhook(400, f"alerts[{index}] is not an object")
        if alert.get("status") not in ("firing", "resolved"):
            raise BadWebhook(400, f"alerts[{index}].status must be firing or resolved")
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise BadWebhook(400, f"alerts[{index}].labels must be a non-empty object")
        if not all(isinstance(v, str) for v in labels.values()):
            raise BadWebhook(400, f"alerts[{index}].labels values must be strings")
        if "annotations" in alert and not isinstance(alert["annotations"], dict):
            raise BadWebhook(400, f"alerts[{index}].annotations must be an object")
        if not isinstance(alert.get("fingerprint"), str) or not alert["fingerprint"]:
            # Alertmanager always sends one; derive a stable one from the labels otherwise.
            alert["fingerprint"] = hashlib.sha256(
                json.dumps(labels, sort_keys=True).encode()
            ).hexdigest()[:16]
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        if key in data and not isinstance(data[key], dict):
            raise BadWebhook(400, f"{key} must be an object")
    return data


def notification_dedupe_key(data: Mapping[str, Any]) -> str:
    """Same group and same alert states = the same notification, however often it is delivered."""
    states = sorted(
        (
            a["fingerprint"],
            a["status"],
            a.get("startsAt") or "",
            (a.get("endsAt") or "") if a["status"] == "resolved" else "",
        )
        for a in data["alerts"]
    )
    raw = json.dumps([data.get("receiver", ""), data["groupKey"], states], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


class _Pending:
    __slots__ = ("done", "error", "result", "values")

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.done = threading.Event()
        self.result: tuple[str, int | None] = ("", None)
        self.error: BaseException | None = None


class _NotificationWriter:
    """Group commit: webhooks arriving together share one transaction, so one fsync.

    Alertmanager sends many groups at once during an outage; with SQLite's synchronous=FULL each
    commit costs a disk flush, and committing them one by one queues every request behind the others.
    Each request still waits until the transaction holding its row has committed.
    """

    _writers: dict[int, _NotificationWriter] = {}
    _registry_lock = threading.Lock()

    def __init__(self, store: Any) -> None:
        self.store = store
        self.queue: queue.Queue[_Pending] = queue.Queue()
        self.lock = threading.Lock()
        self.running = False

    @classmethod
    def for_store(cls, store: Any) -> _NotificationWriter:
        with cls._registry_lock:
            writer = cls._writers.get(id(store))
            if writer is None or writer.store is not store:
                writer = cls._writers[id(store)] = cls(store)
            return writer

    def submit(self, values: dict[str, Any], timeout: float = 30.0) -> tuple[str, int | None]:
        item = _Pending(values)
        with self.lock:
            self.queue.put(item)
            if not self.running:
                self.running = True
                threading.Thread(target=self._run, name="alert-intake-writer", daemon=True).start()
        if not item.done.wait(timeout):
            raise TimeoutError("the state store did not commit the notification in time")
        if item.error is not None:
            raise item.error
        return item.result

    def _run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=5)
            except queue.Empty:
                with self.lock:
                    if self.queue.empty():
                        self.running = False
                        return
                continue
            batch = [first]
            while len(batch) < 200:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            results = self._insert(batch)
        except IntegrityError:
            # Another replica stored one of these keys a moment ago: fall back to one by one.
            results = []
            for item in batch:
                try:
                    results.extend(self._insert([item]))
                except IntegrityError:
                    results.append(("duplicate", None))
                except Exception as exc:
                    item.error = exc
                    results.append(("", None))
        except Exception as exc:
            for item in batch:
                item.error = exc
                item.done.set()
            return
        for item, result in zip(batch, results, strict=True):
            item.result = result
            item.done.set()

    def _insert(self, batch: list[_Pending]) -> list[tuple[str, int | None]]:
        t = schema.alert_notifications
        results: list[tuple[str, int | None]] = []
        with self.store.begin() as conn:
            keys = [item.values["dedupe_key"] for item in batch]
            seen = set(conn.execute(select(t.c.dedupe_key).where(t.c.dedupe_key.in_(keys))).scalars())
            for item in batch:
                key = item.values["dedupe_key"]
                if key in seen:
                    results.append(("duplicate", None))
                    continue
                seen.add(key)
                inserted = conn.execute(insert(t).values(**item.values)).inserted_primary_key
                results.append(("stored", int(inserted[0]) if inserted else None))
        return results


class AlertIntake:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            self._authorize(headers)
            data = _validate(body)
        except BadWebhook as exc:
            log.warning("alertmanager webhook refused: %s %s", exc.status, exc.reason)
            return exc.status, {"error": exc.reason}
        common = data.get("commonLabels") or {}
        label_sets = [common, *(a["labels"] for a in data["alerts"])]
        env = resolve_environment(self.runtime.config, label_sets)
        env_name = env.name if env else None
        severity = highest_severity(severity_of(a["labels"]) for a in data["alerts"])
        gid = group_id_for(env_name, data["groupKey"])
        values = {
            "dedupe_key": notification_dedupe_key(data),
            "group_id": gid,
            "environment": env_name,
            "group_key": data["groupKey"],
            "severity": severity,
            "payload": data,
            "state": "pending",
            "received_at": utcnow(),
        }
        global _intake_inflight
        with _intake_lock:
            _intake_inflight += 1
        try:
            outcome, notification_id = _NotificationWriter.for_store(self.runtime.store).submit(values)
        except Exception:
            # Not stored: a 5xx makes Alertmanager retry, which is what we want.
            log.exception("could not store an alertmanager notification for group %s", gid[:8])
            return 503, {"error": "the bot could not store the notification; Alertmanager will retry"}
        finally:
            with _intake_lock:
                _intake_inflight -= 1
        if outcome == "duplicate":
            return 200, {"status": "duplicate", "group": gid}
        if SEVERITY_RANK.get(severity, 9) <= SEVERITY_RANK["critical"]:
            URGENT.set()
        WAKE.set()
        return 200, {"status": "stored", "id": notification_id, "group": gid, "environment": env_name}

    def _authorize(self, headers: Mapping[str, str]) -> None:
        secret = self.runtime.settings.alertmanager_webhook_token
        if secret is None or not secret.get_secret_value():
            raise BadWebhook(
                503, "the bot has no ALERTMANAGER_WEBHOOK_TOKEN configured; refusing unauthenticated alerts"
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        auth = lowered.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if not auth or scheme.lower() != "bearer" or not token.strip():
            raise BadWebhook(401, "missing bearer token (Authorization: Bearer <token>)")
        if not hmac.compare_digest(token.strip().encode(), secret.get_secret_value().encode()):
            raise BadWebhook(403, "wrong bearer token")
