"""/milvus restore <backup-id> --to <env>: rebuild collections from a backup, checked before they go live.

Restoring into production (``production: true`` or ``approval.required``) asks for approval first; the
checks that do not change anything (the backup exists and is complete, the collections are in it,
nothing would be overwritten without ``--drop-existing``) run before the request, so approvers are
never asked for a restore that would be refused.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field, field_validator

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment, Role
from bot.context import Context
from bot.registry import command
from bot.reply import Reply
from commands.approvals.workflow import ApprovalRequest, Approvals
from commands.backup import engine as backups
from commands.backup.commands import needs_approval


class RestoreArgs(BaseModel):
    backup_id: str = positional(description="backup id, as shown by `/milvus backup list`")
    to: str = Field(description="environment to restore into")
    collections: list[str] = Field(
        default_factory=list, description="only these collections (repeat or comma-separate)"
    )
    suffix: str | None = Field(None, description="append this to each restored collection's name, e.g. _restored")
    drop_existing: bool = Field(
        False, description="replace collections that already exist (after the restore checks out)"
    )

    @field_validator("collections", mode="after")
    @classmethod
    def _split(cls, value: list[str]) -> list[str]:
        return [c.strip() for item in value for c in item.split(",") if c.strip()]

    @field_validator("suffix")
    @classmethod
    def _valid_suffix(cls, value: str | None) -> str | None:
        if value and not all(ch.isalnum() or ch == "_" for ch in value):
            raise ValueError("may hold only letters, digits and underscores")
        return value

    @property
    def env(self) -> str:
        """The dispatcher checks the operator role in the environment being restored into."""
        return self.to


def _throttled(progress: Any, every_s: float) -> Any:
    last = [0.0]

    def report(text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            progress(text)

    return report


@command(
    "restore",
    summary="Restore collections from a backup into an environment (production needs approval)",
    args=RestoreArgs,
    role=Role.operator,
    targets_env=True,
    examples=(
        "/milvus restore prod-20260101-020000-ab12 --to staging",
        "/milvus restore prod-20260101-020000-ab12 --to prod --collections products --suffix _restored",
    ),
)
def restore_command(ctx: Context, args: RestoreArgs) -> Reply:
    target = ctx.require_env()
    source, _ = backups.find_backup(ctx.runtime, args.backup_id)
    # Reading a backup is seeing its data: the requester must be allowed to view the source environment.
    ctx.runtime.policy.require(ctx.user, Role.viewer, source.name, "restore (read the backup)")
    pairs = backups.check_restore(
        ctx.runtime, source, args.backup_id, target,
        collections=args.collections or None, suffix=args.suffix or "", drop_existing=args.drop_existing,
    )
    payload = {
        "backup_id": args.backup_id,
        "source_env": source.name,
        "env": target.name,
        "collections": args.collections,
        "suffix": args.suffix or "",
        "drop_existing": args.drop_existing,
    }
    if needs_approval(target):
        title = f"Restore backup {args.backup_id} into {target.name}"
        mapping = ", ".join(f"{s} → {t}" for s, t in pairs)
        summary = [
            bk.section(f"*{bk.escape(title)}*\n{bk.escape(mapping)}"),
            bk.context(
                ("Existing collections will be REPLACED after the restore checks out. " if args.drop_existing else "")
                + "Restored under a temporary name, checked (row counts, sampled rows), then renamed into place."
            ),
        ]
        request = Approvals(ctx.runtime).request(
            ctx, kind="restore", env=target.name, title=title, summary_blocks=summary, payload=payload
        )
        text = (f"Approval requested: {title} (request `{request.id}`); {request.approvals_required} approval(s) "
                f"needed from approvers of `{target.name}`. Nothing has been restored yet.")
        return Reply(text=text, blocks=[bk.section(f":hourglass_flowing_sand: {bk.escape(text)}"), *summary],
                     data={**payload, "approval": request.to_data()})
    return _run(ctx, source, target, payload, ctx.progress)


def execute_restore(ctx: Context, request: ApprovalRequest) -> Reply:
    payload = dict(request.payload)
    Approvals(ctx.runtime).check_payload(request, payload)
    source = ctx.runtime.environment(str(payload["source_env"]))
    target = ctx.runtime.environment(str(payload["env"]))
    # Each progress line becomes a reply in the approval's thread: a few per minute is plenty.
    return _run(ctx, source, target, payload, _throttled(ctx.progress, 30.0))


def _run(ctx: Context, source: Environment, target: Environment, payload: dict[str, Any], progress: Any) -> Reply:
    report = backups.restore_backup(
        ctx.runtime, source, str(payload["backup_id"]), target,
        collections=list(payload.get("collections") or []) or None,
        suffix=str(payload.get("suffix") or ""),
        drop_existing=bool(payload.get("drop_existing")),
        progress=progress,
    )
    lines = []
    for c in report.collections:
        check = f"{c.sampled} sampled rows equal" if c.sampled else "row count checked"
        lines.append(
            f"`{bk.escape(c.source)}` → `{bk.escape(c.target)}`: {c.rows_restored:,} of {c.rows_expected:,} rows, "
            f"{check} ({c.seconds:,.1f} s)"
        )
    mbps = report.bytes / 1e6 / max(report.seconds, 1e-9)
    text = (f"Restored backup {report.backup_id} into {target.name}: {len(report.collections)} collection(s), "
            f"{report.rows:,} rows in {report.seconds:,.0f} s ({mbps:,.1f} MB/s); row counts match the manifest.")
    blocks = [bk.section(f":white_check_mark: {bk.escape(text)}"), bk.section("\n".join(lines))]
    return Reply(text=text, blocks=blocks, data=report.as_data(), response_type="in_channel")
