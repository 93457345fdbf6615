"""Keep secrets out of Slack, logs, audit records and errors."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

SECRET_KEY = re.compile(r"(pass(word)?|secret|token|credential|api[_-]?key|access[_-]?key|auth|private)", re.I)
MASK = "***"
# Credentials recognisable by their shape alone, whoever they belong to: a Slack token pasted into a
# command, an AWS key in an exception message. Known values (ours) are masked separately.
TOKEN_SHAPES = re.compile(
    r"\b(?:xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}|(?:AKIA|ASIA)[A-Z0-9]{16})\b"
)
_SPACES = re.compile(r"(\s+)")


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    """Mask known secret values, token-shaped strings and values given to secret-looking keys
    (``password=x``, ``auth.secret: x``, ``--token x``) inside free text such as a command line.

    Word by word, so the cost stays linear in the text, however long and however hostile."""
    for secret in known_secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    text = TOKEN_SHAPES.sub(MASK, text)
    parts = _SPACES.split(text)
    mask_next = False
    for index in range(0, len(parts), 2):  # words at even indexes, the spaces between them at odd ones
        word = parts[index]
        if not word:
            continue
        if mask_next:
            parts[index], mask_next = MASK, False
            continue
        key, sep, value = _split_pair(word)
        if sep and SECRET_KEY.search(key):
            if value:
                parts[index] = f"{key}{sep}{MASK}"
            else:
                mask_next = True  # "password: x" or "--token=" followed by the value
        elif word.startswith("-") and SECRET_KEY.search(word):
            mask_next = True  # "--token x"
    return "".join(parts)


def _split_pair(word: str) -> tuple[str, str, str]:
    cut = min((i for i in (word.find("="), word.find(":")) if i > 0), default=-1)
    if cut < 0:
        return word, "", ""
    return word[:cut], word[cut], word[cut + 1 :]


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
