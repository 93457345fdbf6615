"""The YAML configuration: environments, channels, roles and schedules. No secrets here.

Secrets are referenced by the *name* of an environment variable (``token_env``), never by value, so
the file can be committed and reviewed. A bad file fails with the dotted path of the key and what was
expected; with no file at all the embedded default runs one ``local`` environment on Milvus Lite.
"""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import ConfigError

ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
LOCAL_OPERATOR = "ULOCALOPERATOR"


class Role(IntEnum):
    """Roles are ordered: each one can do everything the ones below it can."""

    viewer = 1
    operator = 2
    admin = 3

    def __str__(self) -> str:
        return self.name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MilvusTarget(Strict):
    uri: str = Field(description="http(s)://host:19530, or a local path ending in .db for Milvus Lite")
    token_env: str | None = Field(default=None, description="name of the env var holding user:password or API key")
    db_name: str = "default"
    timeout_s: float = 10.0


class KubernetesTarget(Strict):
    context: str | None = None
    kubeconfig: str | None = None
    namespace: str = "milvus"
    # Namespaces whose pods may reach Milvus on 19530; everything else is denied by the NetworkPolicy.
    client_namespaces: list[str] = Field(default_factory=list)


class HelmTarget(Strict):
    release: str = "milvus"
    chart: str = "milvus/milvus"
    milvus_version: str = "2.6.15"
    timeout: str = "15m"
    # Environment profile merged under the plan's resources and the user's --set overrides.
    values: dict[str, Any] = Field(default_factory=dict)


class ApprovalPolicy(Strict):
    required: bool = False
    approvers: list[str] = Field(default_factory=list, description="Slack user ids (U...) and user group ids (S...)")
    approvals_required: int = Field(default=1, ge=1, le=5)
    expires_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)


class Retention(Strict):
    days: int | None = Field(default=7, ge=1)
    keep_last: int | None = Field(default=None, ge=1)


class BackupTarget(Strict):
    engine: Literal["logical", "milvus-backup"] = "logical"
    bucket: str | None = None
    prefix: str = "milvus-chatops"
    endpoint_url: str | None = None
    region: str | None = None
    local_dir: str | None = Field(default=None, description="store backups in a directory instead of S3")
    sse: Literal["none", "AES256", "aws:kms"] = "none"
    kms_key_id: str | None = None
    milvus_backup_url: str | None = None
    schedule: str | None = Field(default=None, description="cron expression, e.g. '0 2 * * *'")
    collections: list[str] = Field(default_factory=list, description="empty means all")
    retention: Retention = Field(default_factory=Retention)
    object_mb: int = Field(default=64, ge=1, le=4096, description="target size of each data object (logical engine)")

    @model_validator(mode="after")
    def _one_destination(self) -> BackupTarget:
        if self.engine == "logical" and not (self.bucket or self.local_dir):
            raise ValueError("set either 'bucket' (S3) or 'local_dir' for the logical engine")
        if self.engine == "milvus-backup" and not self.milvus_backup_url:
            raise ValueError("engine 'milvus-backup' needs 'milvus_backup_url'")
        if self.sse == "aws:kms" and not self.kms_key_id:
            raise ValueError("sse 'aws:kms' needs 'kms_key_id'")
        return self


class AlertChannels(Strict):
    emergency: str | None = None
    critical: str | None = None
    warning: str | None = None
    default: str | None = None


class StormPolicy(Strict):
    """When a channel's alert messages would queue up, one digest shows the whole storm instead."""

    enabled: bool = True
    threshold_s: float = Field(
        default=5.0, ge=1, le=3600,
        description="a storm starts when the posts waiting for the channel would take longer than this "
                    "at Slack's pace of one a second",
    )
    individual: list[str] = Field(
        default_factory=lambda: ["emergency", "critical"],
        description="severities whose groups still get their own message during a storm",
    )
    post_rest: bool = Field(
        default=False, description="as the backlog drains, also post the other groups of the storm one by one"
    )
    end_after_s: float = Field(
        default=300.0, ge=10, description="a storm with firing groups ends after this long without a new group"
    )
    silence_for: Literal["1h", "4h", "24h"] = Field(default="4h", description="the digest's Silence buttons")

    @field_validator("individual")
    @classmethod
    def _severities(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


class AlertStorm(StormPolicy):
    channels: dict[str, StormPolicy] = Field(
        default_factory=dict, description="per-channel policy (channel id -> policy), replacing the default"
    )

    def for_channel(self, channel: str) -> StormPolicy:
        return self.channels.get(channel, self)


class Channels(Strict):
    ops: str | None = None
    approvals: str | None = None
    reports: str | None = None
    alerts: AlertChannels = Field(default_factory=AlertChannels)


class Targets(Strict):
    """What an environment must achieve; load tests and drills are judged against these."""

    search_p99_ms: float | None = Field(default=None, gt=0)
    qps: float | None = Field(default=None, gt=0)
    recall: float | None = Field(default=None, gt=0, le=1)
    # A pod drill passes when the replacement pod is Ready within this many seconds.
    pod_recovery_s: float = Field(default=120.0, gt=0)


class LoadtestLimits(Strict):
    """Caps on ``/milvus loadtest`` in production, where it shares the cluster with real traffic."""

    max_qps: float = Field(default=50.0, gt=0)
    max_duration_s: float = Field(default=60.0, gt=0)
    max_concurrency: int = Field(default=4, ge=1)


class ReadinessSchedule(Strict):
    """Cron expressions for load tests and drills run by the scheduler (none by default)."""

    loadtest: str | None = None
    loadtest_collection: str | None = None
    loadtest_duration: str = "30s"
    drill_restore: str | None = None
    drill_pod: str | None = None
    drill_pod_component: str = "querynode"

    @model_validator(mode="after")
    def _collection_for_loadtest(self) -> ReadinessSchedule:
        if self.loadtest and not self.loadtest_collection:
            raise ValueError("a scheduled 'loadtest' needs 'loadtest_collection'")
        return self

K8S_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
DEFAULT_EXPIRY_WARN_DAYS = (30, 14, 7, 3, 1)


def _k8s_name(value: str | None) -> str | None:
    if value is not None and not K8S_NAME.match(value):
        raise ValueError(f"'{value}' is not a Kubernetes object name (lowercase letters, digits, '-' and '.')")
    return value


class TlsSettings(Strict):
    """TLS on the Milvus port: the chart mounts the certificate from a Secret (or cert-manager fills it)."""

    enabled: bool = True
    mode: Literal[1, 2] = Field(default=1, description="1: server TLS, 2: mutual TLS (clients present a certificate)")
    secret: str = Field(default="milvus-tls", description="Secret with tls.crt, tls.key and ca.crt")
    mount_path: str = "/etc/milvus/certs"
    cert_manager_issuer: str | None = Field(default=None, description="cert-manager issuer that fills the Secret")
    cert_manager_issuer_kind: Literal["Issuer", "ClusterIssuer"] = "ClusterIssuer"
    # The bot's side: the CA bundle it verifies Milvus' certificate chain with (default: the system's).
    ca_file: str | None = None
    server_name: str | None = Field(default=None, description="name to verify instead of the URI's host")
    # For mode 2: the certificate and key the bot presents to Milvus.
    client_cert_file: str | None = None
    client_key_file: str | None = None

    _secret = field_validator("secret", "cert_manager_issuer")(_k8s_name)

    @model_validator(mode="after")
    def _client_pair(self) -> TlsSettings:
        if bool(self.client_cert_file) != bool(self.client_key_file):
            raise ValueError("set both client_cert_file and client_key_file, or neither")
        return self

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or value.rstrip("/") == "":
            raise ValueError("must be an absolute directory path such as /etc/milvus/certs")
        return value.rstrip("/")


class SecuritySettings(Strict):
    """How Milvus itself is secured. Production environments get these defaults without the section."""

    authorization: bool = True
    tls: TlsSettings = Field(default_factory=TlsSettings)
    # The root password comes from this Secret (key root_password_key), never the default "Milvus".
    root_password_secret: str | None = "milvus-root-password"  # noqa: S105 - a name
    root_password_key: str = "password"  # noqa: S105 - a key name
    expiry_warn_days: list[int] = Field(default_factory=lambda: list(DEFAULT_EXPIRY_WARN_DAYS))
    expiry_check_cron: str = "0 7 * * *"

    _root_secret = field_validator("root_password_secret")(_k8s_name)

    @field_validator("expiry_warn_days")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("give at least one number of days, e.g. [30, 14, 7, 3, 1]")
        if any(d < 1 or d > 365 for d in value):
            raise ValueError("each threshold must be between 1 and 365 days")
        if len(set(value)) != len(value):
            raise ValueError("thresholds must not repeat")
        return sorted(value, reverse=True)


class Environment(Strict):
    name: str = ""
    description: str = ""
    production: bool = False
    milvus: MilvusTarget
    kubernetes: KubernetesTarget | None = None
    helm: HelmTarget | None = None
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    # Label selector values that tie Prometheus series and alerts to this environment.
    prometheus_namespace: str | None = None
    prometheus_instance: str | None = None
    backup: BackupTarget | None = None
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    channels: Channels = Field(default_factory=Channels)
    targets: Targets = Field(default_factory=Targets)
    loadtest: LoadtestLimits = Field(default_factory=LoadtestLimits)
    schedules: ReadinessSchedule = Field(default_factory=ReadinessSchedule)
    # A deploy while a checklist item fails then needs an admin's --override-checklist.
    require_checklist: bool = False
    security: SecuritySettings | None = None

    def secured(self) -> SecuritySettings | None:
        """The security settings in force: the section, else the defaults for production, else none."""
        if self.security is not None:
            return self.security
        return SecuritySettings() if self.production else None

    @property
    def needs_approval(self) -> bool:
        """Every mutating action (deploy, rollback, restore, backup delete) waits for four eyes here."""
        return self.production or self.approval.required


class Grant(Strict):
    role: Role
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("role", mode="before")
    @classmethod
    def _role_by_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return Role[value]
            except KeyError:
                raise ValueError(f"unknown role '{value}', expected one of viewer, operator, admin") from None
        return value


class ReportSchedule(Strict):
    cron: str
    channel: str | None = None
    environments: list[str] = Field(default_factory=list, description="empty means all")


class Reports(Strict):
    timezone: str = "UTC"
    health: ReportSchedule | None = Field(default_factory=lambda: ReportSchedule(cron="0 8 * * *"))
    capacity: ReportSchedule | None = Field(default_factory=lambda: ReportSchedule(cron="0 8 * * 1"))


class HealthThresholds(Strict):
    search_p99_ms_warn: float = 200.0
    search_p99_ms_crit: float = 1000.0
    insert_p99_ms_warn: float = 500.0
    insert_p99_ms_crit: float = 2000.0
    error_ratio_warn: float = 0.01
    error_ratio_crit: float = 0.05
    consume_lag_ms_warn: float = 10_000.0
    consume_lag_ms_crit: float = 60_000.0
    memory_ratio_warn: float = 0.80
    memory_ratio_crit: float = 0.90
    query_p99_ms_warn: float = 200.0
    query_p99_ms_crit: float = 1000.0
    queue_p99_ms_warn: float = 50.0
    queue_p99_ms_crit: float = 500.0
    restarts_per_hour_warn: float = 1.0
    restarts_per_hour_crit: float = 3.0
    disk_ratio_warn: float = 0.80
    disk_ratio_crit: float = 0.90
    etcd_ratio_warn: float = 0.70
    etcd_ratio_crit: float = 0.85
    # A resource forecast to run out sooner than this many days turns its line yellow (red: crit).
    runway_days_warn: float = 30.0
    runway_days_crit: float = 7.0


class PriceTable(Strict):
    core_hour: float = Field(ge=0)
    gib_hour: float = Field(ge=0)
    disk_gib_month: float = Field(ge=0)
    object_gib_month: float = Field(ge=0)
    currency: str = "USD"


class ReadinessPolicy(Strict):
    """How recent the evidence behind ``/milvus checklist`` must be."""

    notification_within_hours: float = Field(default=168.0, gt=0)
    backup_slack_hours: float = Field(default=6.0, ge=0)
    restore_drill_days: float = Field(default=30.0, gt=0)
    loadtest_days: float = Field(default=30.0, gt=0)
    pod_drill_days: float = Field(default=90.0, gt=0)


class Config(Strict):
    environments: dict[str, Environment]
    access: list[Grant] = Field(default_factory=list)
    channels: Channels = Field(default_factory=Channels, description="defaults for every environment")
    reports: Reports = Field(default_factory=Reports)
    health_thresholds: HealthThresholds = Field(default_factory=HealthThresholds)
    alert_storm: AlertStorm = Field(default_factory=AlertStorm)
    prices: PriceTable | None = None
    readiness: ReadinessPolicy = Field(default_factory=ReadinessPolicy)
    embedded: bool = Field(default=False, exclude=True)

    @model_validator(mode="after")
    def _check_names(self) -> Config:
        if not self.environments:
            raise ValueError("define at least one environment")
        for name, env in self.environments.items():
            if not ENV_NAME.match(name):
                raise ValueError(
                    f"environment name '{name}' must be lowercase letters, digits and '-', starting with a letter"
                )
            env.name = name
        known = set(self.environments) | {"*"}
        for grant in self.access:
            unknown = [e for e in grant.environments if e not in known]
            if unknown:
                raise ValueError(f"access grant names unknown environment(s) {', '.join(unknown)}")
        for name in self.environments:
            problem = self.unapprovable(name)
            if problem:
                raise ValueError(f"environments.{name}.approval: {problem}")
        return self

    def requesters(self, env: str) -> tuple[set[str], bool]:
        """Users who may ask for a change in ``env`` (operators and up), and whether user groups may too."""
        users: set[str] = set()
        groups = False
        for grant in self.access:
            if grant.role >= Role.operator and ("*" in grant.environments or env in grant.environments):
                users.update(grant.users)
                groups = groups or bool(grant.groups)
        return users, groups

    def unapprovable(self, env: str) -> str | None:
        """Why no request in ``env`` could ever be approved, or None.

        The requester never approves their own request, so when everyone who can ask is also an
        approver, each request has one approver fewer than the list. User groups have members this
        file does not know, so a group among the approvers (or the requesters) is given the benefit
        of the doubt.
        """
        environment = self.environments[env]
        if not environment.needs_approval:
            return None
        policy = environment.approval
        why = "`production: true`" if environment.production else "`approval.required`"
        if not policy.approvers:
            return (
                f"{why} makes every change wait for approval, but no approvers are set, so nothing could ever "
                "be approved; list Slack user ids (U...) or user group ids (S...) in `approvers`"
            )
        if any(not a.startswith(("U", "W")) for a in policy.approvers):
            return None
        people = set(policy.approvers)
        needed = policy.approvals_required
        if len(people) < needed:
            return (
                f"{needed} approvals are required but only {len(people)} approver(s) are listed; "
                f"list at least {needed} (more than {needed} if approvers also ask for changes)"
            )
        users, groups = self.requesters(env)
        if not groups and users and users <= people and len(people) - 1 < needed:
            return (
                f"{needed} approval(s) are required from {len(people)} approver(s), and everyone who can ask for a "
                "change is an approver who cannot approve their own request, so no request could get "
                f"{needed}; list at least {needed + 1} approvers or lower `approvals_required`"
            )
        return None

    def channels_for(self, env: Environment) -> Channels:
        """The environment's channels, falling back to the global ones key by key."""
        merged = self.channels.model_dump()
        for key, value in env.channels.model_dump(exclude_none=True).items():
            if isinstance(value, dict):
                merged[key] = {**merged[key], **{k: v for k, v in value.items() if v}}
            else:
                merged[key] = value
        return Channels.model_validate(merged)


def embedded_default(data_dir: Path) -> Config:
    """One ``local`` environment on Milvus Lite in the data dir, backups in a local directory."""
    data_dir = data_dir.resolve()
    return Config(
        environments={
            "local": Environment(
                description="Milvus Lite in the data dir (embedded default)",
                milvus=MilvusTarget(uri=str(data_dir / "milvus.db")),
                backup=BackupTarget(local_dir=str(data_dir / "backups"), retention=Retention(days=7)),
            )
        },
        access=[Grant(role=Role.admin, users=[LOCAL_OPERATOR], environments=["*"])],
        reports=Reports(health=None, capacity=None),
        embedded=True,
    )


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source} is not valid:"]
    for err in exc.errors()[:10]:
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see config.example.yaml)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  - {_dotted(err['loc'])}: {msg}")
    return "\n".join(lines)


def load_config(path: Path | None, data_dir: Path) -> Config:
    if path is None:
        return embedded_default(data_dir)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(
            f"config path {path} is a directory", hint=f"Give the YAML file itself, e.g. {path / 'config.yaml'}."
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
            hint="Save the file as UTF-8.",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping with an 'environments' key")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from exc
