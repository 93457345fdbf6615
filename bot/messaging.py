"""How handlers say things in channels without knowing about Slack.

``Messenger`` is implemented by the durable outbox (Slack) and by the console. A message is named
by a ``ref`` the caller chooses (e.g. ``alert-group:<hash>``), so it can be updated or threaded
before, or without knowing, the Slack timestamp it will get.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bot.reply import Attachment, Message


class Messenger(Protocol):
    def post(
        self, channel: str, message: Message, *, ref: str | None = None, thread_ref: str | None = None,
        dedupe_key: str | None = None, priority: int = 0,
    ) -> str:
        """Queue a new message; returns its ref. The same ``dedupe_key`` is posted once, ever.
        Within a channel higher ``priority`` goes out first; equal priorities keep their order."""
        ...

    def update(self, ref: str, message: Message, *, priority: int | None = None) -> None:
        """Replace the text and blocks of a message posted earlier; as urgent as that message's post
        unless ``priority`` says otherwise."""
        ...

    def upload(self, channel: str, files: list[Attachment], *, thread_ref: str | None = None,
               comment: str = "") -> None:
        ...

    def backlog(self, channel: str) -> int:
        """Posts still waiting for ``channel`` (each costs about a second at Slack's pace)."""
        ...

    def withdraw(self, ref: str) -> bool:
        """Take back a post nobody has seen yet; False when it may already be in the channel."""
        ...


@runtime_checkable
class Whisperer(Protocol):
    """A messenger that can show one user something nobody else sees, at once and never stored.

    For what must not sit in a queue or a channel's history: a generated password. Slack's
    ephemeral messages are that; a messenger that cannot do it simply does not implement this.
    """

    def whisper(self, channel: str | None, user: str, message: Message) -> None:
        ...


class Progress(Protocol):
    def __call__(self, text: str) -> None:
        """Tell the user how long work is going; transports throttle and show it in one place."""
        ...


def no_progress(text: str) -> None:
    return None
