"""``milvus-chatops check-config``: is the file valid, and can we reach what it names?"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from urllib.parse import urlparse

from bot.config import Environment, load_config
from bot.errors import ChatOpsError
from bot.settings import Settings


def _tcp(url: str, timeout: float = 3.0) -> str | None:
    parsed = urlparse(url)
    host = parsed.hostname
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host:
        return f"cannot read a host from {url}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc.strerror or exc})"


def _checks_for(env: Environment) -> list[tuple[str, Callable[[], str | None]]]:
    checks: list[tuple[str, Callable[[], str | None]]] = []
    if env.milvus.uri.startswith(("http://", "https://")):
        checks.append(("milvus", lambda: _tcp(env.milvus.uri)))
    for name, url in (
        ("prometheus", env.prometheus_url),
        ("alertmanager", env.alertmanager_url),
        ("milvus-backup", env.backup.milvus_backup_url if env.backup else None),
        ("s3", env.backup.endpoint_url if env.backup else None),
    ):
        if url:
            checks.append((name, lambda url=url: _tcp(url)))  # type: ignore[misc]
    return checks


def check_config(settings: Settings, label: str | None = None) -> int:
    """Print what is valid and reachable; 0 all good, 1 invalid, 2 something unreachable or unset.
    ``label`` names the file in messages when it is checked under another name (init's draft)."""
    try:
        config = load_config(settings.config_path, settings.data_dir)
    except ChatOpsError as exc:
        print(exc.user_text(), file=sys.stderr)
        return 1
    source = label or settings.config_path or "embedded default"
    print(f"config: {source}: valid ({len(config.environments)} environment(s))")
    failures = 0
    for env in config.environments.values():
        for name, check in _checks_for(env):
            problem = check()
            status = "ok" if problem is None else f"FAILED: {problem}"
            failures += problem is not None
            print(f"  {env.name}: {name}: {status}")
        if env.milvus.token_env and not settings.secret(env.milvus.token_env):
            print(f"  {env.name}: milvus: FAILED: environment variable {env.milvus.token_env} is not set")
            failures += 1
    if not (settings.slack_bot_token and (settings.slack_signing_secret or settings.slack_app_token)):
        print("  slack: not configured (SLACK_BOT_TOKEN with SLACK_SIGNING_SECRET for HTTP, or SLACK_APP_TOKEN for "
              "Socket Mode); serve answers 503 on /slack/events")
    return 2 if failures else 0
