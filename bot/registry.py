"""The one registry of subcommands, buttons and modals.

Command modules declare themselves with ``@command`` / ``@action`` / ``@view``; ``load_commands``
imports every module in ``commands/`` once. Nothing here runs a handler: bot/dispatch.py does, after
the access check, and writes the audit record.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from bot.config import Role

if TYPE_CHECKING:
    from bot.context import Context
    from bot.reply import Reply

Handler = Callable[["Context", Any], "Reply"]


@dataclass(frozen=True)
class CommandSpec:
    name: str  # "status" or "backup create"
    summary: str
    args: type[BaseModel]
    handler: Handler
    role: Role | None  # None: anyone in the workspace (help, whoami)
    # Commands that act on one environment take it as the first positional argument or --env.
    targets_env: bool
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionSpec:
    """A button (``action_id``) or a modal submission (``callback_id``).

    ``handler(ctx, payload)`` gets the decoded button value (a dict) or the modal's submitted values.
    The environment for the access check is ``payload["env"]`` when present.
    """

    name: str
    handler: Handler
    role: Role
    kind: str = "button"


@dataclass
class Registry:
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    actions: dict[str, ActionSpec] = field(default_factory=dict)
    loaded: bool = False

    def add_command(self, spec: CommandSpec) -> None:
        if spec.name in self.commands:
            raise RuntimeError(f"command {spec.name!r} registered twice")
        self.commands[spec.name] = spec

    def add_action(self, spec: ActionSpec) -> None:
        if spec.name in self.actions:
            raise RuntimeError(f"action {spec.name!r} registered twice")
        self.actions[spec.name] = spec

    def resolve(self, tokens: list[str]) -> tuple[CommandSpec | None, list[str]]:
        """Longest match: ``backup create prod`` -> (backup create, [prod])."""
        for length in (2, 1):
            if len(tokens) >= length:
                name = " ".join(tokens[:length]).lower()
                if name in self.commands:
                    return self.commands[name], tokens[length:]
        return None, tokens

    def groups(self) -> dict[str, list[CommandSpec]]:
        out: dict[str, list[CommandSpec]] = {}
        for spec in sorted(self.commands.values(), key=lambda s: s.name):
            out.setdefault(spec.name.split()[0], []).append(spec)
        return out

    def action_for(self, action_id: str) -> ActionSpec | None:
        # Buttons may carry a suffix after ':' to keep action_ids unique within one message.
        return self.actions.get(action_id.split(":", 1)[0])


REGISTRY = Registry()


def command(
    name: str,
    *,
    summary: str,
    args: type[BaseModel],
    role: Role | None = Role.viewer,
    targets_env: bool = False,
    examples: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        REGISTRY.add_command(CommandSpec(name, summary, args, fn, role, targets_env, examples))
        return fn

    return register


def action(name: str, *, role: Role = Role.operator, kind: str = "button") -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        REGISTRY.add_action(ActionSpec(name, fn, role, kind))
        return fn

    return register


def load_commands() -> Registry:
    if not REGISTRY.loaded:
        import commands

        for module in pkgutil.iter_modules(commands.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"commands.{module.name}")
        REGISTRY.loaded = True
    return REGISTRY
