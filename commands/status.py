"""/milvus status [env]: what runs in an environment: version, databases, collections."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment
from bot.context import Context
from bot.errors import IntegrationError
from bot.registry import Registry, command
from bot.reply import Reply


class StatusArgs(BaseModel):
    env: str | None = positional(None, description="environment (may be omitted when only one is configured)")


@command(
    "status",
    summary="Milvus version, databases and collections (rows, load state, indexes)",
    args=StatusArgs,
    targets_env=True,
    examples=("/milvus status prod",),
)
def status_command(ctx: Context, args: StatusArgs) -> Reply:
    env = ctx.require_env()
    release = _release_blocks(ctx, env)
    try:
        admin = ctx.services.milvus(env)
        version = admin.server_version()
        collections = admin.inventory()
        databases = sorted({c.database for c in collections} | set(admin.databases()))
    except IntegrationError as exc:
        if not release:
            raise
        # Milvus down is exactly when the release and pod state matter most: show what we have.
        return Reply(
            text=f"Milvus in {env.name} is not answering: {exc.message}",
            blocks=[
                bk.header(f"Milvus in {env.name}"),
                *release,
                bk.section(f":red_circle: Milvus is not answering: {bk.escape(exc.message)}"),
            ],
            data={"environment": env.name, "milvus_version": None, "collections": [], "error": exc.message},
        )
    total_rows = sum(c.rows for c in collections)
    lines = []
    for c in collections:
        state = ":large_green_circle: loaded" if c.loaded else ":white_circle: released"
        indexes = ", ".join(c.index_types) or "no index"
        lines.append(f"`{bk.escape(c.database)}.{bk.escape(c.name)}`: {c.rows:,} rows · {state} · {indexes}")
    blocks = [
        bk.header(f"Milvus in {env.name}"),
        bk.fields(
            [
                f"*Version*\n{bk.escape(version)}",
                f"*Databases*\n{len(databases)}",
                f"*Collections*\n{len(collections)}",
                f"*Rows*\n{total_rows:,}",
            ]
        ),
        *release,
    ]
    if lines:
        for start in range(0, len(lines), 20):
            blocks.append(bk.section("\n".join(lines[start : start + 20])))
    else:
        blocks.append(bk.section("_No collections yet._"))
    blocks.append(bk.context(f"{bk.escape(env.description or env.milvus.uri)}"))
    return Reply(
        text=f"Milvus {version} in {env.name}: {len(collections)} collections, {total_rows:,} rows",
        blocks=blocks,
        data={
            "environment": env.name,
            "milvus_version": version,
            "databases": databases,
            "collections": [c.as_data() for c in collections],
        },
    )


def _release_blocks(ctx: Context, env: Environment) -> list[dict[str, Any]]:
    """The Helm release's revision, chart, image and pod readiness, when the env is deployed by us."""
    if env.helm is None:
        return []
    from commands.deploy.history import release_summary

    return release_summary(ctx, env) or []


def register(registry: Registry) -> None:
    registry.add(status_command)
