"""``milvus-chatops``: serve, console, run, check-config, init, db. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.registry import Registry
    from bot.settings import Settings

# The capabilities are handed in by the composition root (commands.main): the core imports none.
RegistryFactory = Callable[[], "Registry"]


CONFIG_HELP = "config file (default: $MILVUS_CHATOPS_CONFIG, else the embedded default: one local Milvus Lite)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="milvus-chatops", description="Slack ChatOps for Milvus: plan, deploy, backup, alerts, reports."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="run the bot: Slack (HTTP or Socket Mode), webhook, metrics, scheduler")
    serve.add_argument("--config", help=CONFIG_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, default=3000, help="HTTP port for Slack, the webhook, health and metrics")

    console = sub.add_parser("console", help="interactive local session in the terminal")
    console.add_argument("--config", help=CONFIG_HELP)
    console.add_argument("--user", default=None, help="Slack user id to act as (default: the local operator)")

    run = sub.add_parser("run", help='run one command, e.g. run "/milvus status"')
    run.add_argument("command")
    run.add_argument("--config", help=CONFIG_HELP)
    run.add_argument("--user", default=None, help="Slack user id to act as (default: the local operator)")
    run.add_argument("--json", action="store_true", help="print the Slack payload and structured data as JSON")

    check = sub.add_parser("check-config", help="validate the config and reach each configured integration")
    check.add_argument("--config", help=CONFIG_HELP)

    from bot.init import add_init_parser

    add_init_parser(sub)

    db = sub.add_parser("db", help="the bot's state store: `db upgrade` applies schema migrations")
    db_sub = db.add_subparsers(dest="db_cmd", required=True)
    db_sub.add_parser("upgrade", help="apply pending state-store migrations (serve, console and run do it at start)")
    return parser


def main(argv: list[str] | None, build_registry: RegistryFactory) -> int:
    args = _parser().parse_args(argv)
    from bot.app import load_settings
    from bot.errors import ChatOpsError
    from bot.logs import setup_logging

    try:
        settings = load_settings(getattr(args, "config", None))
    except ChatOpsError as exc:
        print(exc.user_text(), file=sys.stderr)
        return exc.exit_code
    # Commands a person runs at a terminal: warnings only, and only ours.
    local = args.cmd in ("run", "console", "init", "db")
    setup_logging(settings, default_level="WARNING" if local else "INFO", terminal=local)
    try:
        if args.cmd == "init":
            from bot.init import init

            return init(args, settings)
        if args.cmd == "db":
            return _db_upgrade(settings)
        if args.cmd == "serve":
            from bot.server import serve

            return serve(settings, build_registry(), host=args.host, port=args.port)
        if args.cmd == "check-config":
            from bot.checks import check_config

            return check_config(settings)
        return _local(args, settings, build_registry())
    except ChatOpsError as exc:
        print(exc.user_text(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _db_upgrade(settings: Settings) -> int:
    from bot.state import Store

    store = Store(settings.state_url)
    try:
        applied = store.migrate()
        from bot.migrations import revisions

        head = revisions()[-1]
    finally:
        store.engine.dispose()
    if applied:
        print(f"State store {store.safe_url}: applied {', '.join(applied)}; now at {head}.")
    else:
        print(f"State store {store.safe_url}: already at {head}, nothing to apply.")
    return 0


def _local(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from bot.app import build_runtime
    from bot.config import LOCAL_OPERATOR
    from bot.console import BlockRenderer, Console, ConsoleMessenger, reply_payload
    from bot.dispatch import Dispatcher
    from bot.terminal import use_color

    # Channel messages go to stderr under `run` so stdout stays one reply (one JSON object with --json).
    channel_out = sys.stderr if args.cmd == "run" else sys.stdout
    # Buttons are listed only where a number can press them: in the console, not in `run`.
    renderer = BlockRenderer(
        color=use_color(sys.stdout), interactive=args.cmd == "console", names={LOCAL_OPERATOR: "local-operator"}
    )
    messenger = ConsoleMessenger(channel_out, renderer, files_dir=Path(settings.data_dir) / "files")
    runtime = build_runtime(settings, lambda _store: messenger, registry)
    user = args.user or LOCAL_OPERATOR
    dispatcher = Dispatcher(runtime)
    try:
        if args.cmd == "console":
            Console(dispatcher, messenger, user).loop(history=Path(settings.data_dir) / "console_history")
            return 0
        outcome = dispatcher.run_command(
            args.command,
            runtime.identity(user),
            channel="cli",
            progress=lambda t: print(f"… {renderer.text(t)}", file=sys.stderr),
            # Whoever runs this has a shell, not a Slack session: `--user` is a claim, and the row says so.
            kind="cli",
        )
        if args.json:
            print(json.dumps(reply_payload(outcome.reply), default=str))
        else:
            Console(dispatcher, messenger, user).show(outcome)
        return outcome.exit_code
    finally:
        runtime.services.close_all()
