"""The terminal transport: Block Kit rendered readably, buttons pressed by number, users switched.

It goes through the same Dispatcher as Slack, so what works here works there, roles and audit
included.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from bot.access import Identity
from bot.dispatch import Dispatcher, Outcome
from bot.reply import Attachment, Message, Reply
from bot.terminal import Style, mrkdwn, render_blocks


class BlockRenderer:
    """Messages as terminal text (bot/terminal.py). ``interactive``: buttons can be pressed here, so
    they are listed with numbers; elsewhere (``run``) they are left out."""

    def __init__(self, color: bool, *, interactive: bool = True, names: dict[str, str] | None = None) -> None:
        self.color = color
        self.interactive = interactive
        self.style = Style(color, (names or {}).get)

    def render(self, text: str, blocks: list[dict[str, Any]], buttons: list[dict[str, Any]]) -> str:
        """Return the rendering; buttons found are appended to ``buttons`` and numbered from there."""
        return render_blocks(text, blocks, self.style, buttons if self.interactive else None)

    def text(self, mrkdwn_text: str) -> str:
        return mrkdwn(mrkdwn_text, self.style)


class ConsoleMessenger:
    """Channel messages, shown in the terminal (and kept, so buttons on them can be pressed)."""

    def __init__(self, out: TextIO, renderer: BlockRenderer, files_dir: Path) -> None:
        self.out = out
        self.renderer = renderer
        self.files_dir = files_dir
        self.buttons: list[dict[str, Any]] = []
        self.messages: dict[str, Message] = {}
        self._seen_dedupe: set[str] = set()
        self._counter = 0

    def post(
        self,
        channel: str,
        message: Message,
        *,
        ref: str | None = None,
        thread_ref: str | None = None,
        dedupe_key: str | None = None,
        priority: int = 0,
    ) -> str:
        if dedupe_key and dedupe_key in self._seen_dedupe:
            return ref or dedupe_key
        if dedupe_key:
            self._seen_dedupe.add(dedupe_key)
        self._counter += 1
        ref = ref or f"console-{self._counter}"
        self.messages[ref] = message
        where = f"#{channel}" + (" (thread)" if thread_ref else "")
        self._show(f"── message in {where} ──", message)
        return ref

    def update(self, ref: str, message: Message, *, priority: int | None = None) -> None:
        self.messages[ref] = message
        self._show(f"── message {ref} updated ──", message)

    def upload(
        self, channel: str, files: list[Attachment], *, thread_ref: str | None = None, comment: str = ""
    ) -> None:
        for path in save_files(self.files_dir, files):
            print(f"  file for #{channel}: {path}", file=self.out)

    def backlog(self, channel: str) -> int:
        return 0  # shown at once: a terminal has no rate limit

    def withdraw(self, ref: str) -> bool:
        return False  # already printed

    def _show(self, title: str, message: Message) -> None:
        print(title, file=self.out)
        print(self.renderer.render(message.text, message.blocks, self.buttons), file=self.out)


def save_files(directory: Path, files: list[Attachment]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for attachment in files:
        path = directory / Path(attachment.filename).name
        path.write_bytes(attachment.content)
        paths.append(path.resolve())
    return paths


def reply_payload(reply: Reply) -> dict[str, Any]:
    from bot.blocks import fit_blocks, fit_text

    return {
        "text": fit_text(reply.text),
        "blocks": fit_blocks(reply.blocks),
        "response_type": reply.response_type,
        "data": reply.data,
    }


class Console:
    def __init__(
        self, dispatcher: Dispatcher, messenger: ConsoleMessenger, user: str, out: TextIO = sys.stdout
    ) -> None:
        self.dispatcher = dispatcher
        self.messenger = messenger
        self.user = user
        self.out = out

    def _progress(self, text: str) -> None:
        print(f"  … {self.messenger.renderer.text(text)}", file=self.out, flush=True)

    def _identity(self, user_id: str) -> Identity:
        return self.dispatcher.runtime.identity(user_id)

    def show(self, outcome: Outcome) -> None:
        reply = outcome.reply
        if reply.modal and not reply.text:
            # Handlers that open a form say what to type instead; say it here only when none did.
            print(self._modal_hint(reply.modal), file=self.out)
        payload = reply_payload(reply)
        print(self.messenger.renderer.render(payload["text"], payload["blocks"], self.messenger.buttons), file=self.out)
        for path in save_files(self.messenger.files_dir, reply.files):
            print(f"  file: {path}", file=self.out)

    @staticmethod
    def _modal_hint(modal: dict[str, Any]) -> str:
        title = modal.get("title", {}).get("text", "form")
        return f"(Slack would open the form '{title}' here; in the console, type the command with its options.)"

    def handle_line(self, line: str) -> bool:
        """Run one line; returns False when the user wants to leave."""
        line = line.strip()
        if not line:
            return True
        if line in ("exit", "quit", "\\q"):
            return False
        if line.startswith("as "):
            _, _, rest = line.partition(" ")
            user, _, command = rest.strip().partition(" ")
            if not command:
                self.user = user
                print(f"Now acting as {user}.", file=self.out)
                return True
            self._run(command, user)
            return True
        press = line.removeprefix("press ").strip()
        if press.isdigit():
            self._press(int(press))
            return True
        if line.startswith("/milvus") or line.split()[0] in self.dispatcher.registry.groups():
            self._run(line, self.user)
            return True
        print("Type /milvus help, a button number, as <user-id> [command], or exit.", file=self.out)
        return True

    def _run(self, command: str, user: str) -> None:
        outcome = self.dispatcher.run_command(
            command, self._identity(user), channel="console", progress=self._progress, kind="console"
        )
        self.show(outcome)

    def _press(self, number: int) -> None:
        buttons = self.messenger.buttons
        if not 1 <= number <= len(buttons):
            print(f"There is no button [{number}].", file=self.out)
            return
        button = buttons[number - 1]
        raw = button.get("value", "")
        try:
            value = json.loads(raw) if raw.startswith("{") else {"value": raw}
        except json.JSONDecodeError:
            value = {"value": raw}
        outcome = self.dispatcher.run_action(
            button["action_id"], value, self._identity(self.user), channel="console", progress=self._progress,
            kind="console",
        )
        self.show(outcome)

    def loop(self, stdin: TextIO = sys.stdin, history: Path | None = None) -> None:
        print(
            f"milvus-chatops console: you are {self.user}. Type /milvus help, a button number to press it,\n"
            "as <user-id> to switch user, exit to leave." + (" Up and down arrows recall earlier lines." if
                                                              stdin.isatty() else ""),
            file=self.out,
        )
        for line in self._lines(stdin, history):
            if not self.handle_line(line):
                break

    def _lines(self, stdin: TextIO, history: Path | None) -> Iterator[str]:
        if not stdin.isatty():
            # Piped input: echo each line, so a transcript reads like the session it replays.
            for line in stdin:
                print(f"> {line.rstrip()}", file=self.out)
                yield line
            return
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        if history is not None:
            history.parent.mkdir(parents=True, exist_ok=True)
        session: PromptSession[str] = PromptSession(
            history=FileHistory(str(history)) if history is not None else InMemoryHistory()
        )
        while True:
            try:
                yield session.prompt("/milvus> ")
            except KeyboardInterrupt:
                continue  # Ctrl-C clears the line, as in a shell; Ctrl-D leaves
            except EOFError:
                return
