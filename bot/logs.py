"""Logging for every command: one line per record (or one JSON object), secrets masked in the whole
formatted record, library chatter kept off a terminal.

Records are built from user input (slash command text, webhook labels), so the format must not let
that input forge a record, and from exceptions, whose text may carry a URL with a token in it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from bot.redact import redact_text
from bot.settings import Settings

# Record attributes every LogRecord has; anything else was passed in ``extra=`` and is structured data.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
OUR_LOGGERS = "milvus_chatops"


class RedactingFormatter(logging.Formatter):
    """The last line of defence for secrets, applied to the whole formatted record: the message, its
    arguments and the traceback (an exception message can hold a URL with a token in it)."""

    def __init__(self, secrets: Callable[[], list[str]]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self.render(record), self.secrets())

    def render(self, record: logging.LogRecord) -> str:
        """One line per record, whatever the message holds: user text with a newline in it (a slash
        command, a webhook label) must not be able to start a line that reads like a record of its own.
        Traceback lines follow indented behind ``  | ``, so no line of theirs can pass for a record either."""
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {_one_line(record.getMessage())}"
        details = _exception_text(self, record)
        if details:
            line += "\n" + "\n".join(f"  | {part}" for part in details.splitlines())
        return line


class JsonFormatter(RedactingFormatter):
    """One JSON object per line for log pipelines; fields passed with ``extra=`` become keys."""

    def render(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{k: v if isinstance(v, int | float | bool | None) else str(v) for k, v in _extras(record).items()},
        }
        details = _exception_text(self, record)
        if details:
            entry["exception"] = details
        return json.dumps(entry, ensure_ascii=False)


def _one_line(text: str) -> str:
    return text.replace("\n", "\\n").replace("\r", "\\r")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    elif record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


class _OursOnly(logging.Filter):
    """On a terminal (``run``, ``console``) the user asked for one reply: libraries' retry warnings and
    tracebacks (pymilvus, urllib3, grpc) say nothing the reply does not, so only our records show."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == OUR_LOGGERS or record.name.startswith(OUR_LOGGERS + ".")


# Libraries whose own records say nothing that our one-line integration errors do not: pymilvus warns
# about mvccTs on every query iterator, and Milvus Lite's in-process gRPC server logs a traceback for
# every call it does not implement (AllocTimestamp, on every restore). Kept, but at DEBUG.
DEMOTED_LIBRARIES = ("pymilvus", "grpc", "milvus_lite")


class _DemoteLibraries(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and record.name.split(".")[0] in DEMOTED_LIBRARIES:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.level <= logging.DEBUG
        return True


def setup_logging(settings: Settings, default_level: str = "INFO", *, terminal: bool = False) -> None:
    formatter_class = JsonFormatter if settings.log_format == "json" else RedactingFormatter
    level = logging.getLevelName((settings.log_level or default_level).upper())
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_class(settings.secret_values))
    handler.addFilter(_DemoteLibraries(level if isinstance(level, int) else logging.INFO))
    if terminal and not settings.log_level:
        handler.addFilter(_OursOnly())
        # Python warnings (pymilvus' mvccTs notice) become records of "py.warnings", which the filter drops.
        logging.captureWarnings(True)
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((settings.log_level or default_level).upper())
    adopt_library_loggers()


# Libraries that install their own stderr handlers at import (pymilvus does, with propagate=False):
# their records would skip masking, the one-line format and the terminal filter.
SELF_CONFIGURED_LIBRARIES = ("pymilvus",)


def adopt_library_loggers() -> None:
    """Send such libraries' records through our handler; call again after they are first imported."""
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in SELF_CONFIGURED_LIBRARIES:
            logger = logging.getLogger(name)
            logger.handlers[:] = []
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
