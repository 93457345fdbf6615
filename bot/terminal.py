"""Slack messages rendered for a terminal: mrkdwn undone, emoji as characters, blocks laid out.

Pure functions of their input, so the console and ``run`` show the same thing and tests can check
every reply for leftover Slack markup. Colour is a choice of the caller (``use_color``): off for
pipes and files, and whenever ``NO_COLOR`` is set (https://no-color.org).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from wcwidth import wcswidth

BOLD, DIM, ITALIC, UNDERLINE, STRIKE, CYAN, RESET = (
    "\033[1m", "\033[2m", "\033[3m", "\033[4m", "\033[9m", "\033[36m", "\033[0m"
)

# The shortcodes the bot's own messages use, and the common ones people put in alert annotations.
EMOJI = {
    "white_check_mark": "✅", "heavy_check_mark": "✔️", "warning": "⚠️", "x": "❌", "no_entry": "⛔",
    "no_entry_sign": "🚫", "large_green_circle": "🟢", "large_yellow_circle": "🟡", "large_orange_circle": "🟠",
    "red_circle": "🔴", "large_blue_circle": "🔵", "white_circle": "⚪", "black_circle": "⚫",
    "hourglass_flowing_sand": "⏳", "hourglass": "⌛", "bell": "🔔", "no_bell": "🔕", "eyes": "👀",
    "leftwards_arrow_with_hook": "↩️", "grey_question": "❔", "grey_exclamation": "❕", "question": "❓",
    "exclamation": "❗", "rotating_light": "🚨", "gear": "⚙️", "wastebasket": "🗑️", "rocket": "🚀",
    "mag": "🔍", "chart_with_upwards_trend": "📈", "chart_with_downwards_trend": "📉", "bar_chart": "📊",
    "book": "📖", "arrows_counterclockwise": "🔄", "alarm_clock": "⏰", "lock": "🔒", "unlock": "🔓",
    "key": "🔑", "shield": "🛡️", "fire": "🔥", "tada": "🎉", "sparkles": "✨", "bulb": "💡", "memo": "📝",
    "floppy_disk": "💾", "package": "📦", "clipboard": "📋", "calendar": "📅", "stopwatch": "⏱️",
    "zap": "⚡", "hammer_and_wrench": "🛠️", "wrench": "🔧", "link": "🔗", "information_source": "ℹ️",
    "thumbsup": "👍", "+1": "👍", "thumbsdown": "👎", "-1": "👎", "pause_button": "⏸️",
    "arrow_right": "➡️", "arrow_up": "⬆️", "arrow_down": "⬇️", "heavy_plus_sign": "➕",
    "heavy_minus_sign": "➖", "construction": "🚧", "test_tube": "🧪", "broom": "🧹", "stop_sign": "🛑",
    "card_file_box": "🗃️", "file_cabinet": "🗄️", "busts_in_silhouette": "👥", "bust_in_silhouette": "👤",
    "dart": "🎯", "ok": "🆗", "new": "🆕", "heavy_exclamation_mark": "❗", "boom": "💥",
}

_CODE_BLOCK = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_ANGLE = re.compile(r"<([^<>\s][^<>]*)>")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w])_(?=\S)([^_\n]*?\S)_(?![\w])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")
_ANSI = re.compile(r"\033\[[0-9;]*m")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")


def use_color(stream: TextIO) -> bool:
    """Colour only for a terminal that wants it."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def width(text: str) -> int:
    """Columns the text takes on screen: no escape codes, wide emoji count two."""
    plain = _ANSI.sub("", text)
    columns = wcswidth(plain)
    return columns if columns >= 0 else len(plain)


def pad(text: str, columns: int) -> str:
    return text + " " * max(0, columns - width(text))


@dataclass
class Style:
    color: bool
    names: Callable[[str], str | None] = field(default=lambda _id: None)

    def __call__(self, text: str, *codes: str) -> str:
        return "".join(codes) + text + RESET if self.color and text else text


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _angle(inner: str, style: Style) -> str:
    """Slack's <...> forms: links, mentions, channels, special mentions, dates."""
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        user = target[1:]
        return style("@" + (label or style.names(user) or user), BOLD)
    if target.startswith("#"):
        channel = target[1:]
        return style("#" + (label or style.names(channel) or channel), BOLD)
    if target.startswith("!subteam^"):
        group = target.split("^", 1)[1]
        return style(label if label.startswith("@") else "@" + (label or style.names(group) or group), BOLD)
    if target.startswith("!date^"):
        return label or target.split("^", 1)[1].split("^", 1)[0]
    if target.startswith("!"):
        return style("@" + (label or target[1:]), BOLD)
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
        url = _unescape(target)
        shown = _unescape(label)
        if not shown or shown == url:
            return style(url, UNDERLINE)
        return f"{style(shown, UNDERLINE)} ({url})"
    return "<" + inner + ">"  # not Slack markup: keep it as typed


def mrkdwn(text: str, style: Style) -> str:
    """One mrkdwn string as terminal text."""
    kept: list[str] = []

    def keep(rendered: str) -> str:
        kept.append(rendered)
        return f"\x00{len(kept) - 1}\x00"

    def code_block(match: re.Match[str]) -> str:
        body = _unescape(match.group(1))
        lines = [style("  " + line, CYAN) if line.strip() else "" for line in body.split("\n")]
        # A fence glued to the surrounding text still starts and ends on its own line (marked here,
        # turned into exactly one line break once everything is in place).
        return keep("\x01" + "\n".join(lines) + "\x02")

    text = _CODE_BLOCK.sub(code_block, text)
    text = _INLINE_CODE.sub(lambda m: keep(style(_unescape(m.group(1)), CYAN)), text)
    text = _ANGLE.sub(lambda m: keep(_angle(m.group(1), style)), text)
    text = _BOLD.sub(lambda m: style(m.group(1), BOLD), text)
    text = _ITALIC.sub(lambda m: style(m.group(1), ITALIC), text)
    text = _STRIKE.sub(lambda m: style(m.group(1), STRIKE), text)
    text = _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = _unescape(text)
    while _PLACEHOLDER.search(text):
        text = _PLACEHOLDER.sub(lambda m: kept[int(m.group(1))], text)
    text = re.sub(r"\n?\x01", "\n", text)
    text = re.sub(r"\x02\n?", "\n", text)
    return text.strip("\n")


def plain_text(element: dict[str, Any], style: Style) -> str:
    """A text object: plain_text may still carry emoji shortcodes."""
    text = str(element.get("text", ""))
    if element.get("type") == "mrkdwn":
        return mrkdwn(text, style)
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def _fields(fields: list[dict[str, Any]], style: Style) -> list[str]:
    """Slack shows fields two to a row; here too, with the first column as wide as its widest cell."""
    cells = [plain_text(f, style).replace("\n", ": ", 1).replace("\n", " ") for f in fields]
    left, right = cells[::2], cells[1::2]
    column = max((width(c) for c in left), default=0) + 3
    rows = []
    for i, cell in enumerate(left):
        other = right[i] if i < len(right) else ""
        rows.append(("  " + pad(cell, column) + other).rstrip())
    return rows


def _button_label(element: dict[str, Any], style: Style) -> str:
    return plain_text(element.get("text", {}), style)


def render_blocks(
    text: str, blocks: list[dict[str, Any]], style: Style, buttons: list[dict[str, Any]] | None
) -> str:
    """The message as terminal lines. ``buttons`` collects pressable buttons and numbers them;
    None means nothing can be pressed here (``run``), so none is shown."""
    if not blocks:
        return mrkdwn(text, style)
    out: list[str] = []

    def button(element: dict[str, Any]) -> str | None:
        label = _button_label(element, style)
        if element.get("url"):
            return f"{style(label, UNDERLINE)} ({element['url']})"
        if buttons is None or element.get("type") != "button":
            return None
        buttons.append(element)
        return style(f"[{len(buttons)}] {label}", BOLD)

    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            out.append(style(plain_text(block["text"], style), BOLD, UNDERLINE))
        elif kind == "section":
            if "text" in block:
                out.append(plain_text(block["text"], style))
            out.extend(_fields(block.get("fields", []), style))
            accessory = block.get("accessory")
            if accessory and accessory.get("type") == "button" and (shown := button(accessory)):
                out.append("  " + shown)
        elif kind == "context":
            parts = [
                plain_text(e, style) if "text" in e else str(e.get("alt_text", "")) for e in block.get("elements", [])
            ]
            out.append(style("  " + " · ".join(p for p in parts if p), DIM))
        elif kind == "divider":
            out.append(style("─" * 60, DIM))
        elif kind == "actions":
            labels = [shown for e in block.get("elements", []) if (shown := button(e))]
            if labels:
                out.append("  " + "   ".join(labels))
        elif kind == "image":
            out.append(style(f"  (image: {block.get('alt_text', '')})", DIM))
        elif kind == "rich_text":
            out.append(mrkdwn(text, style))
    return "\n".join(out)
