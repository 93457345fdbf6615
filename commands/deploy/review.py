"""What an approver reviews: every changed key, with the ones that matter for security first.

A deploy's message can only show so much (Slack caps a message's size), so a long diff can bury a
change. Three things keep the four-eyes gate honest whatever the diff's size:

- security-relevant changes (exposure, auth, TLS, network policy, resources, image, raw config files)
  are listed before anything else, each value whole; a value too long for the message says so and
  points at the file, it is never cut silently;
- the complete diff, every key and every value untruncated (secrets masked), is attached as a file;
- the sha256 of the values is in the message and in the file, so what was read is what is approved.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from bot import blocks as bk
from bot.redact import MASK, SECRET_KEY
from bot.reply import Attachment

Diff = dict[str, dict[str, Any]]

# Dotted keys whose change can open the cluster up or take it down.
SECURITY_KEY = re.compile(
    r"(^|\.)(service|ingress|route)(\.|$)"  # how Milvus is exposed (service.type=LoadBalancer)
    r"|auth|security|rbac|serviceaccount|privileged|host(network|pid|ipc|port)"
    r"|tls|ssl|cert"
    r"|networkpolic"
    r"|(^|\.)resources(\.|$)"
    r"|image"
    r"|extraconfigfiles|(^|\.)config(\.|$)",  # user.yaml can switch anything on or off
    re.I,
)
# A value that talks about these is reviewed as closely as a key named after them.
SECURITY_VALUE = re.compile(r"authoriz|authentica|security|tls|ssl|password|networkpolic", re.I)
# Longest value shown whole in the message's security list; longer ones say so and point at the file.
SECURITY_VALUE_CHARS = 600
# The security list's share of a message (Slack caps a message at about 12,000 characters).
SECURITY_LIST_CHARS = 4000
MAX_DIFF_LINES = 40
SHORT_VALUE_CHARS = 80


def values_sha256(values: dict[str, Any]) -> str:
    """sha256 of the values' canonical JSON: the same values give the same hash whatever the key order."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _masked(key: str, value: Any) -> bool:
    # Flags such as authorizationEnabled are not secrets, and hiding them would hide the change.
    if value in (None, "") or isinstance(value, bool) or str(value).lower() in ("true", "false"):
        return False
    return bool(SECRET_KEY.search(key.rsplit(".", 1)[-1]))


def shown(key: str, value: Any) -> str:
    """The whole value as JSON, or the mask for a secret."""
    return MASK if _masked(key, value) else json.dumps(value, default=str, ensure_ascii=False)


def short(key: str, value: Any) -> str:
    text = shown(key, value)
    return text if len(text) <= SHORT_VALUE_CHARS else text[: SHORT_VALUE_CHARS - 3] + "..."


def _entries(diff: Diff) -> list[tuple[str, str, Any, Any]]:
    """(sign, key, before, after), in the order the diff is read: added, changed, removed."""
    out = [("+", k, None, v) for k, v in diff["added"].items()]
    out += [("~", k, a, b) for k, (a, b) in diff["changed"].items()]
    out += [("-", k, v, None) for k, v in diff["removed"].items()]
    return out


def _line(sign: str, key: str, before: Any, after: Any, fmt: Any) -> str:
    if sign == "+":
        return f"+ {key}: {fmt(key, after)}"
    if sign == "-":
        return f"- {key}: {fmt(key, before)}"
    return f"~ {key}: {fmt(key, before)} → {fmt(key, after)}"


def diff_lines(diff: Diff) -> list[str]:
    """One short line per change, for the message; the file has them whole."""
    return [_line(*e, fmt=short) for e in _entries(diff)]


def is_security_relevant(key: str, before: Any, after: Any) -> bool:
    if SECURITY_KEY.search(key):
        return True
    return any(isinstance(v, str) and SECURITY_VALUE.search(v) for v in (before, after))


def security_changes(diff: Diff) -> list[str]:
    """Whole lines for the security-relevant changes; a value too long for a message says so."""

    def whole(key: str, value: Any) -> str:
        text = shown(key, value)
        if len(text) <= SECURITY_VALUE_CHARS:
            return text
        cut = f"{text[:SECURITY_VALUE_CHARS]}… [{len(text) - SECURITY_VALUE_CHARS} more characters: see the diff file]"
        if isinstance(value, str) and text != MASK:
            # What the cut hides may be the point (a config file switching auth off at its end).
            telling = [line.strip()[:200] for line in value.splitlines() if SECURITY_VALUE.search(line)]
            if telling:
                cut += " [mentions: " + " | ".join(telling[:10]) + "]"
        return cut

    return [_line(*e, fmt=whole) for e in _entries(diff) if is_security_relevant(e[1], e[2], e[3])]


def _code_sections(title: str, lines: list[str], budget: int) -> tuple[list[dict[str, Any]], int]:
    """Sections of code blocks under Slack's per-section limit; returns them and how many lines fit."""
    sections: list[dict[str, Any]] = []
    chunk: list[str] = []
    used = 0
    fitted = 0
    for line in lines:
        text = bk.escape(line).replace("```", "'''")
        if used + len(text) > budget:
            break
        if chunk and sum(len(c) + 1 for c in chunk) + len(text) > bk.MAX_SECTION_TEXT - len(title) - 20:
            sections.append(bk.section(f"{title}\n```" + "\n".join(chunk) + "```"))
            title, chunk = "", []
        chunk.append(text)
        used += len(text)
        fitted += 1
    if chunk:
        sections.append(bk.section(f"{title}\n```" + "\n".join(chunk) + "```"))
    return sections, fitted


def security_blocks(diff: Diff, diff_file: str) -> list[dict[str, Any]]:
    lines = security_changes(diff)
    if not lines:
        return [bk.section(":shield: *Security-relevant changes*: none (service types, auth, TLS, network policy, "
                           "resources, image and config files are unchanged).")]
    title = f":shield: *Security-relevant changes* ({len(lines)}): read these first"
    blocks, fitted = _code_sections(title, lines, SECURITY_LIST_CHARS)
    if fitted < len(lines):
        blocks.append(bk.context(f":warning: {len(lines) - fitted} more security-relevant change(s) did not fit in "
                                 f"this message: all of them are in `{bk.escape(diff_file)}`."))
    return blocks


def diff_blocks(diff: Diff, against: str, diff_file: str | None) -> list[dict[str, Any]]:
    lines = diff_lines(diff)
    if not lines:
        return [bk.section(f"*Values diff* against {against}: _no value changes._")]
    shown_lines = lines[:MAX_DIFF_LINES]
    body = bk.escape("\n".join(shown_lines)).replace("```", "'''")
    where = f": every change, whole, is in `{bk.escape(diff_file)}`" if diff_file else ""
    more = f"\n… and {len(lines) - len(shown_lines)} more{where}" if len(lines) > len(shown_lines) else ""
    return [bk.section(f"*Values diff* against {against} ({len(lines)} change(s)):\n```{body}{more}```")]


def diff_file(diff: Diff, *, title: str, values_hash: str, payload_hash: str | None = None) -> str:
    """The complete diff as plain text: every changed key, every value whole (secrets masked)."""
    head = [f"# {title}", f"# values sha256: {values_hash}"]
    if payload_hash:
        head.append(f"# approval payload sha256: {payload_hash}")
    entries = _entries(diff)
    security = [e for e in entries if is_security_relevant(e[1], e[2], e[3])]
    head.append(f"# {len(entries)} change(s), {len(security)} security-relevant (marked !)")
    body = [("! " if e in security else "  ") + _line(*e, fmt=shown) for e in entries]
    return "\n".join([*head, "", *body]) + "\n"


def diff_attachment(
    diff: Diff, *, filename: str, title: str, values_hash: str, payload_hash: str | None = None
) -> Attachment:
    text = diff_file(diff, title=title, values_hash=values_hash, payload_hash=payload_hash)
    return Attachment(filename, text.encode(), title=f"Complete values diff: {title}")
