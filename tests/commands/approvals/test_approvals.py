"""Four-eyes approvals, driven through the real Dispatcher with a real SQLite store.

The executor here is a test kind ("test-change") that records each run, so the rules are checked
without helm: who may approve, how many, expiry, binding to the payload, at-most-once execution, and
a restart in the middle (a new Runtime on the same SQLite file).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot import schema
from bot.access import Identity
from bot.config import Config
from bot.context import Context, GroupDirectory, Runtime
from bot.dispatch import Dispatcher
from bot.reply import Attachment, Message, Reply
from bot.settings import Settings
from bot.state import Store
from commands import build_registry
from commands.approvals.workflow import Approvals
from tests.support.runtime import build_test_runtime
from tests.support.wait import wait_for

REQUESTER, APPROVER_1, APPROVER_2, OUTSIDER, GROUP_MEMBER = "UREQ", "UAPP1", "UAPP2", "UOUT", "UGRP"

RUNS: list[dict[str, Any]] = []
RUN_GATE = threading.Event()
# What the test executor considers "current": flipping it simulates values changing after approval.
CURRENT: dict[str, Any] = {}


def _run(ctx: Context, request: Any) -> Reply:
    Approvals(ctx.runtime).check_payload(request, CURRENT.get(request.id, request.payload))
    ctx.progress("step 1 of 1")
    RUN_GATE.wait(10)
    RUNS.append({"id": request.id, "by": ctx.user.user_id})
    return Reply(text=f"changed {request.payload['what']}")


class RecordingMessenger:
    """Stands in for the Slack outbox: keeps every post and the latest version of each message."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.current: dict[str, Message] = {}
        self.keys: set[str] = set()
        self.files_posted: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def post(self, channel: str, message: Message, *, ref: str | None = None, thread_ref: str | None = None,
             dedupe_key: str | None = None) -> str:
        with self.lock:
            ref = ref or f"msg-{len(self.posts)}"
            if dedupe_key and dedupe_key in self.keys:
                return ref
            if dedupe_key:
                self.keys.add(dedupe_key)
            self.posts.append({"channel": channel, "ref": ref, "thread_ref": thread_ref, "message": message})
            self.current[ref] = message
            return ref

    def update(self, ref: str, message: Message) -> None:
        with self.lock:
            self.current[ref] = message

    def upload(
        self, channel: str, files: list[Attachment], *, thread_ref: str | None = None, comment: str = ""
    ) -> None:
        with self.lock:
            self.files_posted.append({"channel": channel, "thread_ref": thread_ref, "files": files,
                                      "comment": comment})

    def thread(self, ref: str) -> list[str]:
        with self.lock:
            return [p["message"].text for p in self.posts if p["thread_ref"] == ref]

    def text(self, ref: str) -> str:
        message = self.current[ref]
        return message.text + json.dumps(message.blocks, ensure_ascii=False)


class Directory(GroupDirectory):
    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset({"SOPS"}) if user_id == GROUP_MEMBER else frozenset()


def make_config(required: int = 2, expires: int = 30) -> Config:
    return Config.model_validate(
        {
            "environments": {
                "prod": {
                    "milvus": {"uri": "/nonexistent/milvus.db"},
                    "approval": {
                        "required": True,
                        "approvers": [APPROVER_1, APPROVER_2, REQUESTER, "SOPS"],
                        "approvals_required": required,
                        "expires_minutes": expires,
                    },
                    "channels": {"approvals": "CAPPROVALS"},
                }
            },
            "access": [
                {"role": "operator", "users": [REQUESTER, APPROVER_1, APPROVER_2]},
                {"role": "viewer", "users": [OUTSIDER], "groups": ["SOPS"]},
            ],
        }
    )


def make_runtime(db: Path, messenger: RecordingMessenger, config: Config | None = None) -> Runtime:
    store = Store(f"sqlite:///{db}")
    store.migrate()
    settings = Settings(data_dir=db.parent)
    registry = build_registry()
    registry.executor("test-change", _run)
    return build_test_runtime(settings=settings, config=config or make_config(), store=store, messenger=messenger,
                        registry=registry, directory=Directory())


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNS.clear()
    CURRENT.clear()
    RUN_GATE.set()


@pytest.fixture
def messenger() -> RecordingMessenger:
    return RecordingMessenger()


@pytest.fixture
def runtime(tmp_path: Path, messenger: RecordingMessenger) -> Runtime:
    return make_runtime(tmp_path / "state.db", messenger)


def ask(runtime: Runtime, what: str = "replicas 3") -> Any:
    ctx = Context(runtime, Identity(REQUESTER), runtime.config.environments["prod"], "CREQ")
    return Approvals(runtime).request(
        ctx, kind="test-change", env="prod", title=f"Change {what}", summary_blocks=[], payload={"what": what}
    )


def click(runtime: Runtime, user: str, action: str, request_id: str) -> Any:
    dispatcher = Dispatcher(runtime)
    return dispatcher.run_action(f"{action}:{request_id}", {"env": "prod", "id": request_id},
                                 runtime.identity(user), channel="CAPPROVALS")


def text_of(outcome: Any) -> str:
    return outcome.reply.text


def finished(runtime: Runtime, request_id: str) -> Any:
    return wait_for(lambda: (r := Approvals(runtime).get(request_id)).state not in ("pending", "executing") and r,
                    timeout=10, message="the approved request did not finish")


def test_request_is_posted_with_hash_and_buttons(runtime: Runtime, messenger: RecordingMessenger) -> None:
    request = ask(runtime)
    post = messenger.posts[0]
    assert post["channel"] == "CAPPROVALS"
    shown = messenger.text(request.message_ref)
    assert request.short_hash in shown
    assert f"approval_approve:{request.id}" in shown and f"approval_reject:{request.id}" in shown
    assert "0 of 2" in shown
    # Buttons carry only the id and env: everything else is read from the state store.
    button = post["message"].blocks[-2]["elements"][0]
    assert json.loads(button["value"]) == {"env": "prod", "id": request.id}


def test_requester_cannot_approve_own_request_even_as_approver(runtime: Runtime) -> None:
    request = ask(runtime)
    outcome = click(runtime, REQUESTER, "approval_approve", request.id)
    assert outcome.exit_code == 1
    assert "cannot approve it" in text_of(outcome)
    assert Approvals(runtime).get(request.id).approvers == ()


def test_non_approver_is_refused_and_audited(runtime: Runtime) -> None:
    request = ask(runtime)
    outcome = click(runtime, OUTSIDER, "approval_approve", request.id)
    assert outcome.exit_code == 1
    assert "Only approvers of `prod`" in text_of(outcome)
    entries = runtime.audit.recent(environment="prod")
    assert any(e.action == "test-change approve" and e.outcome == "denied" and e.user_id == OUTSIDER for e in entries)


def test_two_approvals_are_required_and_the_change_runs_once(
    runtime: Runtime, messenger: RecordingMessenger
) -> None:
    request = ask(runtime)
    first = click(runtime, APPROVER_1, "approval_approve", request.id)
    assert "1 of 2" in text_of(first)
    assert RUNS == []
    assert "1 of 2" in messenger.text(request.message_ref)
    second = click(runtime, GROUP_MEMBER, "approval_approve", request.id)  # approver through a user group
    assert "running request" in text_of(second)
    done = finished(runtime, request.id)
    assert done.state == "done"
    runs = list(RUNS)
    assert runs == [{"id": request.id, "by": GROUP_MEMBER}]
    assert messenger.thread(request.message_ref) == ["step 1 of 1", "changed replicas 3"]
    # The message is updated after the state turns final (in Slack, through the outbox): wait for it.
    wait_for(lambda: "Approved and done" in messenger.text(request.message_ref), timeout=10,
             message="the request message never said it was done")
    assert "approval_approve" not in messenger.text(request.message_ref)  # buttons gone
    actions = {(e.action, e.outcome) for e in runtime.audit.recent(environment="prod", limit=50)}
    assert {("test-change request", "ok"), ("test-change approve", "ok"), ("test-change execute", "ok")} <= actions


def test_double_click_counts_once(runtime: Runtime) -> None:
    request = ask(runtime)
    click(runtime, APPROVER_1, "approval_approve", request.id)
    again = click(runtime, APPROVER_1, "approval_approve", request.id)
    assert "already approved" in text_of(again)
    assert Approvals(runtime).get(request.id).approvers == (APPROVER_1,)
    assert Approvals(runtime).get(request.id).state == "pending"


def test_simultaneous_final_approvals_and_replays_execute_at_most_once(runtime: Runtime) -> None:
    runtime.config.environments["prod"].approval.approvals_required = 1
    request = ask(runtime)
    RUN_GATE.clear()  # hold the executor so every click lands while it is running
    outcomes: list[Any] = []
    barrier = threading.Barrier(6)

    def press(user: str) -> None:
        barrier.wait()
        outcomes.append(click(runtime, user, "approval_approve", request.id))

    threads = [threading.Thread(target=press, args=(u,)) for u in (APPROVER_1, APPROVER_2, GROUP_MEMBER) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    RUN_GATE.set()
    finished(runtime, request.id)
    # A replayed button payload after the run is refused as well.
    replay = click(runtime, APPROVER_2, "approval_approve", request.id)
    assert replay.exit_code == 1 and "already done" in text_of(replay)
    assert len(RUNS) == 1
    assert sum("running request" in text_of(o) for o in outcomes) == 1


def test_expired_request_cannot_be_approved_and_the_message_says_so(
    runtime: Runtime, messenger: RecordingMessenger
) -> None:
    request = ask(runtime)
    with runtime.store.begin() as conn:  # an hour passes
        conn.execute(update(schema.approval_requests).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    assert Approvals.expire_due(runtime) == 1
    assert "Expired" in messenger.text(request.message_ref)
    outcome = click(runtime, APPROVER_1, "approval_approve", request.id)
    assert outcome.exit_code == 1 and "expired" in text_of(outcome)
    assert RUNS == []


def test_serve_sweeps_expired_requests_every_half_minute(runtime: Runtime, messenger: RecordingMessenger) -> None:
    [(seconds, sweep)] = [(s.seconds, s.fn) for s in runtime.registry.sweeps if s.name == "expire_approvals"]
    assert seconds <= 30
    request = ask(runtime)
    with runtime.store.begin() as conn:
        conn.execute(update(schema.approval_requests).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    sweep(runtime)
    assert Approvals(runtime).get(request.id).state == "expired"
    assert "Expired" in messenger.text(request.message_ref)


def test_click_after_expiry_expires_even_before_the_sweep(runtime: Runtime, messenger: RecordingMessenger) -> None:
    request = ask(runtime)
    with runtime.store.begin() as conn:
        conn.execute(update(schema.approval_requests).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    outcome = click(runtime, APPROVER_1, "approval_approve", request.id)
    assert "expired" in text_of(outcome)
    assert Approvals(runtime).get(request.id).state == "expired"
    assert "Expired" in messenger.text(request.message_ref)


def test_request_left_running_by_a_dead_bot_is_marked_interrupted(
    runtime: Runtime, messenger: RecordingMessenger
) -> None:
    request = ask(runtime)
    with runtime.store.begin() as conn:  # as a bot that died mid-run left it, hours ago
        conn.execute(update(schema.approval_requests).values(
            state="executing", decided_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=7)))
    Approvals.expire_due(runtime)
    assert Approvals(runtime).get(request.id).state == "failed"
    assert "Interrupted: the bot stopped while running it" in messenger.text(request.message_ref)
    assert RUNS == []


def test_changed_payload_after_approval_is_not_executed(runtime: Runtime, messenger: RecordingMessenger) -> None:
    request = ask(runtime)
    CURRENT[request.id] = {"what": "replicas 1"}  # what would be applied now differs
    click(runtime, APPROVER_1, "approval_approve", request.id)
    click(runtime, APPROVER_2, "approval_approve", request.id)
    done = finished(runtime, request.id)
    assert done.state == "stale"
    assert RUNS == []
    assert any("changed since approval" in t for t in messenger.thread(request.message_ref))


def test_reject_by_text_and_button_modal(runtime: Runtime, messenger: RecordingMessenger) -> None:
    request = ask(runtime)
    dispatcher = Dispatcher(runtime)
    # The button opens a modal asking why (Slack gives a trigger_id).
    opened = dispatcher.run_action(f"approval_reject:{request.id}", {"env": "prod", "id": request.id},
                                   runtime.identity(APPROVER_1), trigger_id="123.456")
    assert opened.reply.modal is not None
    assert opened.reply.modal["callback_id"] == "approval_reject_reason"
    meta = json.loads(opened.reply.modal["private_metadata"])
    submitted = dispatcher.run_action(
        "approval_reject_reason", {**meta, "reason": "peak hours <!channel>"}, runtime.identity(APPROVER_1),
        kind="modal",
    )
    assert submitted.exit_code == 0
    current = Approvals(runtime).get(request.id)
    assert current.state == "rejected" and current.decided_by == APPROVER_1
    shown = messenger.text(request.message_ref)
    assert "peak hours &lt;!channel&gt;" in shown and "<!channel>" not in shown
    late = dispatcher.run_command(f"/milvus approve {request.id}", runtime.identity(APPROVER_2))
    assert late.exit_code == 1 and "already rejected" in late.reply.text
    assert RUNS == []


def test_reject_by_text_needs_a_reason_and_an_approver(runtime: Runtime) -> None:
    request = ask(runtime)
    dispatcher = Dispatcher(runtime)
    assert dispatcher.run_command(f"/milvus reject {request.id}", runtime.identity(APPROVER_1)).exit_code == 1
    outsider = dispatcher.run_command(f"/milvus reject {request.id} no", runtime.identity(OUTSIDER))
    assert outsider.exit_code == 1 and "Only approvers" in outsider.reply.text
    ok = dispatcher.run_command(f"/milvus reject {request.id} not now", runtime.identity(APPROVER_2))
    assert ok.exit_code == 0 and Approvals(runtime).get(request.id).reason == "not now"


def test_pending_request_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    before = RecordingMessenger()
    first = make_runtime(db, before)
    request = ask(first)
    click(first, APPROVER_1, "approval_approve", request.id)
    first.store.engine.dispose()  # the bot process goes away

    after = RecordingMessenger()
    second = make_runtime(db, after)  # a new process: new Runtime, same SQLite file
    outcome = Dispatcher(second).run_command(f"/milvus approve {request.id}", second.identity(APPROVER_2))
    assert outcome.exit_code == 0, outcome.reply.text
    done = finished(second, request.id)
    assert done.state == "done" and done.approvers == (APPROVER_1, APPROVER_2)
    assert len(RUNS) == 1
    assert after.thread(request.message_ref)[-1] == "changed replicas 3"


def test_unknown_request_id(runtime: Runtime) -> None:
    outcome = Dispatcher(runtime).run_command("/milvus approve deadbeef", runtime.identity(APPROVER_1))
    assert outcome.exit_code == 1 and "no approval request" in outcome.reply.text
