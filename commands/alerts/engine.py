"""Alertmanager into Slack: webhook intake, one message per alert group, and real silences.

Flow, and why it cannot lose or double a notification:

1. ``AlertIntake.handle`` checks the bearer token, validates the version-4 JSON, works out the
   environment and the group id, and inserts one ``alert_notifications`` row in one transaction.
   It answers 200 only after that commit; a re-delivery of the same group state hits the unique
   dedupe key and changes nothing. Alertmanager retries anything that is not 2xx, so a crash before
   the commit loses nothing either.
2. ``AlertWorker`` takes pending rows, marks the batch it is about to work on (``working``), applies
   it to the group's state, and hands the message to the messenger (the durable outbox) with dedupe
   keys derived from the group, episode and batch; only then does it commit the group and mark the
   rows done. Killed in between, the next worker redoes exactly that batch from the same stored state,
   so the outbox's dedupe keys turn the second attempt into no-ops: each message reaches Slack once.
3. Buttons and ``/milvus ack|silence|unsilence`` create Alertmanager silences with exact matchers on
   each alert's labels; acknowledgement silences are expired by the bot when the group resolves.
   Silenced alerts send no "resolved" webhook, so the worker also asks Alertmanager which silenced
   alerts still exist (``reconcile``).

Environment of a group (first rule that matches, on the group's common labels, then each alert's):
  a. an ``environment`` or ``env`` label equal to an environment's name;
  b. ``prometheus_instance`` of an environment equal to the ``app_kubernetes_io_instance``,
     ``cluster``, ``milvus_name`` or ``release`` label (and ``prometheus_namespace``, when set, equal
     to the ``namespace`` label when the alert has one);
  c. ``prometheus_namespace`` alone (environments without ``prometheus_instance``) equal to ``namespace``;
  d. the only environment, when just one is configured.
Otherwise the group has no environment and goes to the global alert channels.
Channel by the group's highest severity: emergency -> alerts.emergency, alerts.critical, alerts.default;
critical -> alerts.critical, alerts.default; warning -> alerts.warning, alerts.default; anything else
-> alerts.default; then ``ops`` as the last resort.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import blocks as bk
from bot import schema
from bot.config import Config, Environment
from bot.errors import Conflict, IntegrationError, NotFound, UsageError, UserError
from bot.reply import Message
from bot.state import as_utc, utcnow
from bot.units import format_duration, parse_duration

if TYPE_CHECKING:
    from bot.context import Runtime
    from integrations.alertmanager import AlertmanagerClient

log = logging.getLogger("milvus_chatops.alerting")

MAX_BODY_BYTES = 5 * 1024 * 1024
SEVERITY_RANK = {"emergency": 0, "critical": 1, "warning": 2}
SEVERITY_CHANNELS = {
    "emergency": ("emergency", "critical", "default"),
    "critical": ("critical", "default"),
    "warning": ("warning", "default"),
}
SEVERITY_ICON = {
    "emergency": ":rotating_light:",
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
}
ENV_LABELS = ("environment", "env")
INSTANCE_LABELS = ("app_kubernetes_io_instance", "cluster", "milvus_name", "release")
# An acknowledgement lasts until the group resolves; this is only the backstop should the bot never
# see the resolution (Alertmanager needs an end time for every silence).
ACK_BACKSTOP = dt.timedelta(days=7)
MAX_SILENCE = dt.timedelta(days=30)
SILENCE_CHOICES = ("1h", "4h", "24h")
# Above this many firing alerts a group is silenced by its common labels (one silence) rather than
# one exact silence per alert.
MAX_PER_ALERT_SILENCES = 100
MAX_ALERT_LINES = 20
MAX_KEPT_RESOLVED = 200
ZERO_TIME = "0001-01-01T00:00:00Z"
# A crashed worker's lease blocks its successor this long at most.
LEASE_TTL_S = 15.0
NOTIFICATION_RETENTION = dt.timedelta(days=14)
GROUP_RETENTION = dt.timedelta(days=30)
# Groups folded per transaction; bounds how long a button press may wait for the group lock.
GROUPS_PER_ROUND = 25

# Intake wakes the worker in this process; other replicas find the rows on their next poll.
_WAKE = threading.Event()
# Changes to one group's state and the message rendered from it are enqueued in commit order.
_GROUP_LOCK = threading.RLock()
# Webhooks being stored right now in this process; the worker steps aside for them (see
# _yield_to_intake), because Alertmanager is waiting on those answers and Slack is not.
_intake_inflight = 0
_intake_lock = threading.Lock()


def _yield_to_intake(limit: float = 0.02) -> None:
    import time

    deadline = time.monotonic() + limit
    while _intake_inflight and time.monotonic() < deadline:
        time.sleep(0.002)


class BadWebhook(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# -- small helpers ------------------------------------------------------------------------------


def severity_of(labels: Mapping[str, Any]) -> str:
    return str(labels.get("severity") or "none").lower()[:32]


def highest_severity(severities: Iterable[str]) -> str:
    ranked = sorted(severities, key=lambda s: SEVERITY_RANK.get(s, 9))
    return ranked[0] if ranked else "none"


def group_id_for(env: str | None, group_key: str) -> str:
    return hashlib.sha256(f"{env or ''}\0{group_key}".encode()).hexdigest()[:32]


def parse_time(value: Any) -> dt.datetime | None:
    """Alertmanager's RFC 3339 times (nanoseconds, ``Z``); the zero time means "not set"."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    text = value.replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_silence_duration(text: str) -> dt.timedelta:
    return parse_duration(text, minimum=dt.timedelta(minutes=1), maximum=MAX_SILENCE,
                          range_message="A silence lasts between 1 minute and 30 days.")


def slack_time(value: dt.datetime) -> str:
    """A Slack date token: shown in each reader's time zone, with a UTC fallback."""
    value = as_utc(value)
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time}}|{value:%Y-%m-%d %H:%M} UTC>"


def safe_url(value: Any) -> str | None:
    """A link target we can put inside ``<url|text>``: http(s) only, no characters that end the link."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not re.match(r"^https?://", url, re.IGNORECASE) or len(url) > 1500:
        return None
    if any(c in url for c in "<>|\n\r\t "):
        return None
    return url.replace("&", "&amp;")


# -- routing ------------------------------------------------------------------------------------


def resolve_environment(config: Config, label_sets: list[Mapping[str, Any]]) -> Environment | None:
    envs = config.environments
    for labels in label_sets:
        for key in ENV_LABELS:
            value = labels.get(key)
            if isinstance(value, str) and value in envs:
                return envs[value]
    for labels in label_sets:
        instance_values = {str(labels[k]) for k in INSTANCE_LABELS if labels.get(k)}
        namespace = labels.get("namespace")
        matches = [
            env for env in envs.values()
            if env.prometheus_instance and env.prometheus_instance in instance_values
            and (not env.prometheus_namespace or namespace in (None, env.prometheus_namespace))
        ]
        if len(matches) > 1 and namespace:
            matches = [env for env in matches if env.prometheus_namespace == namespace] or matches
        if matches:
            return matches[0]
        if namespace:
            by_namespace = [
                env for env in envs.values()
                if env.prometheus_namespace == namespace and not env.prometheus_instance
            ]
            if len(by_namespace) == 1:
                return by_namespace[0]
    if len(envs) == 1:
        return next(iter(envs.values()))
    return None


def channel_for(config: Config, env: Environment | None, severity: str) -> str | None:
    channels = config.channels_for(env) if env else config.channels
    for key in SEVERITY_CHANNELS.get(severity, ("default",)):
        value = getattr(channels.alerts, key)
        if value:
            return str(value)
    return channels.ops


# -- intake -------------------------------------------------------------------------------------


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
        _WAKE.set()
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


# -- group state --------------------------------------------------------------------------------


@dataclass
class AlertGroup:
    id: str
    environment: str | None
    group_key: str
    episode: int
    channel: str | None
    severity: str
    status: str
    alerts: dict[str, dict[str, Any]]
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str | None
    first_seen: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None = None
    acked_by: str | None = None
    acked_at: dt.datetime | None = None
    silences: list[dict[str, Any]] = field(default_factory=list)
    last_notification_id: int = 0
    exists: bool = False

    @property
    def ref(self) -> str:
        return f"alert-group:{self.id}" if self.episode == 1 else f"alert-group:{self.id}:{self.episode}"

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def name(self) -> str:
        return str(
            self.common_labels.get("alertname")
            or self.group_labels.get("alertname")
            or ", ".join(f"{k}={v}" for k, v in sorted(self.group_labels.items()))
            or "alerts"
        )

    def firing(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts.values() if a["status"] == "firing"]

    def resolved(self) -> list[dict[str, Any]]:
        return [a for a in self.alerts.values() if a["status"] == "resolved"]

    def active_silences(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        now = now or utcnow()
        return [
            s for s in self.silences
            if s.get("state") == "active" and (parse_time(s.get("until")) or now) > now
        ]

    def started_at(self) -> dt.datetime | None:
        starts = [t for a in self.alerts.values() if (t := parse_time(a.get("startsAt")))]
        return min(starts) if starts else None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "group_key": self.group_key,
            "episode": self.episode,
            "channel": self.channel,
            "severity": self.severity,
            "status": self.status,
            "alerts": self.alerts,
            "group_labels": self.group_labels,
            "common_labels": self.common_labels,
            "common_annotations": self.common_annotations,
            "external_url": self.external_url,
            "first_seen": self.first_seen,
            "updated_at": self.updated_at,
            "resolved_at": self.resolved_at,
            "acked_by": self.acked_by,
            "acked_at": self.acked_at,
            "silences": self.silences,
            "last_notification_id": self.last_notification_id,
        }

    @classmethod
    def from_row(cls, row: Any) -> AlertGroup:
        return cls(
            id=row["id"],
            environment=row["environment"],
            group_key=row["group_key"],
            episode=row["episode"],
            channel=row["channel"],
            severity=row["severity"],
            status=row["status"],
            alerts=dict(row["alerts"] or {}),
            group_labels=dict(row["group_labels"] or {}),
            common_labels=dict(row["common_labels"] or {}),
            common_annotations=dict(row["common_annotations"] or {}),
            external_url=row["external_url"],
            first_seen=as_utc(row["first_seen"]),
            updated_at=as_utc(row["updated_at"]),
            resolved_at=as_utc(row["resolved_at"]) if row["resolved_at"] else None,
            acked_by=row["acked_by"],
            acked_at=as_utc(row["acked_at"]) if row["acked_at"] else None,
            silences=list(row["silences"] or []),
            last_notification_id=row["last_notification_id"],
            exists=True,
        )


@dataclass
class Change:
    fingerprint: str
    labels: dict[str, str]
    status: str  # firing | resolved
    new: bool


def _compact(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": alert["status"],
        "labels": dict(alert.get("labels") or {}),
        "annotations": {str(k): str(v) for k, v in (alert.get("annotations") or {}).items()},
        "startsAt": alert.get("startsAt") or "",
        "endsAt": alert.get("endsAt") or "",
        "generatorURL": alert.get("generatorURL") or "",
    }


def apply_notification(
    group: AlertGroup | None,
    data: Mapping[str, Any],
    *,
    group_id: str,
    env: str | None,
    channel: str | None,
    notification_id: int,
    received_at: dt.datetime,
) -> tuple[AlertGroup, list[Change], bool]:
    """Fold one notification into the group; returns (group, changes, whether a new message starts)."""
    incoming = {a["fingerprint"]: _compact(a) for a in data["alerts"]}
    any_firing = any(a["status"] == "firing" for a in incoming.values())
    new_episode = group is None or (group.status == "resolved" and any_firing)
    if group is None:
        group = AlertGroup(
            id=group_id, environment=env, group_key=str(data["groupKey"]), episode=1, channel=channel,
            severity="none", status="firing", alerts={}, group_labels={}, common_labels={},
            common_annotations={}, external_url=None, first_seen=received_at, updated_at=received_at,
        )
    elif new_episode:
        group.episode += 1
        group.alerts = {}
        group.first_seen = received_at
        group.resolved_at = None
        group.acked_by = None
        group.acked_at = None
        group.channel = channel or group.channel
        # Active silences stay listed: an acknowledgement whose expiry failed is still retried and shown.
        group.silences = [s for s in group.silences if s.get("state") == "active"]
    changes: list[Change] = []
    for fingerprint, alert in incoming.items():
        old = group.alerts.get(fingerprint)
        if old is None or old["status"] != alert["status"] or old.get("startsAt") != alert["startsAt"]:
            changes.append(Change(fingerprint, alert["labels"], alert["status"], old is None))
        group.alerts[fingerprint] = alert
    if not data.get("truncatedAlerts"):
        # A notification lists every alert of the group Alertmanager still holds; a firing alert that
        # is missing was resolved (and dropped) without us hearing about it.
        for fingerprint, alert in group.alerts.items():
            if fingerprint not in incoming and alert["status"] == "firing":
                alert["status"] = "resolved"
                alert["endsAt"] = received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
                changes.append(Change(fingerprint, alert["labels"], "resolved", False))
    _trim_resolved(group)
    group.group_labels = {str(k): str(v) for k, v in (data.get("groupLabels") or {}).items()}
    group.common_labels = {str(k): str(v) for k, v in (data.get("commonLabels") or {}).items()}
    group.common_annotations = {str(k): str(v) for k, v in (data.get("commonAnnotations") or {}).items()}
    group.external_url = data.get("externalURL") or group.external_url
    _refresh_status(group, received_at)
    group.last_notification_id = notification_id
    group.updated_at = received_at
    return group, changes, new_episode


def _trim_resolved(group: AlertGroup) -> None:
    resolved = [fp for fp, a in group.alerts.items() if a["status"] == "resolved"]
    for fingerprint in resolved[: max(len(resolved) - MAX_KEPT_RESOLVED, 0)]:
        del group.alerts[fingerprint]


def _refresh_status(group: AlertGroup, now: dt.datetime) -> None:
    firing = group.firing()
    group.severity = highest_severity(severity_of(a["labels"]) for a in (firing or group.alerts.values()))
    if firing:
        group.status = "firing"
        group.resolved_at = None
    else:
        group.status = "resolved"
        ends = [t for a in group.alerts.values() if (t := parse_time(a.get("endsAt")))]
        group.resolved_at = max(ends) if ends else now


# -- rendering ----------------------------------------------------------------------------------


def _label_text(labels: Mapping[str, str], skip: Iterable[str] = ()) -> str:
    skipped = set(skip)
    return ", ".join(f"{bk.escape(k)}={bk.escape(v)}" for k, v in sorted(labels.items()) if k not in skipped)


def _code(escaped: str) -> str:
    """Inline code around text that is already escaped; a backtick in a label cannot end it early."""
    return "`" + escaped.replace("`", "'") + "`"


def _alert_line(alert: Mapping[str, Any], common: Mapping[str, str], common_annotations: Mapping[str, str]) -> str:
    icon = ":red_circle:" if alert["status"] == "firing" else ":large_green_circle:"
    distinct = _label_text(alert["labels"], skip=[*common, "alertname", "severity"])
    summary = alert["annotations"].get("summary") or alert["annotations"].get("description") or ""
    if summary == common_annotations.get("summary"):
        summary = ""
    parts = [icon]
    if distinct:
        parts.append(_code(bk.truncate(distinct, 300)))
    if summary:
        parts.append(bk.truncate(bk.escape(summary), 300))
    started = parse_time(alert.get("startsAt"))
    if alert["status"] == "firing" and started:
        parts.append(f"(since {slack_time(started)})")
    elif alert["status"] == "resolved":
        ended = parse_time(alert.get("endsAt"))
        if ended:
            parts.append(f"(resolved {slack_time(ended)})")
    if len(parts) == 1:
        parts.append(bk.escape(alert["labels"].get("alertname", "alert")))
    return " ".join(parts)


def _links(group: AlertGroup) -> list[str]:
    alerts = list(group.alerts.values())
    runbook = group.common_annotations.get("runbook_url") or next(
        (a["annotations"].get("runbook_url") for a in alerts if a["annotations"].get("runbook_url")), None
    )
    generator = next((a.get("generatorURL") for a in alerts if a.get("generatorURL")), None)
    links = []
    if url := safe_url(runbook):
        links.append(f":book: <{url}|Runbook>")
    if url := safe_url(generator):
        links.append(f":chart_with_upwards_trend: <{url}|Source query>")
    if url := safe_url(group.external_url):
        links.append(f":bell: <{url}|Alertmanager>")
    return links


def render_group(group: AlertGroup, now: dt.datetime | None = None) -> Message:
    now = now or utcnow()
    firing, resolved = group.firing(), group.resolved()
    env_text = group.environment or "no environment"
    name = group.name
    if group.status == "resolved":
        title = f":white_check_mark: RESOLVED: {name}"
        status_line = ":large_green_circle: *Resolved*"
        if group.resolved_at:
            status_line += f" {slack_time(group.resolved_at)}"
            started = group.started_at()
            if started:
                status_line += f", after {format_duration(group.resolved_at - started)}"
    else:
        icon = SEVERITY_ICON.get(group.severity, ":large_blue_circle:")
        title = f"{icon} FIRING ({len(firing)}): {name}"
        started = group.started_at()
        status_line = f"{icon} *Firing*: {len(firing)} alert(s)"
        if resolved:
            status_line += f", {len(resolved)} resolved"
        if started:
            status_line += f", since {slack_time(started)}"
    summary = group.common_annotations.get("summary") or group.common_annotations.get("description")
    lines = [status_line]
    if summary:
        lines.append(bk.escape(summary))
    description = group.common_annotations.get("description")
    if description and description != summary:
        lines.append(bk.truncate(bk.escape(description), 1000))
    blocks: list[dict[str, Any]] = [bk.header(title), bk.section("\n".join(lines))]

    state_bits = []
    if group.acked_by:
        acked = f":eyes: Acknowledged by <@{bk.escape(group.acked_by)}>"
        if group.acked_at:
            acked += f" {slack_time(group.acked_at)}"
        state_bits.append(acked)
    timed = [s for s in group.active_silences(now) if s.get("kind") == "timed"]
    if timed:
        until = max(parse_time(s.get("until")) or now for s in timed)
        by = timed[-1].get("by", "")
        state_bits.append(f":no_bell: Silenced until {slack_time(until)} by <@{bk.escape(by)}>")
    fields = [
        f"*Environment*\n{bk.escape(env_text)}",
        f"*Severity*\n{bk.escape(group.severity)}",
        f"*Group*\n`{group.short_id}`",
    ]
    if state_bits:
        fields.append("*State*\n" + "\n".join(state_bits))
    blocks.append(bk.fields(fields))

    common = _label_text(group.common_labels, skip=["alertname", "severity"])
    if common:
        blocks.append(bk.context(f"Labels: {bk.truncate(common, 2500)}"))

    ordered = sorted(firing, key=lambda a: a.get("startsAt", "")) + sorted(
        resolved, key=lambda a: a.get("endsAt", ""), reverse=True
    )
    if len(group.alerts) > 1 or (ordered and _label_text(ordered[0]["labels"], skip=[*group.common_labels])):
        shown = ordered[:MAX_ALERT_LINES]
        alert_lines = [_alert_line(a, group.common_labels, group.common_annotations) for a in shown]
        chunk: list[str] = []
        size = 0
        for line in alert_lines:
            if chunk and size + len(line) + 1 > 2800:
                blocks.append(bk.section("\n".join(chunk)))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        if chunk:
            blocks.append(bk.section("\n".join(chunk)))
        hidden = ordered[MAX_ALERT_LINES:]
        if hidden:
            hidden_firing = sum(1 for a in hidden if a["status"] == "firing")
            blocks.append(bk.context(
                f"…and {len(hidden)} more alert(s) not listed ({hidden_firing} firing, "
                f"{len(hidden) - hidden_firing} resolved). `/milvus alerts` shows the group's totals."
            ))

    links = _links(group)
    if links:
        blocks.append(bk.context("   ".join(links)))

    value = {"env": group.environment, "group": group.id, "episode": group.episode}
    buttons = []
    if group.status == "firing":
        if not group.acked_by:
            buttons.append(bk.button("Acknowledge", "alert_ack", value, style="primary"))
        for choice in SILENCE_CHOICES:
            buttons.append(bk.button(f"Silence {choice}", f"alert_silence:{choice}", {**value, "duration": choice}))
    if group.active_silences(now):
        buttons.append(bk.button("Unsilence", "alert_unsilence", value, style="danger"))
    if buttons:
        blocks.append(bk.actions(*buttons, block_id=f"alert:{group.short_id}:{group.episode}"))

    state = "RESOLVED" if group.status == "resolved" else f"FIRING:{len(firing)}"
    text = f"[{state}] {bk.escape(name)} ({bk.escape(env_text)}, {bk.escape(group.severity)})"
    if summary:
        text += f": {bk.truncate(bk.escape(summary), 500)}"
    return Message(text=text, blocks=bk.fit_blocks(blocks))


def render_changes(group: AlertGroup, changes: list[Change]) -> Message:
    """The thread note for one batch of changes: what fired, what resolved."""
    fired = [c for c in changes if c.status == "firing"]
    gone = [c for c in changes if c.status == "resolved"]
    parts = []
    if fired:
        parts.append(f":red_circle: {len(fired)} firing")
    if gone:
        parts.append(f":large_green_circle: {len(gone)} resolved")
    head = ", ".join(parts) or "updated"
    if group.status == "resolved":
        head += " — the group is resolved"
    lines = [head]
    skip = [*group.common_labels, "alertname", "severity"]
    for change in changes[:10]:
        labels = _label_text(change.labels, skip=skip) or bk.escape(change.labels.get("alertname", "alert"))
        lines.append(f"• {change.status}: {_code(bk.truncate(labels, 200))}")
    if len(changes) > 10:
        lines.append(f"…and {len(changes) - 10} more")
    text = "\n".join(lines)
    return Message(text=text, blocks=[bk.section(text)])


# -- storage ------------------------------------------------------------------------------------


def load_group(runtime: Runtime, group_id: str) -> AlertGroup | None:
    """The group as last recorded. The lock makes a reader wait for a round in progress in this
    process, whose messages may already be in Slack before its groups are committed."""
    with _GROUP_LOCK, runtime.store.begin() as conn:
        row = conn.execute(select(schema.alert_groups).where(schema.alert_groups.c.id == group_id)).mappings().first()
    return AlertGroup.from_row(row) if row else None


def _save_group(conn: Any, group: AlertGroup) -> None:
    t = schema.alert_groups
    values = group.row()
    if group.exists:
        conn.execute(update(t).where(t.c.id == group.id).values(**values))
    else:
        conn.execute(insert(t).values(**values))
        group.exists = True


def load_groups(runtime: Runtime, group_ids: list[str]) -> dict[str, AlertGroup]:
    t = schema.alert_groups
    with runtime.store.begin() as conn:
        rows = conn.execute(select(t).where(t.c.id.in_(group_ids))).mappings().all()
    return {r["id"]: AlertGroup.from_row(r) for r in rows}


def list_groups(
    runtime: Runtime, *, environment: str | None = None, include_resolved: bool = False
) -> list[AlertGroup]:
    t = schema.alert_groups
    query = select(t)
    if not include_resolved:
        query = query.where(t.c.status == "firing")
    if environment is not None:
        query = query.where(t.c.environment == environment)
    with _GROUP_LOCK, runtime.store.begin() as conn:
        rows = conn.execute(query).mappings().all()
    groups = [AlertGroup.from_row(r) for r in rows]
    groups.sort(key=lambda g: (g.status != "firing", SEVERITY_RANK.get(g.severity, 9), g.first_seen))
    return groups


def recent_groups(runtime: Runtime, *, since: dt.datetime) -> list[AlertGroup]:
    t = schema.alert_groups
    with runtime.store.begin() as conn:
        rows = conn.execute(select(t).where(t.c.updated_at >= since)).mappings().all()
    return [AlertGroup.from_row(r) for r in rows]


def find_group(runtime: Runtime, query: str) -> AlertGroup:
    """A group by id prefix, alert name or fingerprint; firing groups win over resolved ones."""
    text = query.strip()
    if not text:
        raise UsageError("Name the alert or group.", hint="Use the group id shown on the message, e.g. `a1b2c3d4`.")
    groups = list_groups(runtime, include_resolved=True)
    by_id = [g for g in groups if len(text) >= 4 and g.id.startswith(text.lower())]
    candidates = by_id or [g for g in groups if g.name.lower() == text.lower()] or [
        g for g in groups if text in g.alerts
    ]
    firing = [g for g in candidates if g.status == "firing"]
    candidates = firing or candidates
    if not candidates:
        raise NotFound(f"No alert group matches `{bk.escape(text)}`.", hint="`/milvus alerts` lists the firing groups.")
    if len(candidates) > 1:
        listed = ", ".join(f"`{g.short_id}` ({bk.escape(g.environment or '-')})" for g in candidates[:10])
        raise UsageError(f"`{bk.escape(text)}` matches {len(candidates)} groups: {listed}.", hint="Name one by its id.")
    return candidates[0]


# -- the worker ---------------------------------------------------------------------------------


class AlertWorker:
    """Turns stored notifications into messages, and keeps silenced groups in step with Alertmanager."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        poll_interval: float = 0.5,
        reconcile_interval: float = 30.0,
        missing_confirmations: int = 2,
        settle: float = 1.0,
        max_wait: float = 10.0,
        owner: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.poll_interval = poll_interval
        # A group already in Slack is re-rendered once its notifications have paused for ``settle``
        # seconds (at most ``max_wait`` after the first): during a storm each group then costs one
        # update and one thread note instead of one per notification. New groups post at once.
        self.settle = settle
        self.max_wait = max_wait
        self.reconcile_interval = reconcile_interval
        self.missing_confirmations = missing_confirmations
        self.owner = owner or f"alerts-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._missing: dict[tuple[str, str], int] = {}
        self._next_reconcile = 0.0
        self._lease_until = 0.0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alert-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        _WAKE.set()
        if self._thread:
            self._thread.join(timeout)
        self.runtime.store.release("alert-worker", self.owner)
        self._lease_until = 0.0

    def _run(self) -> None:
        import time

        while not self._stop.is_set():
            try:
                did = self.run_once()
                if time.monotonic() >= self._next_reconcile:
                    self.reconcile()
                    self._next_reconcile = time.monotonic() + self.reconcile_interval
            except Exception:
                log.exception("alert worker iteration failed; retrying")
                did = 0
            if not did:
                _WAKE.wait(self.poll_interval)
                _WAKE.clear()
                # Webhooks wake us constantly in a storm; look at most every 50 ms.
                self._stop.wait(0.05)

    def run_once(self, limit: int = 500) -> int:
        """Process pending notifications; returns how many were handled."""
        store = self.runtime.store
        if not self._hold_lease():
            return 0
        t = schema.alert_notifications
        # Headers first: in a storm most rounds only find groups still settling, and the payloads
        # are the bulk of each row.
        with store.begin() as conn:
            heads = conn.execute(
                select(t.c.id, t.c.group_id, t.c.state, t.c.severity, t.c.received_at)
                .where(t.c.state.in_(("pending", "working"))).order_by(t.c.id).limit(limit)
            ).mappings().all()
        if not heads:
            return 0
        chosen = self._choose(heads)
        if not chosen:
            return 0
        with store.begin() as conn:
            rows = conn.execute(select(t).where(t.c.id.in_(chosen)).order_by(t.c.id)).mappings().all()
        batches: dict[str, list[Any]] = {}
        for row in rows:
            batches.setdefault(row["group_id"], []).append(row)
        order = sorted(
            batches.values(),
            key=lambda rs: (SEVERITY_RANK.get(highest_severity(r["severity"] for r in rs), 9), rs[0]["id"]),
        )
        handled = 0
        for start in range(0, len(order), GROUPS_PER_ROUND):
            if self._stop.is_set():
                break
            chunk = order[start : start + GROUPS_PER_ROUND]
            self._process_round(chunk)
            handled += sum(len(rows) for rows in chunk)
        return handled

    def _choose(self, heads: Iterable[Any]) -> list[int]:
        """Ids of the rows to process this round, by group."""
        batches: dict[str, list[Any]] = {}
        for row in heads:
            batches.setdefault(row["group_id"], []).append(row)
        # A batch interrupted by a crash is redone exactly as it was, so its dedupe keys repeat.
        for gid, group_rows in batches.items():
            working = [r for r in group_rows if r["state"] == "working"]
            batches[gid] = working or group_rows
        for gid in self._settling(batches):
            del batches[gid]
        return [r["id"] for group_rows in batches.values() for r in group_rows]

    def _hold_lease(self) -> bool:
        """One worker across replicas, so two never render the same group from different states.

        Renewed well before it expires rather than taken per round: each take is a write transaction,
        and those compete with the webhook for SQLite's single writer.
        """
        import time

        if time.monotonic() < self._lease_until - LEASE_TTL_S / 2:
            return True
        if not self.runtime.store.hold(
            "alert-worker", self.owner, "turns alert notifications into Slack messages",
            dt.timedelta(seconds=LEASE_TTL_S),
        ):
            return False
        self._lease_until = time.monotonic() + LEASE_TTL_S
        return True

    def _settling(self, batches: dict[str, list[Any]]) -> list[str]:
        """Groups already in Slack whose notifications are still arriving: wait for them to pause."""
        if self.settle <= 0:
            return []
        g = schema.alert_groups
        with self.runtime.store.begin() as conn:
            firing = set(
                conn.execute(select(g.c.id).where(g.c.id.in_(list(batches)), g.c.status == "firing")).scalars()
            )
        now = utcnow()
        waiting = []
        for gid, rows in batches.items():
            if gid not in firing or any(r["state"] == "working" for r in rows):
                continue
            newest = max(as_utc(r["received_at"]) for r in rows)
            oldest = min(as_utc(r["received_at"]) for r in rows)
            if (now - newest).total_seconds() < self.settle and (now - oldest).total_seconds() < self.max_wait:
                waiting.append(gid)
        return waiting

    def _process_round(self, batches: list[list[Any]]) -> None:
        """Fold each group's batch into its state and queue its messages; record them all at once.

        Rows are marked ``working`` first and ``done`` with the group states in one transaction at the
        end: fewer write transactions leave SQLite's single writer free for the webhook, and a crash in
        between redoes exactly these batches (the outbox dedupe keys then make the redo a no-op).
        """
        runtime = self.runtime
        t = schema.alert_notifications
        pending = [r["id"] for rows in batches for r in rows if r["state"] == "pending"]
        if pending:
            with runtime.store.begin() as conn:
                conn.execute(update(t).where(t.c.id.in_(pending)).values(state="working"))
        done: list[AlertGroup] = []
        failed: list[int] = []
        with _GROUP_LOCK:
            known = load_groups(runtime, [rows[0]["group_id"] for rows in batches])
            for rows in batches:
                _yield_to_intake()
                try:
                    done.append(self._fold(known.get(rows[0]["group_id"]), rows))
                except Exception:
                    # One bad group must not hold up every other alert: park its rows, loudly.
                    log.exception("alert group %s could not be processed; its notifications are parked as "
                                  "'failed' (ids %s)", rows[0]["group_id"][:8], [r["id"] for r in rows])
                    failed.extend(r["id"] for r in rows)
            with runtime.store.begin() as conn:
                for group in done:
                    _save_group(conn, group)
                ids = [r["id"] for rows in batches for r in rows if r["id"] not in failed]
                conn.execute(update(t).where(t.c.id.in_(ids)).values(state="done", processed_at=utcnow()))
                if failed:
                    conn.execute(update(t).where(t.c.id.in_(failed)).values(state="failed", processed_at=utcnow()))
        for group in done:
            if stale_acks(group):
                expire_ack_silences(runtime, group.id, reason="the alerts resolved")

    def _fold(self, group: AlertGroup | None, rows: list[Any]) -> AlertGroup:
        runtime = self.runtime
        gid = rows[0]["group_id"]
        env_name = rows[0]["environment"]
        env = runtime.config.environments.get(env_name) if env_name else None
        changes: list[Change] = []
        post_needed = False
        last_id = 0
        for row in rows:
            payload = row["payload"]
            starts_episode = group is not None and group.status == "resolved" and any(
                a["status"] == "firing" for a in payload["alerts"]
            )
            if starts_episode and group is not None and (changes or post_needed):
                # The previous episode ended within this batch: finish its message first.
                self._emit(group, changes, post_needed, last_id)
                changes, post_needed = [], False
            severity = highest_severity(
                [row["severity"], *([group.severity] if group and group.status == "firing" else [])]
            )
            group, new_changes, new_episode = apply_notification(
                group, payload, group_id=gid, env=env_name,
                channel=channel_for(runtime.config, env, severity),
                notification_id=row["id"], received_at=as_utc(row["received_at"]),
            )
            if new_episode:
                post_needed, changes = True, []
            else:
                changes.extend(new_changes)
            last_id = row["id"]
        assert group is not None
        self._emit(group, changes, post_needed, last_id)
        return group

    def _emit(self, group: AlertGroup, changes: list[Change], post_needed: bool, last_id: int) -> None:
        messenger = self.runtime.messenger
        if not group.channel:
            log.error("alert group %s (%s) has no channel: configure channels.alerts", group.short_id, group.name)
            return
        message = render_group(group)
        if post_needed:
            messenger.post(group.channel, message, ref=group.ref, dedupe_key=f"alert-post:{group.id}:{group.episode}")
            return
        messenger.update(group.ref, message)
        ts_of = getattr(messenger, "ts_of", None)
        if changes and callable(ts_of) and ts_of(group.ref) is None:
            # The message has not reached Slack yet: it will show these changes when it does, and a
            # thread note about a message nobody has seen is noise (and costs a post slot).
            changes = []
        if changes:
            messenger.post(
                group.channel, render_changes(group, changes), thread_ref=group.ref,
                dedupe_key=f"alert-note:{group.id}:{group.episode}:{last_id}",
            )

    # -- keeping silenced groups honest --------------------------------------------------------

    def reconcile(self) -> None:
        """Silenced alerts send no resolved webhook: ask Alertmanager which of them still exist.

        Also retries expiring acknowledgement silences whose alerts resolved while Alertmanager was
        unreachable, and refreshes messages whose timed silence has run out.
        """
        if not self._hold_lease():
            return
        now = utcnow()
        self._prune(now)
        held_by_env: dict[str, set[Any] | None] = {}
        for group in recent_groups(self.runtime, since=now - ACK_BACKSTOP - dt.timedelta(days=1)):
            if not group.silences or group.environment is None:
                continue
            if stale_acks(group):
                expire_ack_silences(self.runtime, group.id, reason="the alerts resolved")
            if group.status != "firing":
                continue
            ran_out = [
                s for s in group.silences
                if s.get("state") == "active" and (parse_time(s.get("until")) or now) <= now
            ]
            if not group.active_silences(now) and not ran_out:
                continue
            if group.environment not in held_by_env:
                # One listing per environment and pass; None marks an Alertmanager we could not ask.
                try:
                    client = alertmanager_for(self.runtime, group.environment)
                    held_by_env[group.environment] = {a.get("fingerprint") for a in client.list_alerts()}
                except (IntegrationError, UserError) as exc:
                    log.info("reconcile in %s skipped: %s", group.environment, getattr(exc, "message", exc))
                    held_by_env[group.environment] = None
            held = held_by_env[group.environment]
            if held is None:
                continue
            gone = []
            for fingerprint in [fp for fp, a in group.alerts.items() if a["status"] == "firing"]:
                key = (group.id, fingerprint)
                if fingerprint in held:
                    self._missing.pop(key, None)
                    continue
                # One miss may be an Alertmanager restart; Prometheus re-sends within a minute.
                self._missing[key] = self._missing.get(key, 0) + 1
                if self._missing[key] >= self.missing_confirmations:
                    gone.append(fingerprint)
            if gone or ran_out:
                self._resolve_from_reconcile(group.id, gone, now)

    def _prune(self, now: dt.datetime) -> None:
        """Keep the tables bounded: processed notifications for two weeks, resolved groups for 30 days.

        A notification older than that is no longer a plausible re-delivery, so its dedupe key can go.
        """
        n, g = schema.alert_notifications, schema.alert_groups
        with self.runtime.store.begin() as conn:
            conn.execute(delete(n).where(n.c.state == "done", n.c.processed_at < now - NOTIFICATION_RETENTION))
            conn.execute(delete(g).where(g.c.status == "resolved", g.c.updated_at < now - GROUP_RETENTION))

    def _resolve_from_reconcile(self, group_id: str, gone: list[str], now: dt.datetime) -> None:
        runtime = self.runtime
        with _GROUP_LOCK:
            group = load_group(runtime, group_id)
            if group is None or group.status != "firing":
                return
            changes = []
            for fingerprint in gone:
                alert = group.alerts.get(fingerprint)
                if alert and alert["status"] == "firing":
                    alert["status"] = "resolved"
                    alert["endsAt"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
                    changes.append(Change(fingerprint, alert["labels"], "resolved", False))
                self._missing.pop((group_id, fingerprint), None)
            for silence in group.silences:
                if silence.get("state") == "active" and (parse_time(silence.get("until")) or now) <= now:
                    silence["state"] = "ended"
            _refresh_status(group, now)
            group.updated_at = now
            with runtime.store.begin() as conn:
                _save_group(conn, group)
            if group.channel:
                runtime.messenger.update(group.ref, render_group(group))
                if changes:
                    runtime.messenger.post(
                        group.channel, render_changes(group, changes), thread_ref=group.ref,
                        dedupe_key=f"alert-note:{group.id}:{group.episode}:reconcile:{now.timestamp():.0f}",
                    )
        if stale_acks(group):
            expire_ack_silences(runtime, group_id, reason="the alerts resolved")


# -- silences -----------------------------------------------------------------------------------


def alertmanager_for(runtime: Runtime, env_name: str | None) -> AlertmanagerClient:
    if not env_name:
        raise UserError(
            "This alert group has no environment, so the bot does not know which Alertmanager to ask.",
            hint="Add an `environment` label in the alert rules, or `prometheus_instance` in the bot's config.",
        )
    return runtime.services.alertmanager(runtime.environment(env_name))


def _group_lease(runtime: Runtime, group: AlertGroup, owner: str) -> None:
    if runtime.store.acquire(f"alert-group:{group.id}", owner, "changing silences", dt.timedelta(seconds=60)) is None:
        raise Conflict(
            f"Someone is changing alert group `{group.short_id}` right now.", hint="Try again in a few seconds."
        )


def _silence_targets(group: AlertGroup) -> list[tuple[list[str], dict[str, str]]]:
    """(fingerprints covered, exact label set) per silence to create."""
    firing = group.firing()
    if len(firing) <= MAX_PER_ALERT_SILENCES:
        return [([fp], dict(a["labels"])) for fp, a in group.alerts.items() if a["status"] == "firing"]
    return [([fp for fp, a in group.alerts.items() if a["status"] == "firing"], dict(group.common_labels))]


def _create_silences(
    runtime: Runtime, group: AlertGroup, *, kind: str, user_id: str, until: dt.datetime, comment: str
) -> list[dict[str, Any]]:
    from integrations.alertmanager import exact_matchers

    client = alertmanager_for(runtime, group.environment)
    created: list[dict[str, Any]] = []
    try:
        for fingerprints, labels in _silence_targets(group):
            if not labels:
                raise UserError("This group's alerts have no common labels to silence them by.")
            silence_id = client.create_silence(
                exact_matchers(labels), ends_at=until, created_by=user_id, comment=comment
            )
            created.append({
                "id": silence_id, "kind": kind, "by": user_id, "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "state": "active", "fingerprints": fingerprints, "episode": group.episode,
            })
    except Exception:
        # All or nothing: a half-silenced group would look silenced in Slack and still page people.
        for silence in created:
            try:
                client.expire_silence(silence["id"])
            except IntegrationError:
                log.warning("could not undo silence %s after a failed %s", silence["id"], kind)
        raise
    return created


def _firing_group(runtime: Runtime, group_id: str, episode: int | None = None) -> AlertGroup:
    group = load_group(runtime, group_id)
    if group is None:
        raise NotFound("This alert group is not known to the bot any more.")
    if episode is not None and episode != group.episode:
        raise UserError("This message is about an earlier firing of the group; use the newest message.")
    if group.status != "firing":
        raise UserError(f"Alert group `{group.short_id}` ({bk.escape(group.name)}) has already resolved.")
    return group


def _publish(runtime: Runtime, group: AlertGroup, note: str, dedupe_key: str) -> None:
    if not group.channel:
        return
    runtime.messenger.update(group.ref, render_group(group))
    runtime.messenger.post(
        group.channel, Message(note, [bk.section(note)]), thread_ref=group.ref, dedupe_key=dedupe_key
    )


def acknowledge(runtime: Runtime, group_id: str, user_id: str, *, episode: int | None = None) -> AlertGroup:
    owner = f"ack-{uuid.uuid4().hex[:8]}"
    group = _firing_group(runtime, group_id, episode)
    if group.acked_by:
        raise Conflict(f"Alert group `{group.short_id}` was already acknowledged by <@{group.acked_by}>.")
    _group_lease(runtime, group, owner)
    try:
        group = _firing_group(runtime, group_id, episode)
        if group.acked_by:
            raise Conflict(f"Alert group `{group.short_id}` was already acknowledged by <@{group.acked_by}>.")
        now = utcnow()
        created = _create_silences(
            runtime, group, kind="ack", user_id=user_id, until=now + ACK_BACKSTOP,
            comment=f"Acknowledged in Slack by {user_id} (milvus-chatops group {group.short_id}); "
                    "expired by the bot when the alerts resolve",
        )
        with _GROUP_LOCK:
            group = load_group(runtime, group_id) or group
            group.acked_by, group.acked_at = user_id, now
            group.silences.extend(created)
            with runtime.store.begin() as conn:
                _save_group(conn, group)
            _publish(
                runtime, group,
                f":eyes: Acknowledged by <@{user_id}>: {len(created)} silence(s) in Alertmanager "
                "until the alerts resolve.",
                f"alert-ack:{group.id}:{group.episode}",
            )
        return group
    finally:
        runtime.store.release(f"alert-group:{group_id}", owner)


def silence(
    runtime: Runtime, group_id: str, user_id: str, duration: dt.timedelta, reason: str = "",
    *, episode: int | None = None,
) -> AlertGroup:
    owner = f"silence-{uuid.uuid4().hex[:8]}"
    group = _firing_group(runtime, group_id, episode)
    _group_lease(runtime, group, owner)
    try:
        group = _firing_group(runtime, group_id, episode)
        now = utcnow()
        until = now + duration
        comment = reason.strip() or f"Silenced in Slack for {format_duration(duration)}"
        created = _create_silences(
            runtime, group, kind="timed", user_id=user_id, until=until,
            comment=f"{comment} (by {user_id}, milvus-chatops group {group.short_id})",
        )
        with _GROUP_LOCK:
            group = load_group(runtime, group_id) or group
            group.silences.extend(created)
            with runtime.store.begin() as conn:
                _save_group(conn, group)
            why = f" Reason: {bk.escape(reason.strip())}" if reason.strip() else ""
            _publish(
                runtime, group,
                f":no_bell: Silenced by <@{user_id}> for {format_duration(duration)} "
                f"(until {slack_time(until)}).{why}",
                f"alert-silence:{group.id}:{created[0]['id']}",
            )
        return group
    finally:
        runtime.store.release(f"alert-group:{group_id}", owner)


def unsilence(runtime: Runtime, group_id: str, user_id: str) -> tuple[AlertGroup, int]:
    owner = f"unsilence-{uuid.uuid4().hex[:8]}"
    group = load_group(runtime, group_id)
    if group is None:
        raise NotFound("This alert group is not known to the bot any more.")
    if not group.active_silences():
        raise UserError(f"Alert group `{group.short_id}` has no active silence from the bot.")
    _group_lease(runtime, group, owner)
    try:
        group = load_group(runtime, group_id) or group
        active = group.active_silences()
        client = alertmanager_for(runtime, group.environment)
        expired_ids = []
        try:
            for s in active:
                client.expire_silence(s["id"])
                expired_ids.append(s["id"])
        finally:
            # Record what was expired even when a later one failed, so a retry does the rest.
            if expired_ids:
                with _GROUP_LOCK:
                    group = load_group(runtime, group_id) or group
                    for s in group.silences:
                        if s["id"] in expired_ids:
                            s["state"] = "expired"
                    with runtime.store.begin() as conn:
                        _save_group(conn, group)
                    _publish(
                        runtime, group,
                        f":bell: Unsilenced by <@{user_id}>: {len(expired_ids)} silence(s) expired in Alertmanager.",
                        f"alert-unsilence:{group.id}:{expired_ids[0]}",
                    )
        return group, len(expired_ids)
    finally:
        runtime.store.release(f"alert-group:{group_id}", owner)


def stale_acks(group: AlertGroup) -> list[dict[str, Any]]:
    """Acknowledgement silences whose alerts have resolved (this episode, or an earlier one)."""
    return [
        s for s in group.silences
        if s.get("kind") == "ack" and s.get("state") == "active"
        and (group.status == "resolved" or s.get("episode", group.episode) != group.episode)
    ]


def expire_ack_silences(runtime: Runtime, group_id: str, *, reason: str) -> int:
    """The acknowledgement ends with the alerts: expire its silences (retried by the worker on failure)."""
    group = load_group(runtime, group_id)
    if group is None:
        return 0
    targets = stale_acks(group)
    if not targets:
        return 0
    try:
        client = alertmanager_for(runtime, group.environment)
    except UserError:
        return 0
    done = []
    for s in targets:
        try:
            client.expire_silence(s["id"])
            done.append(s["id"])
        except IntegrationError as exc:
            # The rest would fail the same way (and each may wait for a timeout); reconcile retries.
            log.warning("could not expire acknowledgement silence %s of %s: %s", s["id"], group.short_id, exc.message)
            break
    if not done:
        return 0
    with _GROUP_LOCK:
        group = load_group(runtime, group_id) or group
        for s in group.silences:
            if s["id"] in done:
                s["state"] = "expired"
        with runtime.store.begin() as conn:
            _save_group(conn, group)
        if group.channel:
            runtime.messenger.update(group.ref, render_group(group))
    runtime.audit.record(
        user_id="alertmanager", action="alert unsilence", kind="webhook", environment=group.environment,
        arguments={"group": group.id, "silences": done}, outcome="ok",
        detail=f"acknowledgement silences expired because {reason}",
    )
    return len(done)
