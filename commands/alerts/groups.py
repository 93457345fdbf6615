"""Alert group state: one row per Alertmanager group (groupKey + environment), what fired and
resolved in it, the silences the bot created for it, and where it is posted.

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
import functools
import hashlib
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from bot import blocks as bk
from bot import schema
from bot.config import Config, Environment
from bot.errors import NotFound, UsageError
from bot.state import as_utc, utcnow

if TYPE_CHECKING:
    from bot.context import Runtime

SEVERITY_RANK = {"emergency": 0, "critical": 1, "warning": 2}
SEVERITY_CHANNELS = {
    "emergency": ("emergency", "critical", "default"),
    "critical": ("critical", "default"),
    "warning": ("warning", "default"),
}
# Outbox priority of a group's messages: within a channel an emergency or critical group is posted
# before the warnings queued ahead of it, and warnings before ordinary messages.
SEVERITY_PRIORITY = {"emergency": 30, "critical": 20, "warning": 10}
ENV_LABELS = ("environment", "env")
INSTANCE_LABELS = ("app_kubernetes_io_instance", "cluster", "milvus_name", "release")
MAX_KEPT_RESOLVED = 200
ZERO_TIME = "0001-01-01T00:00:00Z"

# Changes to one group's state and the message rendered from it are enqueued in commit order.
GROUP_LOCK = threading.RLock()


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
    return _parse_rfc3339(value)


# A storm digest reads every alert's start time on each render, and the same few thousand strings
# come back render after render.
@functools.lru_cache(maxsize=8192)
def _parse_rfc3339(value: str) -> dt.datetime | None:
    text = value.replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)



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
    storm_id: str | None = None
    own_message: bool = True
    exists: bool = False

    @property
    def ref(self) -> str:
        return f"alert-group:{self.id}" if self.episode == 1 else f"alert-group:{self.id}:{self.episode}"

    @property
    def priority(self) -> int:
        return SEVERITY_PRIORITY.get(self.severity, 0)

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
            "storm_id": self.storm_id,
            "own_message": int(self.own_message),
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
            storm_id=row["storm_id"],
            own_message=bool(row["own_message"]),
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
    refresh_status(group, received_at)
    group.last_notification_id = notification_id
    group.updated_at = received_at
    return group, changes, new_episode


def _trim_resolved(group: AlertGroup) -> None:
    resolved = [fp for fp, a in group.alerts.items() if a["status"] == "resolved"]
    for fingerprint in resolved[: max(len(resolved) - MAX_KEPT_RESOLVED, 0)]:
        del group.alerts[fingerprint]


def refresh_status(group: AlertGroup, now: dt.datetime) -> None:
    firing = group.firing()
    group.severity = highest_severity(severity_of(a["labels"]) for a in (firing or group.alerts.values()))
    if firing:
        group.status = "firing"
        group.resolved_at = None
    else:
        group.status = "resolved"
        ends = [t for a in group.alerts.values() if (t := parse_time(a.get("endsAt")))]
        group.resolved_at = max(ends) if ends else now

# -- storage ------------------------------------------------------------------------------------


def load_group(runtime: Runtime, group_id: str) -> AlertGroup | None:
    """The group as last recorded. The lock makes a reader wait for a round in progress in this
    process, whose messages may already be in Slack before its groups are committed."""
    with GROUP_LOCK, runtime.store.begin() as conn:
        row = conn.execute(select(schema.alert_groups).where(schema.alert_groups.c.id == group_id)).mappings().first()
    return AlertGroup.from_row(row) if row else None


def save_group(conn: Any, group: AlertGroup) -> None:
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
    with GROUP_LOCK, runtime.store.begin() as conn:
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
