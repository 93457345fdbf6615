"""Who may do what, where. Roles come from the config's grants; nothing else grants anything."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.config import Config, Grant, Role
from bot.errors import AccessDenied


@dataclass(frozen=True)
class Identity:
    user_id: str
    groups: frozenset[str] = field(default_factory=frozenset)
    name: str = ""

    def mention(self) -> str:
        return f"<@{self.user_id}>"


class AccessPolicy:
    def __init__(self, config: Config) -> None:
        self.config = config

    def _grants_for(self, who: Identity) -> Iterator[Grant]:
        for grant in self.config.access:
            if who.user_id in grant.users or who.groups.intersection(grant.groups):
                yield grant

    def role_in(self, who: Identity, env: str | None) -> Role | None:
        """Highest role the user holds in ``env`` (or anywhere, for commands without one)."""
        best: Role | None = None
        for grant in self._grants_for(who):
            applies = env is None or "*" in grant.environments or env in grant.environments
            if applies and (best is None or grant.role > best):
                best = grant.role
        return best

    def roles_by_environment(self, who: Identity) -> dict[str, Role]:
        return {env: role for env in self.config.environments if (role := self.role_in(who, env)) is not None}

    def require(self, who: Identity, role: Role, env: str | None, what: str) -> None:
        held = self.role_in(who, env)
        if held is None or held < role:
            where = f" in `{env}`" if env else ""
            have = f"you have {held.name}" if held else "you have no role"
            raise AccessDenied(
                f"`{what}` needs the {role.name} role{where}; {have}.",
                hint="Ask an admin to grant it in the bot's config (`access:`), or try `/milvus whoami`.",
            )

    def is_approver(self, who: Identity, env: str) -> bool:
        approvers = set(self.config.environments[env].approval.approvers)
        return who.user_id in approvers or bool(who.groups & approvers)
