"""The release's Helm history, and the release summary that `/milvus status` shows."""

from __future__ import annotations

from typing import Any

from bot import blocks as bk
from bot.config import Environment
from bot.context import Context
from bot.errors import IntegrationError, UserError
from bot.reply import Reply
from commands.deploy.prepare import image_of, release_target
from integrations.kubernetes import milvus_selector, readiness


def history_reply(ctx: Context, env: Environment, limit: int) -> Reply:
    release, namespace = release_target(env)
    revisions = ctx.services.helm(env).history(release, namespace, limit=limit)
    if not revisions:
        return Reply(text=f"`{release}` is not installed in `{namespace}`.", data={"revisions": []})
    lines = [
        f"*{r.revision}* {bk.escape(r.updated[:19])} · {bk.escape(r.status)} · {bk.escape(r.chart)} · "
        f"Milvus {bk.escape(r.app_version)} · {bk.escape(r.description[:120])}"
        for r in reversed(revisions)
    ]
    return Reply(
        text=f"{len(revisions)} revision(s) of {release} in {env.name}",
        blocks=[bk.header(f"Helm history of {release} in {env.name}"), bk.section("\n".join(lines))],
        data={"environment": env.name, "release": release, "revisions": [r.to_data() for r in revisions]},
    )


def release_summary(ctx: Context, env: Environment) -> list[dict[str, Any]] | None:
    """Blocks with the release's revision, chart, image and pod readiness; None without Helm."""
    if env.helm is None:
        return None
    try:
        release, namespace = release_target(env)
        helm = ctx.services.helm(env)
        current = helm.status(release, namespace)
        if current is None:
            return [bk.context(f"Helm release `{release}` is not installed in `{namespace}`.")]
        values = helm.get_values(release, namespace)
        cells = [
            f"*Release*\n`{release}` revision {current.revision} ({bk.escape(current.status)})",
            f"*Chart*\n{bk.escape(current.chart)}-{bk.escape(current.chart_version)}",
            f"*Image*\n{bk.escape(image_of(current, values))}",
        ]
        try:
            state = readiness(ctx.services.kube(env).pods(namespace, milvus_selector(release)))
            icon = ":large_green_circle:" if state.all_ready else ":red_circle:"
            pods = f"{icon} {state.line()}"
            if state.problems:
                pods += "\n" + "\n".join(bk.escape(p) for p in state.problems[:3])
        except IntegrationError as exc:
            pods = f":grey_question: {bk.escape(exc.message)}"
        cells.append(f"*Pods*\n{pods}")
        return [bk.fields(cells)]
    except (IntegrationError, UserError) as exc:
        return [bk.context(f":grey_question: Helm release unavailable: {bk.escape(exc.message)}")]
