"""What the capabilities declare: subcommands, buttons and modals, scheduled tasks, sweeps, approval
executors, HTTP routes and background workers.

A capability package exposes one ``register(registry)`` that adds its pieces here; the composition
root (``commands.build_registry``) calls each in turn. Nothing registers itself at import and no
module global holds a handler, so a registry is an ordinary value: tests build their own.

``@command`` and ``@action`` only wrap a handler in its spec (the handler stays callable); they do
not register anything. Nothing here runs a handler: bot/dispatch.py does, after the access check,
and writes the audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from bot.config import Role

if TYPE_CHECKING:
    from bot.config import Config
    from bot.context import Context, Runtime
    from bot.reply import Reply
    from bot.scheduler import JobSpec

Handler = Callable[["Context", Any], "Reply"]
# A scheduled task: ``task(runtime, **kwargs) -> summary``.
Task = Callable[..., str]
JobSource = Callable[["Config"], "Iterable[JobSpec]"]
Sweep = Callable[["Runtime"], object]
# What runs once an approval request of a kind has its approvals: ``executor(ctx, request) -> Reply``.
Executor = Callable[["Context", Any], "Reply"]
# An HTTP endpoint served by ``serve``: ``handle(headers, body) -> (status, json)``.
RouteHandler = Callable[[dict[str, str], bytes], tuple[int, dict[str, Any]]]


class Worker(Protocol):
    """A background loop that ``serve`` starts after the outbox and stops before it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class CommandSpec:
    name: str  # "status" or "backup create"
    summary: str
    args: type[BaseModel]
    handler: Handler
    role: Role | None  # None: anyone in the workspace (help, whoami)
    # Commands that act on one environment take it as the first positional argument or --env.
    targets_env: bool
    examples: tuple[str, ...] = ()  # `/milvus help` shows `{env}` as an environment of the running config

    def __call__(self, ctx: Context, args: Any) -> Reply:
        return self.handler(ctx, args)


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

    def __call__(self, ctx: Context, payload: Any) -> Reply:
        return self.handler(ctx, payload)


@dataclass(frozen=True)
class SweepSpec:
    """Housekeeping run every ``seconds`` in each replica; it must be idempotent across replicas."""

    name: str
    seconds: float
    fn: Sweep
    at_start: bool = False  # also once when the scheduler starts (recovery of a dead process' work)


@dataclass(frozen=True)
class RouteSpec:
    path: str
    # Built once the runtime exists: ``factory(runtime) -> handler``.
    factory: Callable[[Runtime], RouteHandler]
    # Bodies over this are refused with 413 while being read, before the handler runs (None: the default).
    max_body_bytes: int | None = None


@dataclass
class Registry:
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    actions: dict[str, ActionSpec] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    job_sources: list[JobSource] = field(default_factory=list)
    sweeps: list[SweepSpec] = field(default_factory=list)
    executors: dict[str, Executor] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    workers: list[Callable[[Runtime], Worker]] = field(default_factory=list)
    # Slow first-use costs (matplotlib) paid in the background when ``serve`` starts.
    warm_ups: list[Callable[[], object]] = field(default_factory=list)

    # -- declaring ---------------------------------------------------------------------------------

    def add(self, *specs: CommandSpec | ActionSpec) -> None:
        for spec in specs:
            if isinstance(spec, CommandSpec):
                _unique(self.commands, spec.name, "command")[spec.name] = spec
            else:
                _unique(self.actions, spec.name, "action")[spec.name] = spec

    def task(self, name: str, fn: Task) -> None:
        _unique(self.tasks, name, "scheduled task")[name] = fn

    def job_source(self, fn: JobSource) -> None:
        """``fn(config)`` lists the scheduled jobs a config asks for (backup schedules, reports)."""
        self.job_sources.append(fn)

    def sweep(self, name: str, seconds: float, fn: Sweep, *, at_start: bool = False) -> None:
        self.sweeps.append(SweepSpec(name, seconds, fn, at_start))

    def executor(self, kind: str, fn: Executor) -> None:
        _unique(self.executors, kind, "approval executor")[kind] = fn

    def route(
        self, path: str, factory: Callable[[Runtime], RouteHandler], *, max_body_bytes: int | None = None
    ) -> None:
        self.routes.append(RouteSpec(path, factory, max_body_bytes))

    def worker(self, factory: Callable[[Runtime], Worker]) -> None:
        self.workers.append(factory)

    def warm_up(self, fn: Callable[[], object]) -> None:
        self.warm_ups.append(fn)

    # -- looking up --------------------------------------------------------------------------------

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


def _unique(table: dict[str, Any], name: str, what: str) -> dict[str, Any]:
    if name in table:
        raise RuntimeError(f"{what} {name!r} registered twice")
    return table


def command(
    name: str,
    *,
    summary: str,
    args: type[BaseModel],
    role: Role | None = Role.viewer,
    targets_env: bool = False,
    examples: tuple[str, ...] = (),
) -> Callable[[Handler], CommandSpec]:
    """Wrap a handler in its spec; the capability's ``register`` adds it to a registry."""

    def declare(fn: Handler) -> CommandSpec:
        return CommandSpec(name, summary, args, fn, role, targets_env, examples)

    return declare


def action(name: str, *, role: Role = Role.operator, kind: str = "button") -> Callable[[Handler], ActionSpec]:
    def declare(fn: Handler) -> ActionSpec:
        return ActionSpec(name, fn, role, kind)

    return declare
