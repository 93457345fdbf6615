"""Keep secrets out of Slack, logs, audit records and errors."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

SECRET_KEY = re.compile(r"(pass(word)?|secret|token|credential|api[_-]?key|access[_-]?key|auth|private)", re.I)
MASK = "***"
# Credentials recognisable by their shape alone, whoever they belong to: a Slack token pasted into a
# command, an AWS key in an exception message. Known values (ours) are masked separately.
TOKEN_SHAPES = re.compile(
    r"\b(?:xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}|(?:AKIA|ASIA)[A-Z0-9]{16})\b"
)
# ``password=x``, ``--token x``, ``auth.secret: x`` inside free text (a command line, a log message).
_KEY_VALUE = re.compile(
    r"(?P<key>[\w.\-]*(?:pass(?:word)?|secret|token|credential|api[_-]?key|access[_-]?key|private)[\w.\-]*)"
    r"(?P<sep>\s*[=:]\s*|\s+)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&]+)",
    re.I,
)


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    """Mask known secret values, token-shaped strings and values given to secret-looking keys."""
    for secret in known_secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    text = TOKEN_SHAPES.sub(MASK, text)
    return _KEY_VALUE.sub(_mask_value, text)


def _mask_value(match: re.Match[str]) -> str:
    if match.group("sep").isspace() and not match.group("key").startswith("-"):
        return match.group(0)  # "the token expired": a word followed by another word, not a flag and value
    if match.group("value") == MASK:
        return match.group(0)
    return f"{match.group('key')}{match.group('sep')}{MASK}"


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
        return redact_text(value, known_secrets)
    return value
