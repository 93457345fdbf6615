"""``milvus-chatops``: serve, console, run, check-config. Heavy imports happen inside each command."""

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="milvus-chatops", description="Slack ChatOps for Milvus: plan, deploy, backup, alerts, reports."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="run the bot: Slack (HTTP or Socket Mode), webhook, metrics, scheduler")
    serve.add_argument("--config", help="config file (default: $MILVUS_CHATOPS_CONFIG or the embedded default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)

    console = sub.add_parser("console", help="interactive local session in the terminal")
    console.add_argument("--config")
    console.add_argument("--user", default=None, help="Slack user id to act as (default: the local operator)")

    run = sub.add_parser("run", help='run one command, e.g. run "/milvus status"')
    run.add_argument("command")
    run.add_argument("--config")
    run.add_argument("--user", default=None)
    run.add_argument("--json", action="store_true", help="print the Slack payload and structured data as JSON")

    check = sub.add_parser("check-config", help="validate the config and reach each configured integration")
    check.add_argument("--config")
    return parser


def main(argv: list[str] | None, build_registry: RegistryFactory) -> int:
    args = _parser().parse_args(argv)
    from bot.app import load_settings
    from bot.errors import ChatOpsError
    from bot.logs import setup_logging

    try:
        settings = load_settings(args.config)
    except ChatOpsError as exc:
        print(exc.user_text(), file=sys.stderr)
        return exc.exit_code
    local = args.cmd in ("run", "console")
    setup_logging(settings, default_level="WARNING" if local else "INFO", terminal=local)
    try:
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


def _local(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    from bot.app import build_runtime
    from bot.config import LOCAL_OPERATOR
    from bot.console import BlockRenderer, Console, ConsoleMessenger, reply_payload
    from bot.dispatch import Dispatcher

    # Channel messages go to stderr under `run` so stdout stays one reply (one JSON object with --json).
    channel_out = sys.stderr if args.cmd == "run" else sys.stdout
    renderer = BlockRenderer(color=channel_out.isatty())
    messenger = ConsoleMessenger(channel_out, renderer, files_dir=Path(settings.data_dir) / "files")
    runtime = build_runtime(settings, lambda _store: messenger, registry)
    user = args.user or LOCAL_OPERATOR
    dispatcher = Dispatcher(runtime)
    try:
        if args.cmd == "console":
            Console(dispatcher, messenger, user).loop()
            return 0
        outcome = dispatcher.run_command(
            args.command,
            runtime.identity(user),
            channel="cli",
            progress=lambda t: print(f"… {t}", file=sys.stderr),
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
