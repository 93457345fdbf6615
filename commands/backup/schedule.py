"""Scheduled backups: the jobs a config asks for, the task that runs one and reports to the ops channel,
and the sweeps (recovery of dead work at start-up and every minute; incomplete objects hourly)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bot import blocks as bk
from bot.config import Config
from bot.reply import Message
from bot.scheduler import JobSpec
from bot.state import utcnow
from bot.units import format_bytes
from commands.backup.engine import create_backup
from commands.backup.progress import took
from commands.backup.records import ops_channel
from commands.backup.recovery import cleanup_incomplete
from commands.backup.retention import apply_retention

if TYPE_CHECKING:
    from bot.context import Runtime

log = logging.getLogger("milvus_chatops.backup")


def backup_jobs(config: Config) -> Iterable[JobSpec]:
    for name, env in config.environments.items():
        if env.backup is not None and env.backup.schedule:
            yield JobSpec(job_id=f"backup:{name}", task="backup", cron=env.backup.schedule,
                          timezone=config.reports.timezone, kwargs={"env": name})


def scheduled_backup(runtime: Runtime, *, env: str, **_: Any) -> str:
    """A scheduled backup: result (size and duration, or the reason it failed) to the ops channel."""
    environment = runtime.environment(env)
    channel = ops_channel(runtime, environment)
    ref = f"backup:{env}:{utcnow():%Y%m%d%H%M%S}"
    posted = False
    if channel:
        runtime.messenger.post(channel, Message(f"Scheduled backup of {env} started."), ref=ref)
        posted = True
    last = [0.0]

    def progress(text: str) -> None:
        now = time.monotonic()
        if posted and now - last[0] >= 30:
            last[0] = now
            runtime.messenger.update(ref, Message(f":hourglass_flowing_sand: Scheduled backup of {env}: {text}"))

    started = time.perf_counter()
    try:
        try:
            cleanup_incomplete(runtime, environment)
        except Exception:
            log.exception("cleanup of incomplete backups in %s failed; backing up anyway", env)
        record = create_backup(runtime, environment, user="scheduler", trigger="schedule", progress=progress)
    except Exception as exc:
        reason = getattr(exc, "message", None) or "unexpected error; see the bot's log"
        text = f":x: Scheduled backup of {env} failed after {took(time.perf_counter() - started)}: {reason}"
        if posted:
            runtime.messenger.update(ref, Message(text, [bk.section(bk.escape(text))]))
        raise
    seconds = time.perf_counter() - started
    try:
        deleted = apply_retention(runtime, environment)
        retention = f"; retention deleted {', '.join(deleted)}" if deleted else ""
    except Exception as exc:  # the backup is good; old ones simply stay until the next run
        log.exception("retention in %s failed", env)
        retention = f"; retention could not run: {getattr(exc, 'message', None) or type(exc).__name__}"
    summary = (
        f"Backup {record.id}: {len(record.collections)} collection(s), {record.rows:,} rows, "
        f"{format_bytes(record.bytes)} in {took(seconds)}{retention}"
    )
    if posted:
        done = f":white_check_mark: {summary}"
        runtime.messenger.update(ref, Message(done, [bk.section(bk.escape(done))]))
    return summary


def sweep_incomplete(runtime: Runtime) -> None:
    for env in runtime.config.environments.values():
        if env.backup is not None and env.backup.engine == "logical":
            try:
                cleanup_incomplete(runtime, env)
            except Exception:
                log.exception("cleanup of incomplete backups in %s failed", env.name)
