"""The bot's own Prometheus metrics, served at GET /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

COMMANDS = Counter(
    "milvus_chatops_commands_total",
    "Commands, button presses and modal submissions handled, by name and outcome.",
    ["command", "outcome"],
    registry=REGISTRY,
)
COMMAND_LATENCY = Histogram(
    "milvus_chatops_command_duration_seconds",
    "Time to run a command handler, from parsed request to reply.",
    ["command"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
SLACK_CALLS = Counter(
    "milvus_chatops_slack_calls_total",
    "Slack Web API calls made by the outbox, by method and result.",
    ["method", "result"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "milvus_chatops_outbox_pending", "Messages waiting in the outbox to reach Slack.", registry=REGISTRY
)
