"""/milvus user | role: Milvus users, roles and grants from chat.

Passwords are generated here (``secrets``), never typed, and shown once to the requester alone: in
the command's own reply (ephemeral in Slack; the text and ``data.password`` in run/console), or, for
a change that waited for approval, whispered to the requester when it runs. ``--secret NAME`` writes
it to a Kubernetes Secret instead and nothing shows it. No password is ever part of an argument, an
audit row, an approval payload, a channel message or an error.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment, Role
from bot.context import Context
from bot.errors import IntegrationError, UsageError, UserError
from bot.messaging import Whisperer
from bot.registry import command
from bot.reply import Message, Reply
from bot.services import Services
from commands.approvals.workflow import ApprovalRequest, Approvals
from integrations.milvus import is_lite

APPROVAL_KIND = "milvus_security"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
PRIVILEGE = re.compile(r"^(\*|[A-Za-z]{1,40})$")
OBJECT_NAME = re.compile(r"^(\*|[A-Za-z_][A-Za-z0-9_]{0,254})$")
SECRET_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
PASSWORD_BYTES = 24  # 32 URL-safe characters; Milvus takes 6 to 256
DEFAULT_ROOT_PASSWORD = "Milvus"  # noqa: S105 - the well-known default this code refuses to keep
# Privileges Milvus grants on the Global object (object name "*") or on users; the rest are per collection.
GLOBAL_PRIVILEGES = {
    "CreateCollection", "DropCollection", "DescribeCollection", "ShowCollections", "RenameCollection",
    "CreateOwnership", "DropOwnership", "SelectOwnership", "ManageOwnership", "CreateDatabase", "DropDatabase",
    "ListDatabases", "FlushAll", "CreateResourceGroup", "DropResourceGroup", "DescribeResourceGroup",
    "ListResourceGroups", "TransferNode", "TransferReplica", "CreateAlias", "DropAlias", "DescribeAlias",
    "ListAliases",
}
USER_PRIVILEGES = {"UpdateUser", "SelectUser"}
ALL = ("*", "All")


def _name(value: str | None, what: str) -> str | None:
    if value is not None and not NAME.match(value):
        raise ValueError(f"'{value[:40]}' is not a Milvus {what} name: letters, digits and '_', starting with a "
                         "letter, at most 32")
    return value


def _secret_name(value: str | None) -> str | None:
    if value is not None and not SECRET_NAME.match(value):
        raise ValueError(f"'{value[:60]}' is not a Kubernetes Secret name (lowercase letters, digits, '-', '.')")
    return value


def _shift(values: Any, names: tuple[str, ...]) -> Any:
    """``[env] a b``: with one positional fewer than the fields, the environment was left out."""
    if isinstance(values, dict) and values.get(names[-1]) is None and values.get(names[0]) is not None:
        given = [values.get(n) for n in names]
        values = {**values, **dict(zip(names, [None, *given[:-1]], strict=True))}
    return values


class EnvArgs(BaseModel):
    env: str | None = positional(None, description="environment")


class UserArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    name: str = positional(description="Milvus user name")

    _env_optional = model_validator(mode="before")(lambda values: _shift(values, ("env", "name")))
    _check = field_validator("name")(lambda v: _name(v, "user"))


class UserCreateArgs(UserArgs):
    role: str = Field(description="role to give the user (see `/milvus role list`)")
    secret: str | None = Field(None, description="write the password to this Kubernetes Secret instead of the reply")

    _role = field_validator("role")(lambda v: _name(v, "role"))
    _secret = field_validator("secret")(lambda v: _secret_name(v))


class UserPasswordArgs(UserArgs):
    secret: str | None = Field(None, description="write the password to this Kubernetes Secret instead of the reply")

    _secret = field_validator("secret")(lambda v: _secret_name(v))


class RoleArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    role: str = positional(description="Milvus role name")

    _env_optional = model_validator(mode="before")(lambda values: _shift(values, ("env", "role")))
    _check = field_validator("role")(lambda v: _name(v, "role"))


class GrantArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    role: str = positional(description="Milvus role name")
    privilege: str = positional(description="privilege, e.g. Search, Query, Insert, CreateCollection, *")
    collection: str = Field("*", description="collection the privilege is on (default: every collection)")
    database: str = Field("default", description="database")

    _env_optional = model_validator(mode="before")(lambda values: _shift(values, ("env", "role", "privilege")))
    _check = field_validator("role")(lambda v: _name(v, "role"))

    @field_validator("privilege")
    @classmethod
    def _privilege(cls, value: str) -> str:
        if not PRIVILEGE.match(value):
            raise ValueError(f"'{value[:40]}' is not a privilege name, e.g. Search, Query, Insert or *")
        return value

    @field_validator("collection", "database")
    @classmethod
    def _object(cls, value: str) -> str:
        if not OBJECT_NAME.match(value):
            raise ValueError(f"'{value[:60]}' is not a collection or database name (or *)")
        return value


# -- shared -------------------------------------------------------------------------------------


def _server(env: Environment) -> None:
    if is_lite(env.milvus.uri):
        raise UserError(f"`{env.name}` runs Milvus Lite, which has no users or roles.",
                        hint="Users and roles need a Milvus server with authorization on.")


def _object_of(privilege: str, collection: str, collection_given: bool) -> tuple[str, str]:
    if privilege in USER_PRIVILEGES:
        return "User", "*"
    if privilege in GLOBAL_PRIVILEGES or (privilege in ALL and not collection_given):
        return "Global", "*"
    return "Collection", collection


def _approval(ctx: Context, env: Environment, payload: dict[str, Any], title: str, data: dict[str, Any]) -> Reply:
    request = Approvals(ctx.runtime).request(
        ctx, kind=APPROVAL_KIND, env=env.name, title=title,
        summary_blocks=[bk.section(bk.escape(title))], payload={**payload, "origin_channel": ctx.channel},
    )
    text = (f"Approval requested: {title} (request `{request.id}`); {request.approvals_required} approval(s) needed "
            f"from approvers of `{env.name}`.")
    if payload.get("delivery") == "reply":
        text += " When it runs, the password is shown to you alone."
    return Reply(text=text, blocks=[bk.section(f":hourglass_flowing_sand: {bk.escape(text)}")],
                 data={**data, "approval": request.to_data()})


def _change(ctx: Context, env: Environment, payload: dict[str, Any], title: str, data: dict[str, Any]) -> Reply:
    """Run now, or wait for approval where the environment needs it."""
    if env.needs_approval:
        return _approval(ctx, env, payload, title, data)
    return apply(ctx, env, payload, requester=ctx.user.user_id, immediate=True)


def execute(ctx: Context, request: ApprovalRequest) -> Reply:
    """The approval executor: runs the approved change; a password goes to the requester alone."""
    env = ctx.runtime.environment(request.environment)
    return apply(ctx, env, dict(request.payload), requester=request.requester, immediate=False)


def _delivery(secret: str | None) -> str:
    return f"secret:{secret}" if secret else "reply"


def _check_delivery(ctx: Context, env: Environment, secret: str | None) -> None:
    """Refuse up front a password that could not reach the requester alone."""
    # The console and `run` show everything to whoever sits at the terminal, the approver included.
    if not secret and env.needs_approval and not isinstance(ctx.messenger, Whisperer):
        raise UserError("Here the approved change would show the password to whoever approves it, not to you alone.",
                        hint="Add `--secret NAME` to have it written to a Kubernetes Secret, or ask in Slack.")
    if secret and env.kubernetes is None:
        raise UserError(f"`{env.name}` has no Kubernetes configured, so there is nowhere to write Secret `{secret}`.",
                        hint="Leave out `--secret` to get the password in a reply only you see.")


# -- applying -----------------------------------------------------------------------------------


def apply(ctx: Context, env: Environment, payload: dict[str, Any], *, requester: str, immediate: bool) -> Reply:
    """Carry out one change, with its own audit row (who asked, what changed; a password never)."""
    try:
        reply = _apply(ctx, env, payload, requester=requester, immediate=immediate)
    except Exception as exc:
        _audit(ctx, env, payload, requester, "failed", getattr(exc, "message", type(exc).__name__))
        raise
    _audit(ctx, env, payload, requester, "ok", None)
    return reply


AUDITED_KEYS = ("op", "user", "role", "privilege", "object", "object_name", "database", "secret", "delivery")


def _audit(ctx: Context, env: Environment, payload: dict[str, Any], requester: str, outcome: str,
           detail: str | None) -> None:
    ctx.runtime.audit.record(
        user_id=ctx.user.user_id,
        action=f"milvus {payload['op'].replace('_', ' ')}",
        kind="milvus_security",
        environment=env.name,
        arguments={"requester": requester, **{k: payload[k] for k in AUDITED_KEYS if payload.get(k) is not None}},
        outcome=outcome,
        detail=detail,
        channel=ctx.channel,
    )


def _apply(ctx: Context, env: Environment, payload: dict[str, Any], *, requester: str, immediate: bool) -> Reply:
    op = payload["op"]
    security = ctx.services.milvus_security(env)
    if op in ("user_create", "user_password"):
        return _apply_password(ctx, env, payload, requester=requester, immediate=immediate)
    if op == "user_drop":
        security.drop_user(payload["user"])
        data = {"environment": env.name, "user": payload["user"], "dropped": True}
        return _done(f"Dropped Milvus user `{payload['user']}` in `{env.name}`.", data)
    if op in ("role_create", "role_drop"):
        (security.create_role if op == "role_create" else security.drop_role)(payload["role"])
        verb = "Created" if op == "role_create" else "Dropped"
        return _done(f"{verb} Milvus role `{payload['role']}` in `{env.name}`.",
                     {"environment": env.name, "role": payload["role"]})
    if op in ("role_grant", "role_revoke"):
        fn = security.grant if op == "role_grant" else security.revoke
        fn(payload["role"], payload["object"], payload["privilege"], payload["object_name"], payload["database"])
        verb = "Granted" if op == "role_grant" else "Revoked"
        prep = "to" if op == "role_grant" else "from"
        data = {k: payload[k] for k in ("role", "privilege", "object", "object_name", "database")}
        return _done(
            f"{verb} `{payload['privilege']}` on {payload['object']} `{payload['object_name']}` (database "
            f"`{payload['database']}`) {prep} role `{payload['role']}` in `{env.name}`.",
            {"environment": env.name, **data},
        )
    raise UsageError(f"Unknown security change {op!r}.")


def _done(text: str, data: dict[str, Any]) -> Reply:
    return Reply(text=text, blocks=[bk.section(f":white_check_mark: {bk.escape(text)}")], data=data)


def _root_password(ctx: Context, env: Environment) -> str:
    """Root cannot be recreated, so its old password is needed: the default, or the bot's own."""
    if ctx.services.milvus_login(env, "root", DEFAULT_ROOT_PASSWORD) is None:
        return DEFAULT_ROOT_PASSWORD
    token = ctx.settings.secret(env.milvus.token_env) or ""
    user, _, password = token.partition(":")
    if user == "root" and password:
        return password
    raise UserError("root's password can only be changed by someone who knows the current one.",
                    hint="Change it with the Milvus SDK as root, then keep it in a Secret.")


def _apply_password(ctx: Context, env: Environment, payload: dict[str, Any], *, requester: str,
                    immediate: bool) -> Reply:
    user, secret_name = payload["user"], payload.get("secret")
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    creating = payload["op"] == "user_create"
    verb = "Created Milvus user" if creating else "New password for Milvus user"
    where = f"`{user}` in `{env.name}`" + (f" with role `{payload['role']}`" if creating else "")
    if secret_name:
        # The Secret first: if Kubernetes refuses, Milvus still has the old password (or no user),
        # rather than a new one that nobody was ever given.
        namespace = Services.kube_target(env).namespace
        ctx.services.kube(env).write_secret(
            namespace, secret_name, {"username": user, "password": password},
            {"app.kubernetes.io/managed-by": "milvus-chatops"},
        )
    try:
        roles = _set_password(ctx, env, payload, password)
    except IntegrationError as exc:
        if secret_name:
            raise IntegrationError(
                f"{exc.message} Secret `{secret_name}` now holds a password Milvus does not know; run the command "
                "again once Milvus answers.", system="milvus",
            ) from None
        raise
    data: dict[str, Any] = {"environment": env.name, "user": user, "roles": roles,
                            "delivered": _delivery(secret_name)}
    if user == "root" and (ctx.settings.secret(env.milvus.token_env) or "").startswith("root:"):
        # Milvus checks credentials on every call, so the bot's own connection stops working now.
        where += (f" (the bot itself connects as root: put the new password in `{env.milvus.token_env}` and restart "
                  "it, or better, give it its own user)")
    if secret_name:
        namespace = Services.kube_target(env).namespace
        text = f"{verb} {where}; the password is in Secret `{secret_name}` (namespace `{namespace}`, key `password`)."
        return _done(text, data)
    shown = f"{verb} {where}. Password (shown once, only to you): `{password}`"
    if immediate:
        return Reply(text=shown, blocks=[bk.section(f":key: {shown}")], data={**data, "password": password},
                     response_type="ephemeral", sensitive=True)
    messenger = ctx.messenger
    if not isinstance(messenger, Whisperer):
        raise IntegrationError(f"{verb} {where} done, but this bot cannot show the password to <@{requester}> alone.",
                               hint=f"Run `/milvus user password {env.name} {user} --secret NAME`.", system="slack")
    try:
        messenger.whisper(payload.get("origin_channel"), requester, Message(shown, [bk.section(f":key: {shown}")]))
    except Exception:
        # Whatever the transport says stays out of the error: it may quote the message.
        raise IntegrationError(
            f"{verb} {where} done, but the password could not be shown to <@{requester}>.",
            hint=f"Run `/milvus user password {env.name} {user}` for a new one.", system="slack",
        ) from None
    return _done(f"{verb} {where}; the password was shown to <@{requester}> alone.", data)


def _set_password(ctx: Context, env: Environment, payload: dict[str, Any], password: str) -> list[str]:
    """Create the user or give it ``password``; returns its roles."""
    user = payload["user"]
    security = ctx.services.milvus_security(env)
    if payload["op"] == "user_create":
        security.create_user(user, password)
        security.grant_role(user, payload["role"])
        return [payload["role"]]
    if user == "root":
        security.change_password(user, _root_password(ctx, env), password)
        return []
    return security.reset_password(user, password)


# -- commands -----------------------------------------------------------------------------------


@command("user list", summary="Milvus users and their roles", args=EnvArgs, role=Role.operator, targets_env=True,
         examples=("/milvus user list prod",))
def user_list(ctx: Context, args: EnvArgs) -> Reply:
    env = ctx.require_env()
    _server(env)
    users = ctx.services.milvus_security(env).users_with_roles()
    lines = [f"`{bk.escape(u)}`: {', '.join(bk.escape(r) for r in roles) or '_no role_'}" for u, roles in users.items()]
    text = f"{len(users)} Milvus user(s) in {env.name}"
    return Reply(text=text, blocks=[bk.header(text), bk.section("\n".join(lines) or "_none_")],
                 data={"environment": env.name, "users": [{"name": u, "roles": r} for u, r in users.items()]})


@command("user create", summary="Create a Milvus user with a role and a generated password", args=UserCreateArgs,
         role=Role.admin, targets_env=True,
         examples=("/milvus user create prod search_svc --role reader", "/milvus user create prod etl --role "
                   "writer --secret etl-milvus"))
def user_create(ctx: Context, args: UserCreateArgs) -> Reply:
    env = ctx.require_env()
    _server(env)
    _check_delivery(ctx, env, args.secret)
    if args.role not in ctx.services.milvus_security(env).roles():
        raise UserError(f"There is no Milvus role `{args.role}` in `{env.name}`.",
                        hint=f"Create it first: `/milvus role create {env.name} {args.role}`.")
    payload = {"op": "user_create", "user": args.name, "role": args.role, "secret": args.secret,
               "delivery": _delivery(args.secret)}
    data = {"environment": env.name, "user": args.name, "roles": [args.role], "delivered": _delivery(args.secret)}
    return _change(ctx, env, payload, f"Create Milvus user {args.name} with role {args.role} in {env.name}", data)


@command("user password", summary="Give a Milvus user a new generated password", args=UserPasswordArgs,
         role=Role.admin, targets_env=True, examples=("/milvus user password prod search_svc",))
def user_password(ctx: Context, args: UserPasswordArgs) -> Reply:
    env = ctx.require_env()
    _server(env)
    _check_delivery(ctx, env, args.secret)
    payload = {"op": "user_password", "user": args.name, "secret": args.secret, "delivery": _delivery(args.secret)}
    data = {"environment": env.name, "user": args.name, "roles": [], "delivered": _delivery(args.secret)}
    return _change(ctx, env, payload, f"New password for Milvus user {args.name} in {env.name}", data)


@command("user drop", summary="Drop a Milvus user", args=UserArgs, role=Role.admin, targets_env=True,
         examples=("/milvus user drop prod old_svc",))
def user_drop(ctx: Context, args: UserArgs) -> Reply:
    env = ctx.require_env()
    _server(env)
    if args.name == "root":
        raise UserError("root cannot be dropped.")
    payload = {"op": "user_drop", "user": args.name}
    return _change(ctx, env, payload, f"Drop Milvus user {args.name} in {env.name}",
                   {"environment": env.name, "user": args.name, "dropped": False})


@command("role list", summary="Milvus roles, their users and privileges", args=EnvArgs, role=Role.operator,
         targets_env=True, examples=("/milvus role list prod",))
def role_list(ctx: Context, args: EnvArgs) -> Reply:
    env = ctx.require_env()
    _server(env)
    security = ctx.services.milvus_security(env)
    users = security.users_with_roles()
    roles = []
    lines = []
    for role in security.roles():
        members = sorted(u for u, r in users.items() if role in r)
        grants = security.grants(role)
        roles.append({"name": role, "users": members, "privileges": [g.as_data() for g in grants]})
        shown = ", ".join(f"{g.privilege} on {g.object} {g.object_name} ({g.database})" for g in grants[:15])
        more = f" and {len(grants) - 15} more" if len(grants) > 15 else ""
        lines.append(f"*{bk.escape(role)}*: users {bk.escape(', '.join(members)) or '-'}; "
                     f"{bk.escape(shown) or 'no privileges'}{more}")
    text = f"{len(roles)} Milvus role(s) in {env.name}"
    return Reply(text=text, blocks=[bk.header(text), *(bk.section(line) for line in lines)],
                 data={"environment": env.name, "roles": roles})


@command("role create", summary="Create a Milvus role", args=RoleArgs, role=Role.admin, targets_env=True,
         examples=("/milvus role create prod reader",))
def role_create(ctx: Context, args: RoleArgs) -> Reply:
    env = ctx.require_env()
    _server(env)
    return _change(ctx, env, {"op": "role_create", "role": args.role}, f"Create Milvus role {args.role} in {env.name}",
                   {"environment": env.name, "role": args.role})


@command("role drop", summary="Drop a Milvus role", args=RoleArgs, role=Role.admin, targets_env=True,
         examples=("/milvus role drop prod reader",))
def role_drop(ctx: Context, args: RoleArgs) -> Reply:
    env = ctx.require_env()
    _server(env)
    if args.role in ("admin", "public"):
        raise UserError(f"`{args.role}` is built into Milvus and cannot be dropped.")
    grants = ctx.services.milvus_security(env).grants(args.role)
    if grants:
        first = grants[0]
        raise UserError(
            f"Role `{args.role}` still grants {len(grants)} privilege(s); Milvus drops only empty roles.",
            hint=f"Revoke them first, e.g. `/milvus role revoke {env.name} {args.role} {first.privilege}"
                 + (f" --collection {first.object_name}`." if first.object == "Collection" else "`."),
        )
    return _change(ctx, env, {"op": "role_drop", "role": args.role}, f"Drop Milvus role {args.role} in {env.name}",
                   {"environment": env.name, "role": args.role})


def _grant_command(ctx: Context, args: GrantArgs, op: str) -> Reply:
    env = ctx.require_env()
    _server(env)
    given = "collection" in args.model_fields_set
    obj, object_name = _object_of(args.privilege, args.collection, given)
    data = {"environment": env.name, "role": args.role, "privilege": args.privilege, "object": obj,
            "object_name": object_name, "database": args.database}
    payload = {"op": op, **{k: v for k, v in data.items() if k != "environment"}}
    verb = "Grant" if op == "role_grant" else "Revoke"
    prep = "to" if op == "role_grant" else "from"
    title = f"{verb} {args.privilege} on {obj} {object_name} ({args.database}) {prep} role {args.role} in {env.name}"
    return _change(ctx, env, payload, title, data)


@command("role grant", summary="Grant a privilege to a Milvus role (on a collection, or every one)", args=GrantArgs,
         role=Role.admin, targets_env=True,
         examples=("/milvus role grant prod reader Search --collection docs", "/milvus role grant prod reader Query"))
def role_grant(ctx: Context, args: GrantArgs) -> Reply:
    return _grant_command(ctx, args, "role_grant")


@command("role revoke", summary="Revoke a privilege from a Milvus role", args=GrantArgs, role=Role.admin,
         targets_env=True, examples=("/milvus role revoke prod reader Search --collection docs",))
def role_revoke(ctx: Context, args: GrantArgs) -> Reply:
    return _grant_command(ctx, args, "role_revoke")
