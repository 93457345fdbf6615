"""/milvus security: the audit command (the checks are in audit.py)."""

from __future__ import annotations

from pydantic import BaseModel

from bot import blocks as bk
from bot.args import positional
from bot.config import Role
from bot.context import Context
from bot.registry import command
from bot.reply import Reply
from commands.security.audit import FAIL, NOT_CHECKED, PASS, WARN, audit

ICONS = {PASS: ":white_check_mark:", WARN: ":warning:", FAIL: ":x:", NOT_CHECKED: ":grey_question:"}


class SecurityArgs(BaseModel):
    env: str | None = positional(None, description="environment")


@command(
    "security",
    summary="Audit how Milvus itself is secured: login, root password, TLS, certificate, NetworkPolicy, roles",
    args=SecurityArgs,
    role=Role.operator,
    targets_env=True,
    examples=("/milvus security prod",),
)
def security_command(ctx: Context, args: SecurityArgs) -> Reply:
    env = ctx.require_env()
    ctx.progress(f"Auditing the security of `{env.name}`…")
    checks = audit(ctx, env)
    counts = {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL, NOT_CHECKED)}
    summary = (f"Security of {env.name}: {counts[FAIL]} fail, {counts[WARN]} warn, {counts[PASS]} pass, "
               f"{counts[NOT_CHECKED]} not checked")
    blocks = [bk.header(f"Security of {env.name}"), bk.context(bk.escape(summary))]
    for check in checks:
        # Details come from servers and configs, so they are escaped; fixes are our own text with code spans.
        text = f"{ICONS[check.status]} *{bk.escape(check.title)}* ({check.status.replace('_', ' ')})\n" \
               f"{bk.escape(check.detail)}"
        if check.fix and check.status != PASS:
            text += f"\n_Fix:_ {bk.escape(check.fix)}"
        blocks.append(bk.section(bk.truncate(text, 2900)))
    lines = [f"[{c.status}] {c.title}: {c.detail}" + (f" Fix: {c.fix}" if c.fix and c.status != PASS else "")
             for c in checks]
    return Reply(text=summary + "\n" + "\n".join(lines), blocks=blocks,
                 data={"environment": env.name, "checks": [c.to_data() for c in checks]})
