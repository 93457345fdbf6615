"""The one error hierarchy of the bot.

What the user sees depends only on the class:
- ``UserError`` and its children are shown exactly as written (they were written for the user);
- ``IntegrationError`` is shown as written plus a reference id, because an outside system failed and
  the operator may want to find the log line;
- anything else is shown as a short reference id only; the traceback is logged under that id.

Messages must never contain secrets: integrations build them from names and URLs, never tokens.
"""

from __future__ import annotations

import logging
import secrets

log = logging.getLogger("milvus_chatops.errors")


class ChatOpsError(Exception):
    """Base class for every error the bot raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_text(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class UserError(ChatOpsError):
    """The request cannot be done as asked; the user can fix it."""

    exit_code = 1


class UsageError(UserError):
    """Bad arguments: the hint says what to type instead."""


class NotFound(UserError):
    pass


class Conflict(UserError):
    """Someone else holds what this request needs (a lock, a pending approval)."""


class AccessDenied(UserError):
    pass


class ConfigError(ChatOpsError):
    """The configuration file is invalid; the message names the key."""

    exit_code = 1


class IntegrationError(ChatOpsError):
    """An outside system (Milvus, S3, Prometheus, Kubernetes, helm, Slack) failed or is unreachable."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, system: str = "") -> None:
        super().__init__(message, hint=hint)
        self.system = system


def new_reference() -> str:
    return secrets.token_hex(4)


def describe_failure(exc: BaseException, *, context: str = "") -> tuple[str, str | None]:
    """Return (text for the user, reference id or None) and log what the operator needs.

    The traceback goes to the log only, keyed by the reference, never into the reply.
    """
    if isinstance(exc, UserError | ConfigError):
        return exc.user_text(), None
    ref = new_reference()
    if isinstance(exc, IntegrationError):
        # An outside system being down is expected operation, not a bug in the bot: one line says what
        # failed; the traceback (library internals) is there for whoever turns on DEBUG.
        log.warning("ref=%s %s: %s", ref, context, exc.message, extra={"ref": ref, "system": exc.system or None})
        log.debug("ref=%s traceback", ref, exc_info=exc)
        return f"{exc.user_text()}\n(reference `{ref}`)", ref
    log.error("ref=%s unexpected failure in %s", ref, context, exc_info=exc)
    return f"Something went wrong on our side (reference `{ref}`). The details are in the bot's log.", ref


def exit_code_for(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, ChatOpsError) else 2
