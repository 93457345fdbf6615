"""``milvus-chatops init``: a starter config for one cluster, from flags or from questions.

Every value can come from a flag; whatever is missing is asked for (on a terminal, or read line by
line from piped input) unless ``--no-input``. The file is checked by check-config's own code before
anything is said to be done, and an existing file is only replaced with ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.settings import Settings

DEFAULT_PATH = Path("milvus-chatops.yaml")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
URL = re.compile(r"^https?://[^\s/]+")
HOW_TO_FIND_IDS = "see docs/slack-setup.md, 'Finding ids'"


@dataclass(frozen=True)
class Question:
    key: str  # the argparse dest
    flag: str
    prompt: str
    default: str | None  # None: an answer is required
    check: Callable[[str], str | None] = lambda _v: None  # returns what is wrong, or None
    help: str = ""


def _match(pattern: re.Pattern[str], what: str) -> Callable[[str], str | None]:
    return lambda value: None if not value or pattern.match(value) else what


def _milvus_uri(value: str) -> str | None:
    if URL.match(value) or value.endswith(".db"):
        return None
    return "expected http(s)://host:19530, or a path ending in .db for Milvus Lite"


QUESTIONS = (
    Question("env_name", "--env", "Name of the environment", "prod",
             _match(ENV_NAME, "lowercase letters, digits and '-', starting with a letter"),
             "environment name used in commands, e.g. /milvus status prod"),
    Question("milvus_uri", "--milvus-uri", "Milvus URI", None, _milvus_uri,
             "Milvus address, e.g. http://milvus.milvus.svc:19530"),
    Question("milvus_token_env", "--milvus-token-env", "Environment variable holding the Milvus token "
             "(user:password or API key; '-' for none)", "MILVUS_TOKEN",
             lambda v: None if v in ("", "-") or ENV_VAR.match(v) else "an environment variable NAME, e.g. "
             "MILVUS_TOKEN (the value never goes in the file)",
             "name of the environment variable holding the Milvus token ('-' for none)"),
    Question("namespace", "--namespace", "Kubernetes namespace of Milvus", "milvus",
             _match(re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), "a Kubernetes namespace name"),
             "Kubernetes namespace Milvus runs in"),
    Question("release", "--release", "Helm release of Milvus ('-' if the bot should not deploy it)", "milvus",
             _match(re.compile(r"^(-|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$"), "a Helm release name, or '-'"),
             "Helm release name; '-' leaves deploy, rollback and history off"),
    Question("prometheus_url", "--prometheus-url", "Prometheus URL ('-' for none)", "-",
             lambda v: None if v in ("", "-") or URL.match(v) else "expected http(s)://host:9090 or '-'",
             "Prometheus base URL, for health and capacity ('-' for none)"),
    Question("alertmanager_url", "--alertmanager-url", "Alertmanager URL ('-' for none)", "-",
             lambda v: None if v in ("", "-") or URL.match(v) else "expected http(s)://host:9093 or '-'",
             "Alertmanager base URL, for alerts, ack and silence ('-' for none)"),
    Question("ops_channel", "--ops-channel", "Slack channel id for the bot's messages (C...)", None,
             _match(CHANNEL_ID, f"a channel id such as C0123ABCD, not its name ({HOW_TO_FIND_IDS})"),
             "channel id for deploy progress, backups, approvals and reports"),
    Question("alerts_channel", "--alerts-channel", "Slack channel id for alerts ('-': the same)", "-",
             lambda v: None if v in ("", "-") or CHANNEL_ID.match(v) else
             f"a channel id such as C0123ABCD ({HOW_TO_FIND_IDS})",
             "channel id for alerts (default: the ops channel)"),
    Question("admin", "--admin", "Slack user id of the first admin (U...)", None,
             _match(USER_ID, f"a user id such as U0123ABCD, not a name ({HOW_TO_FIND_IDS})"),
             "Slack user id of the first admin, who can then grant others"),
)


def add_init_parser(sub: Any) -> None:
    init = sub.add_parser(
        "init",
        help="write a starter config for one cluster (from flags, or questions), validate it, say what next",
        description="Write a starter config for one Milvus cluster. Values missing from the flags are asked "
        "for, unless --no-input.",
    )
    init.add_argument("--config", help=f"file to write (default: $MILVUS_CHATOPS_CONFIG, else {DEFAULT_PATH})")
    init.add_argument("--force", action="store_true", help="replace the file if it exists")
    init.add_argument("--no-input", action="store_true", help="ask nothing: fail if a required flag is missing")
    for q in QUESTIONS:
        default = f" (default: {q.default})" if q.default is not None else " (required)"
        init.add_argument(q.flag, dest=q.key, help=q.help + default)


def _ask(question: Question, read: Callable[[str], str | None]) -> str:
    """Ask until the answer is acceptable; a blank answer takes the default."""
    shown = f" [{question.default}]" if question.default is not None else ""
    while True:
        answer = read(f"{question.prompt}{shown}: ")
        if answer is None:  # input ended
            if question.default is None:
                raise InitError(f"{question.flag} is required (input ended before it was answered)")
            return question.default
        answer = answer.strip() or (question.default or "")
        if not answer:
            print(f"  {question.prompt} is required.", file=sys.stderr)
            continue
        problem = question.check(answer)
        if problem is None:
            return answer
        print(f"  {answer!r}: {problem}.", file=sys.stderr)


class InitError(Exception):
    pass


def _read_line(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        print(file=sys.stderr)
        return None


def gather(args: argparse.Namespace, read: Callable[[str], str | None] = _read_line) -> dict[str, str]:
    answers: dict[str, str] = {}
    for q in QUESTIONS:
        given = getattr(args, q.key)
        if given is not None:
            problem = q.check(given)
            if problem:
                raise InitError(f"{q.flag} {given!r}: {problem}.")
            answers[q.key] = given
        elif args.no_input:
            if q.default is None:
                raise InitError(f"{q.flag} is required with --no-input ({q.help}).")
            answers[q.key] = q.default
        else:
            answers[q.key] = _ask(q, read)
    return answers


def _none(value: str) -> str | None:
    return None if value in ("", "-") else value


def render(a: dict[str, str]) -> str:
    """The config file: YAML with comments that say what each part turns on."""
    q = json.dumps  # a JSON string is a valid YAML scalar, whatever it holds
    env = a["env_name"]
    token = _none(a["milvus_token_env"])
    milvus = f"{{uri: {q(a['milvus_uri'])}" + (f", token_env: {token}" if token else "") + "}"
    lines = [
        "# milvus-chatops: one Milvus cluster. Written by `milvus-chatops init`; edit freely.",
        "# No secrets here: tokens are named by environment variable. Full reference: config.example.yaml.",
        "# Check it with: milvus-chatops check-config --config <this file>",
        "",
        "channels:",
        f"  ops: {a['ops_channel']}          # deploy progress, backups",
        f"  approvals: {a['ops_channel']}    # approval requests",
        f"  reports: {a['ops_channel']}      # scheduled health and capacity reports",
        "  alerts:",
        f"    default: {_none(a['alerts_channel']) or a['ops_channel']}",
        "",
        "access:   # viewer < operator < admin; user ids (U...) or user group ids (S...)",
        "  - role: admin",
        f"    users: [{a['admin']}]",
        "",
        "environments:",
        f"  {env}:",
        f"    milvus: {milvus}",
        "    # Once the bot deploys Milvus, only pods in client_namespaces reach it on 19530: list your apps'",
        "    # namespaces, and the bot's own when it runs in Kubernetes, e.g. client_namespaces: [search-api, chatops]",
        f"    kubernetes: {{namespace: {a['namespace']}}}",
    ]
    release = _none(a["release"])
    if release:
        lines.append(f"    helm: {{release: {release}}}   # deploy, rollback, history")
    else:
        lines.append("    # helm: {release: milvus}       # add to deploy, roll back and list history with Helm")
    prometheus, alertmanager = _none(a["prometheus_url"]), _none(a["alertmanager_url"])
    if prometheus:
        lines += [f"    prometheus_url: {q(prometheus)}   # health, capacity, reports",
                  f"    prometheus_namespace: {a['namespace']}"]
        if release:
            lines.append(f"    prometheus_instance: {release}")
    else:
        lines.append("    # prometheus_url: http://prometheus.monitoring.svc:9090   # add for health and capacity")
    if alertmanager:
        lines.append(f"    alertmanager_url: {q(alertmanager)}   # alerts, ack, silence")
    else:
        lines.append("    # alertmanager_url: http://alertmanager.monitoring.svc:9093   # add for alerts")
    lines.append("    # backup: {bucket: my-milvus-backups, region: eu-west-1, schedule: \"0 2 * * *\"}")
    if not prometheus:
        # The scheduled reports read Prometheus; without one they would fail every morning.
        lines += ["", "reports: {health: null, capacity: null}   # turn on once prometheus_url is set"]
    return "\n".join(lines) + "\n"


def init(args: argparse.Namespace, settings: Settings) -> int:
    from bot.checks import check_config

    path = Path(args.config) if args.config else (settings.config_path or DEFAULT_PATH)
    if path.exists() and not args.force:
        print(f"{path} exists; not replacing it. Pass --force to overwrite, or --config to write elsewhere.",
              file=sys.stderr)
        return 1
    try:
        answers = gather(args)
    except InitError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    text = render(answers)
    # Checked before it replaces anything: a file that does not validate is never left behind.
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".yaml", delete=False) as tmp:
        tmp.write(text)
    candidate = Path(tmp.name)
    print(f"Checking the new config ({path}):")
    result = check_config(settings.model_copy(update={"config_path": candidate}), label=str(path))
    if result == 1:
        candidate.unlink()
        print(f"{path} was not written: the values above do not make a valid config.", file=sys.stderr)
        return 1
    os.replace(candidate, path)
    print(f"\nWrote {path}." + (" Something it names is unreachable from here (above)." if result else ""))
    print(next_steps(path, answers))
    return 0


def next_steps(path: Path, a: dict[str, str]) -> str:
    token = _none(a["milvus_token_env"])
    export = f"  export {token}=...   # the Milvus token (user:password or API key)\n" if token else ""
    return (
        "Next:\n"
        f"{export}"
        f"  milvus-chatops check-config --config {path}\n"
        f"  milvus-chatops console --config {path} --user {a['admin']}   # try /milvus status\n"
        "  Then create the Slack app from slack-app-manifest.yaml (docs/slack-setup.md) and start the bot:\n"
        f"  SLACK_BOT_TOKEN=xoxb-... SLACK_SIGNING_SECRET=... milvus-chatops serve --config {path}"
    )
