"""The certificate watch: a scheduled handshake with each TLS environment's Milvus port that warns
the ops channel as the certificate nears expiry, once per threshold (30, 14, 7, 3, 1 days by default).

"Once" holds across runs and replicas: each threshold is a claim in the state store keyed by the
certificate's fingerprint, so the first replica to see a crossing posts and the others stay quiet,
and a renewed certificate starts afresh.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bot import blocks as bk
from bot.config import DEFAULT_EXPIRY_WARN_DAYS, Config, Environment
from bot.reply import Message
from bot.scheduler import JobSpec
from bot.state import utcnow
from integrations.milvus import is_lite

if TYPE_CHECKING:
    from bot.context import Runtime

TASK = "certificate_expiry"


def watched(env: Environment) -> bool:
    """Environments whose Milvus port should present a certificate."""
    if is_lite(env.milvus.uri):
        return False
    security = env.secured()
    return env.milvus.uri.startswith("https://") or bool(security and security.tls.enabled)


def certificate_jobs(config: Config) -> Iterable[JobSpec]:
    for name, env in config.environments.items():
        if watched(env):
            security = env.secured()
            cron = security.expiry_check_cron if security else "0 7 * * *"
            yield JobSpec(job_id=f"certificate-expiry:{name}", task=TASK, cron=cron,
                          timezone=config.reports.timezone, kwargs={"env": name})


def due_thresholds(days_left: float, thresholds: Iterable[int]) -> list[int]:
    """Thresholds the certificate has crossed, tightest last: 10 days left -> [30, 14]."""
    return sorted((t for t in thresholds if days_left <= t), reverse=True)


def check_certificate(runtime: Runtime, *, env: str, now: dt.datetime | None = None, **_: Any) -> str:
    """One look at ``env``'s certificate; posts to the ops channel when a threshold is newly crossed."""
    environment = runtime.environment(env)
    probe = runtime.services.tls_probe(environment)
    if not probe.tls or probe.not_after is None or probe.fingerprint is None:
        return f"{env}: no certificate on {probe.host}:{probe.port} ({probe.error or 'not TLS'})"
    days = probe.days_left(now or utcnow())
    assert days is not None
    security = environment.secured()
    thresholds = security.expiry_warn_days if security else list(DEFAULT_EXPIRY_WARN_DAYS)
    crossed = due_thresholds(days, thresholds)
    if not crossed:
        return f"{env}: certificate has {days:.0f} day(s) left; no threshold reached"
    channel = runtime.config.channels_for(environment).ops
    if not channel:
        return f"{env}: certificate has {days:.1f} day(s) left, but there is no ops channel to warn"
    owner = f"{os.getpid()}"
    # Claim every crossed threshold, so a certificate first seen at 5 days warns once (for 7),
    # not three times; the message names the tightest one.
    new = [t for t in crossed if runtime.store.claim(_key(env, probe.fingerprint, t), owner)]
    if not new:
        return f"{env}: certificate has {days:.1f} day(s) left; already warned"
    threshold = min(new)
    expired = days < 0
    when = f"{probe.not_after:%Y-%m-%d %H:%M} UTC"
    text = (f"Certificate of Milvus in {env} {'expired' if expired else 'expires'} {when} "
            f"({abs(days):.1f} day(s) {'ago' if expired else 'left'}; warning at {threshold} day(s)).")
    blocks = [
        bk.section(f":{'rotating_light' if days <= 7 else 'warning'}: *{bk.escape(text)}*"),
        bk.context(
            f"{bk.escape(probe.host)}:{probe.port} · `{bk.escape(probe.subject or '?')}` issued by "
            f"`{bk.escape(probe.issuer or '?')}` · renew it (cert-manager renews on its own when it issued the "
            f"Secret) and restart the Milvus pods; `/milvus security {env}` shows the rest."
        ),
    ]
    runtime.messenger.post(channel, Message(text, blocks), dedupe_key=_key(env, probe.fingerprint, threshold))
    return f"{env}: warned at {threshold} day(s) ({days:.1f} left)"


def certificate_status(runtime: Runtime, env: Environment, now: dt.datetime | None = None) -> tuple[str, str] | None:
    """For the health report: ("green"|"yellow"|"red"|"unknown", text), or None when nothing is watched."""
    from bot.errors import ChatOpsError

    if not watched(env):
        return None
    try:
        probe = runtime.services.tls_probe(env)
    except ChatOpsError as exc:
        return "unknown", f"not available: {exc.message}"
    if not probe.tls or probe.not_after is None:
        return "red", f"no certificate on {probe.host}:{probe.port} ({probe.error or 'not TLS'})"
    days = probe.days_left(now or utcnow())
    assert days is not None
    security = env.secured()
    horizon = max(security.expiry_warn_days) if security else max(DEFAULT_EXPIRY_WARN_DAYS)
    status = "red" if days <= 7 else "yellow" if days <= horizon else "green"
    state = "expired" if days < 0 else f"{days:.0f} day(s) left"
    return status, f"{state} (until {probe.not_after:%Y-%m-%d}, `{bk.escape(probe.subject or '?')}`)"


def _key(env: str, fingerprint: str, threshold: int) -> str:
    return f"certificate-expiry:{env}:{fingerprint[:32]}:{threshold}"
