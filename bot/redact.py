"""Keep secrets out of Slack, logs, audit records and errors."""

from __future__ import annotations

import re
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
