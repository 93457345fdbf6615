"""/milvus backup create|list|show|verify|delete and /milvus restore: what the user types and reads.

Restoring into production (``production: true`` or ``approval.required``) asks for approval first; the
checks that do not change anything (the backup exists and is complete, the collections are in it,
nothing would be overwritten without ``--drop-existing``) run before the request, so approvers are
never asked for a restore that would be refused. Backup ids are checked against the ids the bot makes
before anything else, so no id can name a path outside its environment.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from bot import blocks as bk
from bot.args import positional
from bot.config import Environment, Role
from bot.context import Context
from bot.errors import ChatOpsError, NotFound
from bot.registry import command
from bot.reply import Reply
from bot.state import utcnow
from bot.units import format_bytes
from commands.approvals.workflow import ApprovalRequest, Approvals
from commands.backup.engine import create_backup, find_backup, list_backups
from commands.backup.format import CorruptBackup, read_manifest
from commands.backup.progress import rate, took
from commands.backup.records import BackupRecord, check_backup_id, check_belongs, env_of_backup_id
from commands.backup.restore import check_restore, restore_backup, verify_backup
from commands.backup.retention import apply_retention, delete_backup


class CreateArgs(BaseModel):
    env: str | None = positional(None, description="environment")
    collections: list[str] = positional([], description="collections to back up (default: the configured ones, or all)")


class ListArgs(BaseModel):
    env: str | None = positional(None, description="environment")


class BackupRefArgs(BaseModel):
    backup_id: str = positional(description="backup id, as shown by `/milvus backup list`")
    env: str | None = Field(None, description="environment of the backup (default: read from the id)")

    @field_validator("backup_id", mode="after")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        return check_backup_id(value)

    @model_validator(mode="after")
    def _env_from_id(self) -> BackupRefArgs:
        # The id starts with its environment, so the access check can happen in the right place.
        if self.env is None:
            self.env = env_of_backup_id(self.backup_id)
        return self


def needs_approval(env: Environment) -> bool:
    return env.needs_approval


def _record_line(record: BackupRecord) -> str:
    duration = f" in {took(record.duration_s)}" if record.duration_s is not None else ""
    return (
        f"`{bk.escape(record.id)}` · {record.created_at:%Y-%m-%d %H:%M} UTC · {len(record.collections)} "
        f"collection(s) · {record.rows:,} rows · {format_bytes(record.bytes)}{duration} · {record.trigger}"
    )


@command(
    "backup create",
    summary="Back up collections of an environment (logical engine or milvus-backup)",
    args=CreateArgs,
    role=Role.operator,
    targets_env=True,
    examples=("/milvus backup create prod", "/milvus backup create staging products reviews"),
)
def create(ctx: Context, args: CreateArgs) -> Reply:
    env = ctx.require_env()
    started = time.perf_counter()
    record = create_backup(
        ctx.runtime, env, args.collections or None, user=ctx.user.user_id, trigger="manual", progress=ctx.progress
    )
    retention_error = None
    try:
        deleted = apply_retention(ctx.runtime, env)
    except ChatOpsError as exc:  # the backup itself is good; say so, and why old ones stay
        deleted, retention_error = [], exc.message
    seconds = time.perf_counter() - started
    text = (
        f"Backup {record.id} of {env.name} is complete: {len(record.collections)} collection(s), "
        f"{record.rows:,} rows, {format_bytes(record.bytes)} in {took(seconds)}."
    )
    blocks = [
        bk.section(f":white_check_mark: {bk.escape(text)}"),
        bk.fields([
            f"*Collections*\n{bk.escape(', '.join(record.collections))}",
            f"*Engine*\n{record.engine}",
            f"*Where*\n{bk.escape(record.location)}",
            f"*Speed*\n{rate(record.bytes, seconds)}",
        ]),
    ]
    if deleted:
        blocks.append(bk.context(f"Retention deleted {len(deleted)} older backup(s): {bk.escape(', '.join(deleted))}"))
    if retention_error:
        blocks.append(bk.context(f":warning: Retention could not run: {bk.escape(retention_error)}"))
    return Reply(text=text, blocks=blocks, data=record.as_data(), response_type="in_channel")


@command(
    "backup list",
    summary="Usable backups of an environment, newest first",
    args=ListArgs,
    role=Role.viewer,
    targets_env=True,
    examples=("/milvus backup list prod",),
)
def list_(ctx: Context, args: ListArgs) -> Reply:
    env = ctx.require_env()
    listing = list_backups(ctx.runtime, env)
    blocks: list[dict[str, Any]] = [bk.header(f"Backups of {env.name}")]
    lines = [_record_line(r) for r in listing.usable]
    if lines:
        for start in range(0, len(lines), 15):
            blocks.append(bk.section("\n".join(lines[start : start + 15])))
    else:
        blocks.append(bk.section("_No usable backups yet._"))
    notes = []
    if listing.running:
        notes.append("running: " + ", ".join(r.id for r in listing.running))
    if listing.incomplete:
        notes.append(f"{len(listing.incomplete)} incomplete (no manifest; not usable, cleaned up automatically)")
    target = env.backup
    if target is not None:
        policy = []
        if target.retention.days:
            policy.append(f"{target.retention.days} days")
        if target.retention.keep_last:
            policy.append(f"last {target.retention.keep_last}")
        notes.append(f"retention: {' or '.join(policy) or 'keep all'}")
        if target.schedule:
            notes.append(f"schedule: `{bk.escape(target.schedule)}`")
    blocks.append(bk.context(bk.escape(" · ".join(notes))))
    text = f"{len(listing.usable)} usable backup(s) of {env.name}"
    return Reply(text=text, blocks=blocks, data=[r.as_data() for r in listing.usable])


@command(
    "backup show",
    summary="What a backup holds: collections, rows, sizes, objects",
    args=BackupRefArgs,
    role=Role.viewer,
    targets_env=True,
    examples=("/milvus backup show prod-20260101-020000-ab12",),
)
def show(ctx: Context, args: BackupRefArgs) -> Reply:
    env = ctx.require_env()
    check_belongs(env, args.backup_id)
    record = _usable(ctx, env, args.backup_id)
    data = record.as_data()
    details: list[dict[str, Any]] = []
    if record.engine == "logical":
        manifest = read_manifest(ctx.services.object_store(env), env.name, record.id)
        details = [
            {"name": c.name, "rows": c.rows, "bytes": c.bytes, "objects": len(c.objects),
             "partitions": c.partitions, "indexes": [i.get("index_type") for i in c.indexes]}
            for c in manifest.collections
        ]
        data["milvus_version"] = manifest.milvus_version
    data["collections_detail"] = details
    lines = [
        f"`{bk.escape(d['name'])}`: {d['rows']:,} rows · {format_bytes(d['bytes'])} · {d['objects']} object(s) "
        f"· partitions {bk.escape(', '.join(d['partitions']))} · index {bk.escape(', '.join(map(str, d['indexes'])))}"
        for d in details
    ] or [bk.escape(", ".join(record.collections))]
    blocks = [bk.header(f"Backup {record.id}"), bk.section(_record_line(record)), bk.section("\n".join(lines)),
              bk.context(f"{record.engine} · {bk.escape(record.location)}")]
    return Reply(text=f"Backup {record.id}: {record.rows:,} rows, {format_bytes(record.bytes)}",
                 blocks=blocks, data=data)


def _usable(ctx: Context, env: Environment, backup_id: str) -> BackupRecord:
    listing = list_backups(ctx.runtime, env)
    for record in listing.usable:
        if record.id == backup_id:
            return record
    if backup_id in listing.incomplete or any(r.id == backup_id for r in listing.running):
        raise NotFound(f"Backup `{bk.escape(backup_id)}` is incomplete (it has no manifest) and cannot be used.")
    raise NotFound(
        f"There is no backup `{bk.escape(backup_id)}` in `{env.name}`.",
        hint=f"`/milvus backup list {env.name}` shows the usable ones.",
    )


@command(
    "backup verify",
    summary="Re-read every object of a backup and check sizes and SHA-256 hashes against its manifest",
    args=BackupRefArgs,
    role=Role.viewer,
    targets_env=True,
    examples=("/milvus backup verify prod-20260101-020000-ab12",),
)
def verify(ctx: Context, args: BackupRefArgs) -> Reply:
    env = ctx.require_env()
    check_belongs(env, args.backup_id)
    report = verify_backup(ctx.runtime, env, args.backup_id, progress=ctx.progress)
    data = {"id": report.backup_id, "environment": env.name, "ok": report.ok, "objects": report.objects,
            "bytes": report.bytes, "problems": report.problems, "seconds": round(report.seconds, 3)}
    if not report.ok:
        raise CorruptBackup(
            f"Backup {report.backup_id} is damaged: {len(report.problems)} object(s) do not match the manifest: "
            + bk.escape("; ".join(report.problems[:10])),
            hint="Restores from it are refused. Take a new backup, or restore from an older one.",
        )
    how = "state reported by milvus-backup" if report.engine == "milvus-backup" else (
        f"{report.objects} object(s), {format_bytes(report.bytes)} re-read, sizes and SHA-256 match"
    )
    text = f"Backup {report.backup_id} is intact: {how} ({took(report.seconds)})."
    return Reply(text=text, blocks=[bk.section(f":white_check_mark: {bk.escape(text)}")], data=data)


@command(
    "backup delete",
    summary="Delete a backup (production backups need approval)",
    args=BackupRefArgs,
    role=Role.operator,
    targets_env=True,
    examples=("/milvus backup delete staging-20260101-020000-ab12",),
)
def delete(ctx: Context, args: BackupRefArgs) -> Reply:
    env = ctx.require_env()
    check_belongs(env, args.backup_id)
    record = _known(ctx, env, args.backup_id)
    if needs_approval(env):
        payload = {"backup_id": record.id, "env": env.name}
        title = f"Delete backup {record.id} of {env.name}"
        request = Approvals(ctx.runtime).request(
            ctx, kind="backup_delete", env=env.name, title=title,
            summary_blocks=[bk.section(_record_line(record))], payload=payload,
        )
        text = (f"Approval requested: {title} (request `{request.id}`); "
                f"{request.approvals_required} approval(s) needed from approvers of `{env.name}`.")
        return Reply(text=text, blocks=[bk.section(f":hourglass_flowing_sand: {bk.escape(text)}")],
                     data={**record.as_data(), "approval": request.to_data()})
    return _delete(ctx, env, record.id)


def _known(ctx: Context, env: Environment, backup_id: str) -> BackupRecord:
    """Usable or incomplete: both may be deleted."""
    listing = list_backups(ctx.runtime, env)
    for record in [*listing.usable, *listing.running]:
        if record.id == backup_id:
            return record
    if backup_id in listing.incomplete:
        return BackupRecord(backup_id, env.name, "logical", "incomplete", [], 0, 0, utcnow())
    raise NotFound(
        f"There is no backup `{bk.escape(backup_id)}` in `{env.name}`.",
        hint=f"`/milvus backup list {env.name}` shows them.",
    )


def _delete(ctx: Context, env: Environment, backup_id: str) -> Reply:
    count = delete_backup(ctx.runtime, env, backup_id)
    text = f"Deleted backup {backup_id} of {env.name} ({count} object(s))."
    return Reply(text=text, blocks=[bk.section(f":wastebasket: {bk.escape(text)}")],
                 data={"id": backup_id, "environment": env.name, "state": "deleted", "objects": count},
                 response_type="in_channel")


def execute_delete(ctx: Context, request: ApprovalRequest) -> Reply:
    env = ctx.runtime.environment(request.environment)
    backup_id = str(request.payload["backup_id"])
    Approvals(ctx.runtime).check_payload(request, {"backup_id": backup_id, "env": env.name})
    return _delete(ctx, env, backup_id)


# -- restore ---------------------------------------------------------------------------------------------


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

    @field_validator("backup_id", mode="after")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        return check_backup_id(value)

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
    source, _ = find_backup(ctx.runtime, args.backup_id)
    # Reading a backup is seeing its data: the requester must be allowed to view the source environment.
    ctx.runtime.policy.require(ctx.user, Role.viewer, source.name, "restore (read the backup)")
    pairs = check_restore(
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
    report = restore_backup(
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
            f"{check} ({took(c.seconds)})"
        )
    text = (f"Restored backup {report.backup_id} into {target.name}: {len(report.collections)} collection(s), "
            f"{report.rows:,} rows in {took(report.seconds)} ({rate(report.bytes, report.seconds)}); "
            "row counts match the manifest.")
    blocks = [bk.section(f":white_check_mark: {bk.escape(text)}"), bk.section("\n".join(lines))]
    return Reply(text=text, blocks=blocks, data=report.as_data(), response_type="in_channel")
