"""Every table the bot keeps, in one place, so the whole state can be read at a glance.

These are the models the code reads and writes through. The database gets them from Alembic
revisions in bot/migrations/versions: a change here needs a new revision there (a test compares the
two and prints what is missing; docs/state-store.md shows the steps).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("action", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # command | button | modal | schedule | webhook
    Column("environment", String(64)),
    Column("arguments", JSON, nullable=False),
    Column("outcome", String(16), nullable=False),  # ok | denied | rejected | failed
    Column("detail", Text),
    Column("reference", String(16)),
    Column("channel", String(64)),
    Column("duration_ms", Float, nullable=False),
    Index("ix_audit_at", "at"),
)

# One row per key ever claimed: an INSERT that fails on the primary key means someone else got it
# first. Used for idempotency (double clicks, replayed payloads, scheduled runs across replicas).
claims = Table(
    "claims",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)

# Leases with an expiry, so a crashed holder does not block an environment forever.
locks = Table(
    "locks",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("description", Text, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Durable queue of everything the bot says in Slack channels (see bot/outbox.py).
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("op", String(16), nullable=False),  # post | update | upload
    Column("ref", String(128), nullable=False),  # logical message this op belongs to
    Column("thread_ref", String(128)),
    Column("payload", JSON, nullable=False),
    Column("dedupe_key", String(255), unique=True),
    Column("state", String(16), nullable=False),  # pending | done | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Higher goes first within a channel (a critical alert before a queue of warnings); equal
    # priorities keep their order. Added by 0007_outbox_priority.
    Column("priority", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_outbox_pending", "state", "channel", "id"),
)

# Where each logical message ended up in Slack, once posted.
message_refs = Table(
    "message_refs",
    metadata,
    Column("ref", String(128), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("ts", String(32), nullable=False),
)

kv = Table(
    "kv",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False, default=1),
)


# One row per scheduled run: inserting it is the claim that makes a run happen once across replicas
# and restarts; the row then records how the run ended.
job_runs = Table(
    "job_runs",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("scheduled_for", DateTime(timezone=True), primary_key=True),
    Column("task", String(64), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("outcome", String(16), nullable=False),  # running | ok | failed
    Column("summary", Text),
)


# Four-eyes approvals (bot/approvals.py): one row per request; buttons carry only the id, so a
# pending request survives a restart and stays clickable.
approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),  # deploy | restore | ...
    Column("environment", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("requester", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("summary_blocks", JSON, nullable=False),
    Column("approvals_required", Integer, nullable=False),
    # pending | executing | done | failed | rejected | expired | stale
    Column("state", String(16), nullable=False),
    Column("channel", String(64)),
    Column("message_ref", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", String(64)),
    Column("reason", Text),
    Column("result", Text),
    Index("ix_approval_state", "state", "expires_at"),
)

# One vote per approver per request (primary key): two approvers at once both count, a double click
# counts once. The hash voted on is kept so a vote for other values never counts.
approval_votes = Table(
    "approval_votes",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("vote", String(16), nullable=False),  # approve | reject
    Column("payload_hash", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


# Alertmanager webhook deliveries (commands/alerts/), stored before the webhook is answered; the
# dedupe key makes a re-delivered notification a no-op. The worker turns pending rows into messages.
alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("group_id", String(32), nullable=False),
    Column("environment", String(64)),
    Column("group_key", Text, nullable=False),
    Column("severity", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # pending | working | done | failed
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True)),
    Index("ix_alert_notifications_pending", "state", "id"),
)

# One row per Alertmanager group (groupKey + environment): what its Slack message shows, and the
# silences the bot created for it (so resolving can expire the acknowledgement's silences).
alert_groups = Table(
    "alert_groups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("environment", String(64)),
    Column("group_key", Text, nullable=False),
    Column("episode", Integer, nullable=False),  # a group that fires again after resolving gets a new message
    Column("channel", String(64)),
    Column("severity", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # firing | resolved
    Column("alerts", JSON, nullable=False),  # fingerprint -> alert as last reported
    Column("group_labels", JSON, nullable=False),
    Column("common_labels", JSON, nullable=False),
    Column("common_annotations", JSON, nullable=False),
    Column("external_url", Text),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("acked_by", String(64)),
    Column("acked_at", DateTime(timezone=True)),
    Column("silences", JSON, nullable=False),  # [{id, kind: ack|timed, by, until, state}]
    Column("last_notification_id", Integer, nullable=False),
    # The storm digest that lists the group (commands/alerts/storm.py), and whether the group has a
    # message of its own (during a storm only some severities get one). Added by 0008_alert_storms.
    Column("storm_id", String(32)),
    Column("own_message", Integer, nullable=False, default=1, server_default="1"),
    Index("ix_alert_groups_status", "status", "environment"),
)

# One row per alert storm in a channel: the digest messages (refs, in order) that show its groups,
# a hash of what each was last rendered with (so unchanged parts are not updated), and Silence-all
# presses for the closing summary.
alert_storms = Table(
    "alert_storms",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # active | ended
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("last_joined_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("parts", JSON, nullable=False),
    Column("rendered", JSON, nullable=False),
    Column("silenced_all", JSON, nullable=False),  # [{by, at, groups}]
    Index("ix_alert_storms_channel", "channel", "state"),
)


# One row per backup the bot started. The object store's manifest is the truth about whether a
# backup is usable; this table indexes it, tracks running ones (heartbeat) so that a backup whose
# process died can be told from one still in progress, and remembers who asked.
backups = Table(
    "backups",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("environment", String(64), nullable=False),
    Column("engine", String(32), nullable=False),  # logical | milvus-backup
    Column("state", String(16), nullable=False),  # running | complete | failed | abandoned | deleted
    Column("collections", JSON, nullable=False),
    Column("rows", BigInteger, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("location", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("created_by", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),  # manual | schedule
    Column("error", Text),
    Index("ix_backups_env_created", "environment", "created_at"),
)


# Load tests and drills (commands/readiness): one row per run with its measured result, so the next
# run can be compared with it and the checklist can tell how recent and how good the evidence is.
readiness_runs = Table(
    "readiness_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("environment", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # loadtest | drill_restore | drill_pod
    Column("subject", String(255), nullable=False),  # collection, backup id or component
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("passed", Integer, nullable=False),  # 1: met its targets / verified / recovered in time
    Column("trigger", String(16), nullable=False),  # manual | schedule
    Column("created_by", String(64), nullable=False),
    Column("result", JSON, nullable=False),
    Index("ix_readiness_env_kind", "environment", "kind", "finished_at"),
)
