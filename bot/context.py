"""What a handler gets: the runtime built once at start-up, plus who is asking and where."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.access import AccessPolicy, Identity
from bot.audit import AuditLog
from bot.config import Config, Environment
from bot.errors import NotFound, UsageError
from bot.messaging import Messenger, Progress, no_progress
from bot.registry import Registry
from bot.services import Services
from bot.settings import Settings
from bot.state import Store


class GroupDirectory:
    """Which user groups a user is in. The console knows none; Slack asks usergroups.users.list."""

    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset()


@dataclass
class Runtime:
    settings: Settings
    config: Config
    store: Store
    messenger: Messenger
    registry: Registry
    policy: AccessPolicy = field(init=False)
    audit: AuditLog = field(init=False)
    services: Services = field(init=False)
    directory: GroupDirectory = field(default_factory=GroupDirectory)

    def __post_init__(self) -> None:
        self.policy = AccessPolicy(self.config)
        self.audit = AuditLog(self.store, self.settings.secret_values)
        self.services = Services(self.settings)

    def environment(self, name: str | None) -> Environment:
        """Resolve an environment name; it may be omitted when only one is configured."""
        envs = self.config.environments
        if name is None:
            if len(envs) == 1:
                return next(iter(envs.values()))
            raise UsageError(
                "Which environment?",
                hint=f"Name one first, e.g. `{next(iter(envs))}`. Environments: {', '.join(envs)}.",
            )
        if name not in envs:
            from bot.args import closest
            from bot.blocks import code

            guess = closest(name, list(envs))
            hint = f"Did you mean `{guess}`? " if guess else ""
            raise NotFound(f"There is no environment {code(name)}.", hint=f"{hint}Environments: {', '.join(envs)}.")
        return envs[name]

    def identity(self, user_id: str) -> Identity:
        return Identity(user_id=user_id, groups=self.directory.groups_of(user_id))


@dataclass
class Context:
    runtime: Runtime
    user: Identity
    env: Environment | None = None
    channel: str | None = None
    progress: Progress = no_progress
    trigger_id: str | None = None

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def messenger(self) -> Messenger:
        return self.runtime.messenger

    @property
    def services(self) -> Services:
        return self.runtime.services

    def require_env(self) -> Environment:
        if self.env is None:
            raise UsageError("This command needs an environment.")
        return self.env
