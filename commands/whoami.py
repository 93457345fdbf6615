"""/milvus whoami: the roles a user holds, per environment."""

from __future__ import annotations

from pydantic import BaseModel

from bot import blocks as bk
from bot.context import Context
from bot.registry import Registry, command
from bot.reply import Reply


class WhoamiArgs(BaseModel):
    pass


@command("whoami", summary="Show your roles in each environment", args=WhoamiArgs, role=None)
def whoami_command(ctx: Context, args: WhoamiArgs) -> Reply:
    policy = ctx.runtime.policy
    roles = policy.roles_by_environment(ctx.user)
    lines = []
    for env_name in ctx.config.environments:
        role = roles.get(env_name)
        approver = " · approver" if policy.is_approver(ctx.user, env_name) else ""
        lines.append(f"`{env_name}`: {role.name if role else 'no access'}{approver}")
    groups = ", ".join(sorted(ctx.user.groups)) or "none known"
    text = f"You are {ctx.user.mention()}.\n" + "\n".join(lines)
    return Reply(
        text=text,
        blocks=[bk.section(text), bk.context(f"User groups: {bk.escape(groups)}")],
        data={
            "user": ctx.user.user_id,
            "roles": {env: role.name for env, role in roles.items()},
            "approver_in": [e for e in ctx.config.environments if policy.is_approver(ctx.user, e)],
        },
    )


def register(registry: Registry) -> None:
    registry.add(whoami_command)
