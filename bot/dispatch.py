"""The one place where requests become handler calls: parse, check the role, run, audit, measure.

Every transport (Slack over HTTP or Socket Mode, the console, ``run``) and every button press goes
through ``Dispatcher``; nothing else calls a handler, so nothing escapes the access check or the
audit log.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bot import blocks as bk
from bot.access import Identity
from bot.args import closest, parse_args, tokenize
from bot.config import Environment, Role
from bot.context import Context, Runtime
from bot.errors import AccessDenied, ChatOpsError, IntegrationError, UsageError, describe_failure, exit_code_for
from bot.messaging import Progress, no_progress
from bot.metrics import COMMAND_LATENCY, COMMANDS
from bot.redact import redact
from bot.registry import CommandSpec
from bot.reply import Reply

log = logging.getLogger("milvus_chatops.dispatch")


@dataclass
class Outcome:
    reply: Reply
    exit_code: int  # 0 ok, 1 the user's error, 2 internal or integration failure


def error_reply(text: str) -> Reply:
    return Reply(text=text, blocks=[bk.section(f":warning: {text}")])


class Dispatcher:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.registry = runtime.registry

    # -- slash commands ------------------------------------------------------------------------

    def run_command(
        self,
        text: str,
        user: Identity,
        *,
        channel: str | None = None,
        progress: Progress = no_progress,
        trigger_id: str | None = None,
        kind: str = "command",
    ) -> Outcome:
        started = time.perf_counter()
        name = "unknown"
        env_name: str | None = None
        # Until the arguments parse, the row holds the text as typed (AuditLog redacts and caps it).
        arguments: dict[str, Any] = {"text": text}
        row: int | None = None
        try:
            tokens = tokenize(_strip_command_word(text))
            if not tokens:
                tokens = ["help"]
            spec, rest = self.registry.resolve(tokens)
            if spec is None:
                raise self._unknown(tokens[0])
            name = spec.name
            args = parse_args(spec.name, spec.args, rest)
            arguments = self._redacted(args)
            env = self._environment_for(spec, args)
            env_name = env.name if env else None
            if spec.role is not None:
                self.runtime.policy.require(user, spec.role, env_name, spec.name)
            if changes_things(spec.role):
                row = self._audit_first(name, kind, user, env_name, arguments, channel)
            ctx = Context(self.runtime, user, env, channel, progress, trigger_id)
            reply = spec.handler(ctx, args)
        except Exception as exc:
            return self._failed(exc, name, kind, user, env_name, arguments, channel, started, row)
        self._audit(name, kind, user, env_name, arguments, "ok", None, None, channel, started, row)
        return Outcome(reply, 0)

    def environment_of(self, text: str) -> str | None:
        """The configured environment a command line would act on, found without running it, so the
        transport can queue it with that environment's work; None when it names none (or no valid one)."""
        try:
            tokens = tokenize(_strip_command_word(text)) or ["help"]
            spec, rest = self.registry.resolve(tokens)
            if spec is None or not spec.targets_env:
                return None
            env = self._environment_for(spec, parse_args(spec.name, spec.args, rest))
            return env.name if env else None
        except Exception:
            # Whatever is wrong with the line, the command reports it properly when it runs; the
            # acknowledgement must not fail over it.
            return None

    def _unknown(self, word: str) -> UsageError:
        names = sorted({n.split()[0] for n in self.registry.commands})
        guess = closest(word.lower(), names)
        hint = f"Did you mean `/milvus {guess}`? " if guess else ""
        return UsageError(f"There is no subcommand {bk.code(word)}.", hint=f"{hint}Type `/milvus help` for the list.")

    def _environment_for(self, spec: CommandSpec, args: BaseModel) -> Environment | None:
        if not spec.targets_env:
            return None
        return self.runtime.environment(getattr(args, "env", None))

    def _redacted(self, args: BaseModel) -> dict[str, Any]:
        dumped = args.model_dump(mode="json", exclude_defaults=True)
        result: dict[str, Any] = redact(dumped, self.runtime.settings.secret_values())
        return result

    # -- buttons and modals ----------------------------------------------------------------------

    def run_action(
        self,
        action_id: str,
        payload: dict[str, Any],
        user: Identity,
        *,
        channel: str | None = None,
        progress: Progress = no_progress,
        trigger_id: str | None = None,
        kind: str = "button",
    ) -> Outcome:
        """``payload`` is the decoded button value, or a modal's values plus its private_metadata."""
        started = time.perf_counter()
        spec = self.registry.action_for(action_id)
        env_name = payload.get("env") if isinstance(payload.get("env"), str) else None
        arguments = redact(payload, self.runtime.settings.secret_values())
        row: int | None = None
        try:
            if spec is None:
                raise UsageError("This button is no longer supported; run the command again.")
            env = self.runtime.environment(env_name) if env_name else None
            self.runtime.policy.require(user, spec.role, env_name, _action_label(spec.name))
            if changes_things(spec.role):
                row = self._audit_first(action_id, kind, user, env_name, arguments, channel)
            ctx = Context(self.runtime, user, env, channel, progress, trigger_id)
            reply = spec.handler(ctx, payload)
        except Exception as exc:
            return self._failed(exc, action_id, kind, user, env_name, arguments, channel, started, row)
        self._audit(action_id, kind, user, env_name, arguments, "ok", None, None, channel, started, row)
        return Outcome(reply, 0)

    # -- shared ----------------------------------------------------------------------------------

    def _failed(
        self,
        exc: Exception,
        name: str,
        kind: str,
        user: Identity,
        env_name: str | None,
        arguments: dict[str, Any],
        channel: str | None,
        started: float,
        row: int | None = None,
    ) -> Outcome:
        text, ref = describe_failure(exc, context=f"{kind} {name} by {user.user_id}")
        text = redact(text, self.runtime.settings.secret_values())
        if isinstance(exc, AccessDenied):
            outcome = "denied"
        elif isinstance(exc, ChatOpsError) and exit_code_for(exc) == 1:
            outcome = "rejected"
        else:
            outcome = "failed"
        self._audit(name, kind, user, env_name, arguments, outcome, text, ref, channel, started, row)
        return Outcome(error_reply(text), exit_code_for(exc))

    def _audit(
        self,
        name: str,
        kind: str,
        user: Identity,
        env_name: str | None,
        arguments: dict[str, Any],
        outcome: str,
        detail: str | None,
        ref: str | None,
        channel: str | None,
        started: float,
        row: int | None = None,
    ) -> None:
        elapsed = time.perf_counter() - started
        COMMANDS.labels(name, outcome).inc()
        COMMAND_LATENCY.labels(name).observe(elapsed)
        try:
            if row is not None:
                audit = self.runtime.audit
                audit.finish(row, outcome=outcome, detail=detail, reference=ref, duration_ms=elapsed * 1000)
                return
            self.runtime.audit.record(
                user_id=user.user_id,
                action=name,
                kind=kind,
                environment=env_name,
                arguments=json.loads(json.dumps(arguments, default=str)),
                outcome=outcome,
                detail=detail,
                reference=ref,
                channel=channel,
                duration_ms=elapsed * 1000,
            )
        except Exception:
            # The reply still goes out; losing the audit row is logged loudly rather than hiding the result.
            log.exception("could not write the audit record for %s %s by %s", kind, name, user.user_id)


    def _audit_first(
        self, name: str, kind: str, user: Identity, env_name: str | None, arguments: dict[str, Any],
        channel: str | None,
    ) -> int:
        """Record a change before making it: if the record cannot be written, the change is not made."""
        try:
            return self.runtime.audit.record(
                user_id=user.user_id, action=name, kind=kind, environment=env_name, arguments=arguments,
                outcome="started", channel=channel,
            )
        except Exception as exc:
            log.error("audit log cannot be written; refusing %s %s by %s", kind, name, user.user_id, exc_info=True)
            raise IntegrationError(
                f"Not done: `{name}` changes things, and the audit log cannot be written right now, "
                "so nothing was changed.",
                hint="Read-only commands still work. Tell whoever runs the bot: its state store refuses writes "
                "(a full disk?).",
                system="state",
            ) from exc


def changes_things(role: Role | None) -> bool:
    """Whether a command or button must have its audit row written before it runs.

    Decided by the role it needs, from its spec: operator and admin commands change a cluster or the
    bot's state (deploy, rollback, backup, restore, silence, approve); the few admin-only reads (audit)
    are refused with them on a full disk, the safe side of the line. Viewer and unrestricted commands
    only read, so they still answer when their row is lost (the loss is logged).
    """
    return role is not None and role >= Role.operator


def _strip_command_word(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("/milvus"):
        stripped = stripped[len("/milvus") :]
    return stripped.strip()


def _action_label(name: str) -> str:
    return name.replace("_", " ")
