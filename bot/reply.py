"""What a handler returns. Transports (Slack, console, ``run --json``) decide how to show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    title: str = ""


@dataclass
class Message:
    """Something said in a channel, outside the reply to a command (alerts, approvals, reports)."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Reply:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    data: Any = None
    response_type: Literal["ephemeral", "in_channel"] = "ephemeral"
    files: list[Attachment] = field(default_factory=list)
    # A modal to open instead of (or as well as) replying; needs the request's trigger_id.
    modal: dict[str, Any] | None = None
    # For button presses: replace the message the button was on rather than adding a reply.
    replace_original: bool = False
    # Holds a secret for the requester alone (a generated password): transports must not log it.
    sensitive: bool = False

    def message(self) -> Message:
        return Message(self.text, self.blocks)
