"""Keep secrets out of Slack, logs, audit records and errors."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SECRET_KEY = re.compile(r"(pass(word)?|secret|token|credential|api[_-]?key|access[_-]?key|auth|private)", re.I)
MASK = "***"


def redact(value: Any, known_secrets: list[str] | tuple[str, ...] = ()) -> Any:
    """Mask values under secret-looking keys, ``key=value`` pairs with such keys, and known secrets."""
    if isinstance(value, dict):
        return {
            k: (MASK if SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v, known_secrets))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, known_secrets) for v in value]
    if isinstance(value, str):
        key, sep, _ = value.partition("=")
        if sep and SECRET_KEY.search(key):
            return f"{key}={MASK}"
        for secret in known_secrets:
            if secret and secret in value:
                value = value.replace(secret, MASK)
        return value
    return value


# HTTP clients that log whole request bodies at DEBUG (slack_sdk's Web API and response_url clients).
BODY_LOGGERS = ("slack_sdk.web.base_client", "slack_sdk.webhook.client")
_hushed = threading.local()


class _HushFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_hushed, "on", False)


@contextmanager
def hush_request_logs() -> Iterator[None]:
    """While this thread sends something secret (a generated password), drop the records the HTTP
    clients would log about it. Other threads keep logging; the filter is added once per logger."""
    for name in BODY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HushFilter) for f in logger.filters):
            logger.addFilter(_HushFilter())
    _hushed.on = True
    try:
        yield
    finally:
        _hushed.on = False
