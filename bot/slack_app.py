"""Slack transport: Bolt listeners that ack at once and hand the work to the Dispatcher.

Slash commands and buttons are acknowledged before any handler runs (Bolt then keeps the listener
going in its thread pool), so the 3-second limit holds however slow Milvus or S3 are. Replies go
back through the request's ``response_url``; channel messages go through the outbox.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.blocks import fit_blocks, fit_text
from bot.context import GroupDirectory, Runtime
from bot.dispatch import Dispatcher, Outcome
from bot.redact import hush_request_logs

log = logging.getLogger("milvus_chatops.slack")

PROGRESS_INTERVAL_S = 5.0
PROGRESS_MAX_POSTS = 3  # response_url takes 5 posts; keep room for the final reply
WORKERS = 16  # handlers block on I/O (backups, rollouts) for minutes; threads waiting are cheap


class SlackGroupDirectory(GroupDirectory):
    """User group membership from usergroups.users.list, cached so role checks stay fast."""

    def __init__(self, client: Any, group_ids: set[str], ttl_s: float = 300.0) -> None:
        self.client = client
        self.group_ids = group_ids
        self.ttl_s = ttl_s
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def _members_of(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._members.get(group)
        if cached and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        try:
            users = frozenset(self.client.usergroups_users_list(usergroup=group).get("users", []))
        except Exception:
            log.warning("could not read members of user group %s; treating it as empty for now", group)
            users = cached[1] if cached else frozenset()
        with self._lock:
            self._members[group] = (time.monotonic(), users)
        return users

    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset(g for g in self.group_ids if user_id in self._members_of(g))


def referenced_groups(runtime_config: Any) -> set[str]:
    groups = {g for grant in runtime_config.access for g in grant.groups}
    for env in runtime_config.environments.values():
        groups.update(a for a in env.approval.approvers if a.startswith("S"))
    return groups


class ResponseProgress:
    """Progress for one request, shown by replacing one ephemeral message, throttled."""

    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.posts = 0
        self.last = 0.0

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if self.posts >= PROGRESS_MAX_POSTS or (self.posts and now - self.last < PROGRESS_INTERVAL_S):
            return
        self.posts += 1
        self.last = now
        try:
            self.respond(text=f":hourglass_flowing_sand: {fit_text(text)}", replace_original=True)
        except Exception:
            log.warning("progress update failed", exc_info=True)


def _send_reply(
    runtime: Runtime,
    outcome: Outcome,
    respond: Any,
    client: Any,
    channel: str | None,
    trigger_id: str | None,
    replace: bool,
) -> None:
    reply = outcome.reply
    if reply.modal and trigger_id:
        modal = dict(reply.modal)
        metadata = json.loads(modal.get("private_metadata") or "{}")
        metadata.setdefault("channel", channel)
        modal["private_metadata"] = json.dumps(metadata)
        client.views_open(trigger_id=trigger_id, view=modal)
        if not reply.text:
            return
    with hush_request_logs() if reply.sensitive else contextlib.nullcontext():
        respond(
            text=fit_text(reply.text),
            blocks=fit_blocks(reply.blocks) or None,
            response_type=reply.response_type,
            replace_original=replace or reply.replace_original,
        )
    if reply.files and channel:
        runtime.messenger.upload(channel, reply.files, comment=fit_text(reply.text)[:200])


def _decode_value(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"value": raw}
    return value if isinstance(value, dict) else {"value": value}


def _view_values(view: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for block in view.get("state", {}).get("values", {}).values():
        for action_id, element in block.items():
            if "selected_option" in element:
                values[action_id] = (element["selected_option"] or {}).get("value")
            elif "selected_options" in element:
                values[action_id] = [o.get("value") for o in element["selected_options"]]
            else:
                values[action_id] = element.get("value")
    return values


def build_bolt_app(runtime: Runtime, dispatcher: Dispatcher, client: Any) -> Any:
    from slack_bolt import App

    settings = runtime.settings
    assert settings.slack_signing_secret is not None
    # Handlers run here, not in Bolt's listener threads: a listener only acks and hands over, so a
    # burst of slow commands (a status against a busy Milvus) can never delay the next ack past 3 s.
    work = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="handler")

    def in_background(fn: Any, *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("background handler failed")

        work.submit(run)

    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        token_verification_enabled=False,
        # Listeners only ack and hand over to `work`, so run them inline: Bolt's other mode hops to a
        # thread and polls for the ack every 10 ms, which capped acks at ~190/s on two cores.
        process_before_response=True,
        ignoring_self_events_enabled=False,
    )

    @app.command("/milvus")
    def on_command(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        in_background(run_command, body, respond, client)

    def run_command(body: dict[str, Any], respond: Any, client: Any) -> None:
        user = runtime.identity(body["user_id"])
        channel = body.get("channel_id")
        outcome = dispatcher.run_command(
            body.get("text", ""),
            user,
            channel=channel,
            progress=ResponseProgress(respond),
            trigger_id=body.get("trigger_id"),
        )
        _send_reply(runtime, outcome, respond, client, channel, body.get("trigger_id"), replace=False)

    @app.action(re.compile(r"^(?!link).*"))
    def on_action(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        ack()
        in_background(run_actions, body, respond, client)

    def run_actions(body: dict[str, Any], respond: Any, client: Any) -> None:
        user = runtime.identity(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id")
        for act in body.get("actions", []):
            payload = _decode_value(act.get("value") or (act.get("selected_option") or {}).get("value"))
            payload.setdefault("_message_ts", (body.get("message") or {}).get("ts"))
            outcome = dispatcher.run_action(
                act["action_id"],
                payload,
                user,
                channel=channel,
                progress=ResponseProgress(respond),
                trigger_id=body.get("trigger_id"),
            )
            _send_reply(runtime, outcome, respond, client, channel, body.get("trigger_id"), replace=False)

    @app.action(re.compile(r"^link"))
    def on_link(ack: Any) -> None:
        ack()  # URL buttons also send an action; there is nothing to do but acknowledge it

    @app.view(re.compile(".*"))
    def on_view(ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        ack()
        in_background(run_view, body, view, client)

    def run_view(body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        user = runtime.identity(body["user"]["id"])
        metadata = _decode_value(view.get("private_metadata"))
        payload = {**metadata, **_view_values(view)}
        channel = metadata.get("channel") if isinstance(metadata.get("channel"), str) else None
        outcome = dispatcher.run_action(
            view["callback_id"], payload, user, channel=channel, kind="modal", trigger_id=body.get("trigger_id")
        )
        reply = outcome.reply
        text, blocks = fit_text(reply.text), fit_blocks(reply.blocks) or None
        if channel:
            client.chat_postEphemeral(channel=channel, user=user.user_id, text=text, blocks=blocks)
        else:
            client.chat_postMessage(channel=user.user_id, text=text, blocks=blocks)
        if reply.files:
            runtime.messenger.upload(channel or user.user_id, reply.files, comment=text[:200])

    return app
