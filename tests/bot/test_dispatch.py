"""The one place that checks roles, audits and turns failures into safe messages."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel, Field

from bot.access import Identity
from bot.config import Config, Environment, Grant, MilvusTarget, Role
from bot.dispatch import Dispatcher
from bot.errors import IntegrationError
from bot.registry import CommandSpec, Registry
from bot.reply import Reply
from bot.settings import Settings
from bot.state import Store
from tests.support.runtime import build_test_runtime

SECRET = "xoxb-super-secret-token-123"


class SetArgs(BaseModel):
    env: str | None = Field(None)
    set: list[str] = Field(default_factory=list)


def ok(ctx, args):
    return Reply(text=f"ok in {ctx.env.name}")


def boom(ctx, args):
    raise RuntimeError(f"database password is {SECRET}")


def flaky(ctx, args):
    raise IntegrationError(f"Alertmanager at http://am:9093 is unreachable (token {SECRET})")


class NullMessenger:
    def post(self, *a, **k):
        return "ref"

    update = upload = post


@pytest.fixture
def dispatcher(tmp_path, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", SECRET)
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    config = Config(
        environments={
            "dev": Environment(milvus=MilvusTarget(uri=str(tmp_path / "m.db"))),
            "prod": Environment(milvus=MilvusTarget(uri=str(tmp_path / "p.db"))),
        },
        access=[
            Grant(role=Role.operator, users=["U1"], environments=["dev"]),
            Grant(role=Role.viewer, users=["U1"], environments=["prod"]),
            Grant(role=Role.admin, groups=["S0ADMINS"]),
        ],
    )
    registry = Registry()
    for name, handler in (("change", ok), ("boom", boom), ("flaky", flaky)):
        registry.add(CommandSpec(name, name, SetArgs, handler, Role.operator, targets_env=True))
    runtime = build_test_runtime(
        settings=Settings(), config=config, store=store, messenger=NullMessenger(), registry=registry
    )
    return Dispatcher(runtime)


def test_roles_are_scoped_per_environment_and_granted_through_groups(dispatcher):
    user = Identity("U1")
    assert dispatcher.run_command("change --env dev", user).exit_code == 0
    denied = dispatcher.run_command("change --env prod", user)
    assert denied.exit_code == 1
    assert "`change` needs the operator role in `prod`; you have viewer." in denied.reply.text
    assert dispatcher.run_command("change --env prod", Identity("U9", frozenset({"S0ADMINS"}))).exit_code == 0


def test_the_environment_is_required_when_several_exist(dispatcher):
    outcome = dispatcher.run_command("change", Identity("U1"))
    assert outcome.exit_code == 1 and "Which environment?" in outcome.reply.text


def test_audit_records_who_what_where_outcome_with_secrets_redacted(dispatcher):
    dispatcher.run_command("change --env dev --set minio.secretKey=hunter2 --set queryNode.replicas=3", Identity("U1"))
    dispatcher.run_command("change --env prod", Identity("U1"))
    denied, done = dispatcher.runtime.audit.recent(limit=2)
    assert (done.user_id, done.action, done.environment, done.outcome) == ("U1", "change", "dev", "ok")
    assert done.arguments["set"] == ["minio.secretKey=***", "queryNode.replicas=3"]
    assert (denied.environment, denied.outcome) == ("prod", "denied")


def test_an_unexpected_failure_shows_only_a_reference_and_logs_the_traceback(dispatcher, caplog):
    with caplog.at_level(logging.ERROR):
        outcome = dispatcher.run_command("boom --env dev", Identity("U1"))
    assert outcome.exit_code == 2
    assert "reference" in outcome.reply.text and "password" not in outcome.reply.text
    ref = dispatcher.runtime.audit.recent(limit=1)[0].reference
    assert ref and ref in outcome.reply.text
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)


def test_integration_errors_are_shown_with_a_reference_and_known_secrets_masked(dispatcher):
    outcome = dispatcher.run_command("flaky --env dev", Identity("U1"))
    assert outcome.exit_code == 2
    assert "Alertmanager at http://am:9093 is unreachable" in outcome.reply.text
    assert SECRET not in outcome.reply.text and "***" in outcome.reply.text
