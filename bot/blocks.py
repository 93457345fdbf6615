"""Block Kit building blocks, escaping, and the size limits every outgoing message is fitted to.

All text that came from users or alerts goes through ``escape`` so ``<!channel>`` or ``<@U123>`` stay
inert; ``fit_message`` is applied once, in the transport, so no handler can exceed Slack's limits.
"""

from __future__ import annotations

import json
from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER = 150
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_ACTIONS = 25
MAX_CONTEXT = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_TEXT = 3900  # chat.update rejects text over 4,000 characters
MAX_TOTAL_BLOCK_CHARS = 12000  # msg_blocks_too_long starts around 13k


def escape(text: object) -> str:
    """Escape mrkdwn control characters in text we did not write ourselves."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: object) -> str:
    """Inline code that cannot be broken out of by a backtick in the value."""
    return "`" + escape(text).replace("`", "'") + "`"


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER), "emoji": True}}


def section(text: str, *, fields: list[str] | None = None, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_TEXT)}}
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": truncate(f, MAX_FIELD_TEXT)} for f in fields[:MAX_FIELDS]]
    if accessory:
        block["accessory"] = accessory
    return block


def fields(items: list[str]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": truncate(f, MAX_FIELD_TEXT)} for f in items[:MAX_FIELDS]],
    }


def context(*texts: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(t, MAX_SECTION_TEXT)} for t in texts[:MAX_CONTEXT]],
    }


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    value: str | dict[str, Any] = "",
    *,
    style: str | None = None,
    url: str | None = None,
    confirm: tuple[str, str] | None = None,
) -> dict[str, Any]:
    raw_value = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    if len(raw_value) > MAX_BUTTON_VALUE:
        raise ValueError(f"button value for {action_id} is {len(raw_value)} characters, over Slack's 2000")
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate(text, MAX_BUTTON_TEXT), "emoji": True},
        "action_id": action_id,
    }
    if raw_value:
        element["value"] = raw_value
    if style:
        element["style"] = style
    if url:
        element["url"] = url
    if confirm:
        element["confirm"] = {
            "title": {"type": "plain_text", "text": truncate(confirm[0], 100)},
            "text": {"type": "mrkdwn", "text": truncate(confirm[1], 300)},
            "confirm": {"type": "plain_text", "text": "Yes"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return element


def actions(*elements: dict[str, Any], block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "actions", "elements": list(elements[:MAX_ACTIONS])}
    if block_id:
        block["block_id"] = block_id
    return block


def _block_chars(block: dict[str, Any]) -> int:
    return len(json.dumps(block))


def fit_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep a message within Slack's block count and size, saying what was left out.

    Action blocks are kept in preference to text: a message whose buttons vanish is worse than one
    whose tail is summarised.
    """
    if len(blocks) <= MAX_BLOCKS and sum(map(_block_chars, blocks)) <= MAX_TOTAL_BLOCK_CHARS:
        return blocks
    tail = [b for b in blocks if b.get("type") == "actions"][-1:]
    body = [b for b in blocks if b.get("type") != "actions"]
    budget_blocks = MAX_BLOCKS - len(tail) - 1
    budget_chars = MAX_TOTAL_BLOCK_CHARS - sum(map(_block_chars, tail)) - 200
    kept: list[dict[str, Any]] = []
    used = 0
    for block in body:
        size = _block_chars(block)
        if len(kept) >= budget_blocks or used + size > budget_chars:
            break
        kept.append(block)
        used += size
    omitted = len(body) - len(kept)
    if omitted:
        kept.append(context(f"…and {omitted} more block(s) not shown: Slack limits a message's size."))
    return kept + tail


def fit_text(text: str) -> str:
    return truncate(text, MAX_TEXT)
