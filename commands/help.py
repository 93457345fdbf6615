"""/milvus help [subcommand]: the list of subcommands, or one's arguments, generated from its model."""

from __future__ import annotations

from pydantic import BaseModel

from bot import blocks as bk
from bot.args import describe_options, positional, usage_line
from bot.context import Context
from bot.errors import NotFound
from bot.registry import Registry, command
from bot.reply import Reply


class HelpArgs(BaseModel):
    topic: list[str] = positional(default_factory=list, description="a subcommand, e.g. `plan` or `backup create`")


@command(
    "help",
    summary="List subcommands, or show one's arguments",
    args=HelpArgs,
    role=None,
    examples=("/milvus help plan",),
)
def help_command(ctx: Context, args: HelpArgs) -> Reply:
    if args.topic:
        return _one(ctx.runtime.registry, " ".join(args.topic).lower(), _example_env(ctx))
    lines = [f"`{spec.name}` — {spec.summary}" for specs in ctx.runtime.registry.groups().values() for spec in specs]
    text = "\n".join(lines)
    envs = ", ".join(ctx.config.environments)
    return Reply(
        text="/milvus subcommands:\n" + text,
        blocks=[
            bk.header("/milvus: Milvus operations from Slack"),
            bk.section(text),
            bk.context(f"Environments: {envs}. `/milvus help <subcommand>` shows its arguments."),
        ],
        data={"commands": sorted(ctx.runtime.registry.commands)},
    )


def _example_env(ctx: Context) -> str:
    """An environment of this config for examples written with ``{env}``: one that exists here,
    preferring one where trying things is harmless."""
    envs = list(ctx.config.environments.values())
    return next((e.name for e in envs if not e.production), envs[0].name)


def _one(registry: Registry, topic: str, env: str) -> Reply:
    specs = [s for name, s in registry.commands.items() if name == topic or name.split()[0] == topic]
    if not specs:
        from bot.args import closest

        guess = closest(topic, sorted(registry.commands))
        hint = f"Did you mean `{guess}`? " if guess else ""
        raise NotFound(f"There is no subcommand {bk.code(topic)}.", hint=f"{hint}Type `/milvus help` for the list.")
    out: list[dict] = []
    texts = []
    for spec in specs:
        usage = usage_line(spec.name, spec.args)
        options = "\n".join(f"• {line}" for line in describe_options(spec.args)) or "No arguments."
        examples = "\n".join(f"`{e.replace('{env}', env)}`" for e in spec.examples)
        body = f"*{spec.summary}*\n`{usage}`\n{options}" + (f"\nExamples:\n{examples}" if examples else "")
        if spec.role is not None:
            body += f"\n_Needs the {spec.role.name} role{' in the environment' if spec.targets_env else ''}._"
        texts.append(body)
        out.append(bk.section(body))
    return Reply(text="\n\n".join(texts), blocks=out)


def register(registry: Registry) -> None:
    registry.add(help_command)
