"""What the console and `run` put on screen: Slack markup turned into terminal text, for every reply."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from bot.config import LOCAL_OPERATOR, load_config
from bot.console import BlockRenderer, Console, ConsoleMessenger
from bot.dispatch import Dispatcher
from bot.settings import Settings
from bot.terminal import Style, mrkdwn, render_blocks, use_color
from tests.support.runtime import build_test_runtime

# What Slack markup looks like when it reaches a screen unrendered.
RAW_MARKUP = {
    "bold": re.compile(r"(?<![\w*])\*[^*\s][^*\n]*\*(?![\w*])"),
    "italic": re.compile(r"(?<![\w])_[^_\s][^_\n]*_(?![\w])"),
    "code": re.compile(r"`"),
    "emoji": re.compile(r":[a-z][a-z0-9_+-]*[a-z0-9]:(?!\d)"),
    "mention, channel or link": re.compile(r"<[@#!]|<https?:|<mailto:"),
    "entity": re.compile(r"&(lt|gt|amp);"),
    "escape code": re.compile(r"\033\["),
}


def raw_markup(screen: str) -> list[str]:
    found = []
    for line in screen.splitlines():
        for name, pattern in RAW_MARKUP.items():
            if pattern.search(line):
                found.append(f"{name}: {line.strip()}")
    return found


def test_mrkdwn_becomes_terminal_text():
    style = Style(False, {"ULOCALOPERATOR": "local-operator"}.get)
    text = (
        "*Version*: `2.4.13` _now_ ~old~ :white_check_mark: <@ULOCALOPERATOR> <@U0BOB> <#C0OPS|ops> <!here> "
        "<!subteam^S0SRE|@sre> <https://grafana.example/d/1|dashboard> "
        "<!date^1763631000^{date_short_pretty} {time}|2026-11-20 09:30 UTC> a &lt;env&gt; &amp; snake_case_name"
    )
    assert mrkdwn(text, style) == (
        "Version: 2.4.13 now old ✅ @local-operator @U0BOB #ops @here @sre dashboard (https://grafana.example/d/1) "
        "2026-11-20 09:30 UTC a <env> & snake_case_name"
    )
    # A fence glued to the text around it still gets lines of its own, and its inside is left alone.
    assert mrkdwn("Components```pod  cpu\n*a*  `1`\n```done", style) == "Components\n  pod  cpu\n  *a*  `1`\ndone"


def test_fields_line_up_as_a_table_and_colour_is_only_for_a_terminal(monkeypatch):
    block = {"type": "section", "fields": [
        {"type": "mrkdwn", "text": "*Version*\n2.4.13"}, {"type": "mrkdwn", "text": "*Rows*\n1"},
        {"type": "mrkdwn", "text": "*Collections and more*\n:warning: 3"}, {"type": "mrkdwn", "text": "*Loaded*\n2"},
    ]}
    lines = render_blocks("", [block], Style(False), []).splitlines()
    assert lines[0].index("Rows") == lines[1].index("Loaded")  # the emoji's two columns counted

    colored = render_blocks("", [block], Style(True), [])
    assert "\033[1mVersion\033[0m" in colored

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert use_color(Tty()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())


def test_buttons_are_numbered_where_they_can_be_pressed_and_left_out_elsewhere():
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Plan *p-1*"}},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Change inputs"}, "action_id": "plan.prefill"},
            {"type": "button", "text": {"type": "plain_text", "text": "Runbook"}, "action_id": "link.rb",
             "url": "https://runbooks.example/milvus"},
        ]},
    ]
    pressable: list[dict] = []
    console = BlockRenderer(color=False).render("", blocks, pressable)
    assert "[1] Change inputs" in console and len(pressable) == 1
    run = BlockRenderer(color=False, interactive=False).render("", blocks, [])
    assert "Change inputs" not in run and "[" not in run
    assert "Runbook (https://runbooks.example/milvus)" in run  # a link works anywhere


def every_command_line(registry) -> list[str]:
    """Each command bare, its help, and each of its examples aimed at the embedded `local`."""
    lines = []
    for name, spec in sorted(registry.commands.items()):
        lines += [f"/milvus {name}", f"/milvus help {name}"]
        lines += [re.sub(r"\{env\}|\b(prod|staging)\b", "local", example) for example in spec.examples]
    return lines


@pytest.fixture
def console(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")
    out = io.StringIO()
    renderer = BlockRenderer(color=False, names={LOCAL_OPERATOR: "local-operator"})
    messenger = ConsoleMessenger(out, renderer, files_dir=tmp_path / "files")
    runtime = build_test_runtime(
        settings=settings, config=load_config(None, settings.data_dir), messenger=messenger
    )
    yield Console(Dispatcher(runtime), messenger, LOCAL_OPERATOR, out=out), out
    runtime.services.close_all()


def test_no_reply_of_any_command_shows_raw_slack_markup_on_the_embedded_default(console):
    session, out = console
    registry = session.dispatcher.registry
    screens: dict[str, str] = {}
    for line in every_command_line(registry):
        start = out.tell()
        pressable = len(session.messenger.buttons)
        session.handle_line(line)
        # Press what the reply offers too (the console's way of clicking), except what changes things.
        for number in range(pressable + 1, len(session.messenger.buttons) + 1):
            action = session.messenger.buttons[number - 1].get("action_id", "")
            if not any(word in action for word in ("deploy", "delete", "restore", "rollback", "approve")):
                session.handle_line(str(number))
        screens[line] = out.getvalue()[start:]
    assert len(screens) >= 2 * len(registry.commands)
    leftovers = {line: found for line, screen in screens.items() if (found := raw_markup(screen))}
    assert leftovers == {}


@pytest.mark.parametrize(("line", "key"), [
    ("/milvus alerts", "environments.local.alertmanager_url"),
    ("/milvus health", "environments.local.prometheus_url"),
    ("/milvus capacity", "environments.local.prometheus_url"),
    ("/milvus deploy --dry-run", "helm: section to environments.local"),
    ("/milvus history", "helm: section to environments.local"),
    ("/milvus reports", "environments.<env>.prometheus_url"),
    ("/milvus reports run health", "environments.local.prometheus_url"),
])
def test_the_embedded_default_says_what_it_lacks_and_which_key_adds_it(console, line, key):
    session, out = console
    session.handle_line(line)
    screen = out.getvalue()
    assert key in screen
    assert "Nothing is firing" not in screen and "querying Prometheus" not in screen
    assert "reports run <health" not in screen


def test_a_plan_offers_no_deploy_where_nothing_can_be_deployed(console):
    session, out = console
    session.handle_line("/milvus plan --vectors 10M --dim 768")
    screen = out.getvalue()
    assert "No environment is deployed with Helm by this bot; add a helm: section to one to deploy." in screen
    assert "/milvus deploy" not in screen
    assert not any("deploy" in b.get("action_id", "") for b in session.messenger.buttons)
