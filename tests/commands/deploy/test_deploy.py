"""/milvus deploy, rollback, history and approvals, through the real Dispatcher and a real SQLite store.

Helm and Kubernetes are FAKES at their boundaries: tests/support/bin/helm is a fake ``helm`` on PATH
(records argv and the values file, answers status/history/get values from a state file), and
tests/support/fake_kube.py is a fake Kubernetes API server the official client talks to (pods are
given the status a cluster would report). Milvus is real: Milvus Lite answers ``get_server_version``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as bk
from bot.access import Identity
from bot.context import Context
from bot.dispatch import Dispatcher, Outcome
from bot.settings import Settings
from bot.state import Store
from commands.approvals.workflow import Approvals
from commands.deploy.history import release_summary
from tests.commands.approvals.test_approvals import RecordingMessenger
from tests.support.fake_helm import FakeHelm
from tests.support.fake_kube import FakeKube
from tests.support.runtime import build_test_runtime
from tests.support.wait import wait_for

REQUESTER, APPROVER_1, APPROVER_2, VIEWER = "UREQ", "UAPP1", "UAPP2", "UVIEW"
MILVUS_LABELS = {"app.kubernetes.io/instance": "milvus", "app.kubernetes.io/name": "milvus"}
COMPONENTS = ("proxy", "querynode", "datanode", "mixcoord")


def config_yaml(tmp: Path, kubeconfig: Path, profile: dict[str, Any] | None = None) -> dict[str, Any]:
    profile = profile if profile is not None else {"cluster": {"enabled": True}, "queryNode": {"replicas": 2}}
    common = {
        "milvus": {"uri": str(tmp / "milvus.db")},
        "helm": {"release": "milvus", "chart": "milvus/milvus", "milvus_version": "2.5.16", "timeout": "5m",
                 "values": profile},
    }
    return {
        "environments": {
            "dev": {**common, "kubernetes": {"kubeconfig": str(kubeconfig), "namespace": "milvus-dev",
                                             "client_namespaces": ["app"]}},
            "staging": {
                **common,
                "kubernetes": {"kubeconfig": str(kubeconfig), "namespace": "milvus-staging",
                               "client_namespaces": ["app"]},
                "approval": {"required": True, "approvers": [APPROVER_1, APPROVER_2, REQUESTER],
                             "approvals_required": 2, "expires_minutes": 30},
                "channels": {"approvals": "CAPPROVALS"},
            },
        },
        "access": [
            {"role": "operator", "users": [REQUESTER, APPROVER_1, APPROVER_2]},
            {"role": "viewer", "users": [VIEWER]},
        ],
    }


class Bot:
    """A bot process: Runtime + Dispatcher on a SQLite file, with a recording messenger."""

    def __init__(self, db: Path, config: dict[str, Any]) -> None:
        self.messenger = RecordingMessenger()
        store = Store(f"sqlite:///{db}")
        store.migrate()
        self.runtime = build_test_runtime(settings=Settings(data_dir=db.parent), config=config, store=store,
                                    messenger=self.messenger)
        self.dispatcher = Dispatcher(self.runtime)

    def run(self, text: str, user: str = REQUESTER) -> Outcome:
        return self.dispatcher.run_command(text, self.runtime.identity(user), channel="COPS")

    def press(self, user: str, request_id: str, action: str = "approval_approve") -> Outcome:
        return self.dispatcher.run_action(f"{action}:{request_id}", {"env": "staging", "id": request_id},
                                          self.runtime.identity(user), channel="CAPPROVALS")

    def close(self) -> None:
        self.runtime.services.close_all()
        self.runtime.store.engine.dispose()


@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHelm:
    helm = FakeHelm(tmp_path / "helm-state")
    helm.set_chart("milvus/milvus", {"4.2.50": "2.5.14", "4.2.58": "2.5.16", "5.0.19": "2.6.15"})
    # The bot finds `helm` on PATH, as in production; here PATH leads to the fake.
    for key, value in helm.env_updates().items():
        monkeypatch.setenv(key, value)
    return helm


@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(workdir=tmp_path / "kube") as kube:
        yield kube


@pytest.fixture
def make_bot(tmp_path: Path, fake_kube: FakeKube) -> Iterator[Any]:
    bots: list[Bot] = []

    def make(profile: dict[str, Any] | None = None) -> Bot:
        bot = Bot(tmp_path / "state.db", config_yaml(tmp_path, fake_kube.kubeconfig_path(), profile))
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()


@pytest.fixture
def bot(make_bot: Any) -> Bot:
    return make_bot()  # type: ignore[no-any-return]


def seed(fake_helm: FakeHelm, fake_kube: FakeKube, namespace: str, *, app_version: str = "2.5.14",
         chart_version: str = "4.2.50", values: dict[str, Any] | None = None, revisions: int = 2) -> None:
    fake_helm.seed_release(
        "milvus", namespace, chart="milvus", version=chart_version, app_version=app_version,
        values=values if values is not None else {"cluster": {"enabled": True}, "queryNode": {"replicas": 3},
                                                  "image": {"all": {"tag": f"v{app_version}"}}},
        revisions=revisions,
    )
    fake_kube.create_namespace(namespace)
    for component in COMPONENTS:
        fake_kube.set_pod(namespace, f"milvus-{component}-0", {**MILVUS_LABELS, "component": component},
                          image=f"milvusdb/milvus:v{app_version}")


def request_id_of(outcome: Outcome) -> str:
    return str(outcome.reply.data["approval"]["id"])


def finished(bot: Bot, request_id: str) -> Any:
    return wait_for(
        lambda: (r := Approvals(bot.runtime).get(request_id)).state not in ("pending", "executing") and r,
        timeout=60, message=lambda: f"request did not finish; thread: {bot.messenger.thread('approval:' + request_id)}",
    )


# -- environments without approval ----------------------------------------------------------------


def test_deploy_without_approval_prepares_upgrades_and_validates(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-dev")
    outcome = bot.run("/milvus deploy dev --set proxy.replicas=2")
    assert outcome.exit_code == 0, outcome.reply.text
    assert "Deployed Milvus 2.5.16 to dev: revision 3, chart milvus-4.2.58" in outcome.reply.text
    assert "4/4 pods Ready" in outcome.reply.text and "Milvus answers" in outcome.reply.text
    [call] = fake_helm.calls("upgrade")
    assert call.positional == ["upgrade", "milvus", "milvus/milvus"]
    assert call.flag("--version") == "4.2.58" and call.flag("--namespace") == "milvus-dev"
    assert call.flag("--timeout") == "5m" and call.has_flag("--atomic") and call.has_flag("--wait")
    # Profile < version < --set, all in the values file.
    assert call.values == {"cluster": {"enabled": True}, "queryNode": {"replicas": 2},
                           "image": {"all": {"tag": "v2.5.16"}}, "proxy": {"replicas": 2}}
    policy = fake_kube.get("NetworkPolicy", "milvus-milvus-clients", "milvus-dev", api_version="networking.k8s.io/v1")
    assert policy is not None
    assert fake_kube.get("ServiceAccount", "milvus-milvus", "milvus-dev") is not None
    data = outcome.reply.data
    assert data["chart_version_before"] == "4.2.50" and data["chart_version"] == "4.2.58"
    assert data["image_before"] == "milvusdb/milvus:v2.5.14" and data["image"] == "milvusdb/milvus:v2.5.16"
    assert "queryNode.replicas" in data["diff"]["changed"] and "proxy.replicas" in data["diff"]["added"]
    assert any("Replica cut `queryNode.replicas` 3 → 2" in r for r in data["risks"])
    # The command's own row is written before it runs (a change is recorded before it is made), the
    # rollout's while it runs: both end ok.
    entries = bot.runtime.audit.recent(environment="dev")
    assert [(e.action, e.outcome) for e in entries[:2]] == [("deploy rollout", "ok"), ("deploy", "ok")]
    assert entries[0].arguments["chart_version"] == "4.2.58" and entries[0].arguments["requester"] == REQUESTER


def test_dry_run_shows_diff_and_risks_and_changes_nothing(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    outcome = bot.run("/milvus deploy staging --dry-run --set queryNode.replicas=1")
    assert outcome.exit_code == 0, outcome.reply.text
    shown = json.dumps(outcome.reply.blocks, ensure_ascii=False)
    assert "~ queryNode.replicas: 3 → 1" in shown
    assert '~ image.all.tag: \\"v2.5.14\\" → \\"v2.5.16\\"' in shown
    assert "Replica cut" in shown and "milvus-4.2.50 → milvus-4.2.58" in shown
    # Only helm's own --dry-run ran; no approval was asked even though staging needs one.
    [call] = fake_helm.calls("upgrade")
    assert call.has_flag("--dry-run")
    assert fake_helm.release("milvus", "milvus-staging")["revisions"][-1]["revision"] == 2  # type: ignore[index]
    assert bot.messenger.posts == []
    assert not fake_kube.requests("POST") and not fake_kube.requests("PUT") and not fake_kube.requests("PATCH")


# -- approvals ------------------------------------------------------------------------------------


def test_staging_deploy_needs_two_other_approvers_then_runs_once_with_progress_in_thread(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    asked = bot.run("/milvus deploy staging --version 2.5.16")
    assert asked.exit_code == 0, asked.reply.text
    request_id = request_id_of(asked)
    assert fake_helm.calls("upgrade") == []
    [post] = bot.messenger.posts
    assert post["channel"] == "CAPPROVALS"
    approval_text = bot.messenger.text(post["ref"])
    assert asked.reply.data["approval"]["payload_hash"][:12] in approval_text
    assert "milvus-4.2.50 → milvus-4.2.58" in approval_text

    own = bot.press(REQUESTER, request_id)
    assert own.exit_code == 1 and "cannot approve it" in own.reply.text
    viewer = bot.press(VIEWER, request_id)
    assert viewer.exit_code == 1
    first = bot.press(APPROVER_1, request_id)
    assert "1 of 2" in first.reply.text and fake_helm.calls("upgrade") == []
    second = bot.press(APPROVER_2, request_id)
    assert second.exit_code == 0 and "running request" in second.reply.text
    again = bot.press(APPROVER_2, request_id)
    assert again.exit_code == 1

    done = finished(bot, request_id)
    assert done.state == "done", done.result
    assert len(fake_helm.calls("upgrade")) == 1
    thread = bot.messenger.thread(f"approval:{request_id}")
    assert any("Namespace `milvus-staging`" in t for t in thread)
    assert any("4/4 pods ready" in t for t in thread)
    assert thread[-1].startswith("Deployed Milvus 2.5.16 to staging")
    audit = {(e.action, e.outcome) for e in bot.runtime.audit.recent(environment="staging", limit=50)}
    assert ("deploy execute", "ok") in audit and ("deploy approve", "denied") in audit


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])] + [e.get("text", "") for e in block.get("elements", [])]
    return out


def test_an_approver_sees_every_change_and_security_keys_first_however_long_the_diff(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    padding = " ".join(f"--set padding.key{i:02d}=value-{i}" for i in range(45))
    # What a hostile requester would hide behind the padding: a public endpoint, and auth switched
    # off at the end of a value longer than any line the message shows.
    user_yaml = "# " + "tuning " * 30 + "\ncommon:\n  security:\n    authorizationEnabled: false\n"
    asked = bot.run(f"/milvus deploy staging {padding} --set proxy.service.type=LoadBalancer "
                    f"--set 'extraConfigFiles.user\\.yaml={user_yaml}'")
    assert asked.exit_code == 0, asked.reply.text
    request_id = request_id_of(asked)
    [post] = bot.messenger.posts
    texts = _texts(bot.messenger.current[post["ref"]].blocks)
    security = next(i for i, t in enumerate(texts) if "Security-relevant changes" in t)
    diff = next(i for i, t in enumerate(texts) if "*Values diff*" in t)
    assert security < diff, "the security-relevant changes come before the long diff"
    listed = "\n".join(t for t in texts[security:diff] if "padding" not in t)
    assert 'proxy.service.type: "LoadBalancer"' in listed
    assert "authorizationEnabled: false" in listed and "tuning " * 30 in listed  # the whole value
    assert "padding.key00" not in listed

    # The complete diff is in the request's thread, with the hash the message shows.
    [upload] = bot.messenger.files_posted
    assert upload["channel"] == "CAPPROVALS" and upload["thread_ref"] == f"approval:{request_id}"
    [diff_file] = upload["files"]
    content = diff_file.content.decode()
    for i in range(45):
        assert f"+ padding.key{i:02d}: \"value-{i}\"" in content
    assert '! + proxy.service.type: "LoadBalancer"' in content and "authorizationEnabled: false" in content
    values_hash = asked.reply.data["values_sha256"]
    assert f"values sha256: {values_hash}" in content
    assert values_hash in bot.messenger.text(post["ref"])
    message = bot.messenger.current[post["ref"]]
    assert bk.fit_blocks(message.blocks) == message.blocks, "within Slack's limits: nothing dropped on the way"

    bot.press(APPROVER_1, request_id)
    bot.press(APPROVER_2, request_id)
    assert finished(bot, request_id).state == "done"
    [call] = fake_helm.calls("upgrade")
    applied = json.dumps(call.values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(applied.encode()).hexdigest() == values_hash, "what was approved is what was applied"


def test_a_security_value_too_long_for_the_message_says_so_and_shows_what_it_mentions(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    user_yaml = "# " + "x" * 3000 + "\ncommon:\n  security:\n    authorizationEnabled: false\n"
    asked = bot.run(f"/milvus deploy staging --set 'extraConfigFiles.user\\.yaml={user_yaml}'")
    assert asked.exit_code == 0, asked.reply.text
    [post] = bot.messenger.posts
    listed = next(t for t in _texts(bot.messenger.current[post["ref"]].blocks) if "Security-relevant" in t)
    assert "more characters: see the diff file" in listed
    assert "[mentions: security: | authorizationEnabled: false]" in listed
    [upload] = bot.messenger.files_posted
    assert "x" * 3000 + "\\ncommon:" in upload["files"][0].content.decode()


def test_production_needs_approval_for_deploy_and_rollback_without_approval_required(
    tmp_path: Path, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    config = config_yaml(tmp_path, fake_kube.kubeconfig_path())
    config["environments"]["dev"].update(production=True, approval={"approvers": [APPROVER_1, APPROVER_2]},
                                         channels={"approvals": "CAPPROVALS"})
    bot = Bot(tmp_path / "state.db", config)
    try:
        seed(fake_helm, fake_kube, "milvus-dev", revisions=3)
        deploy = bot.run("/milvus deploy dev --set proxy.replicas=2")
        assert deploy.exit_code == 0, deploy.reply.text
        assert "Approval requested" in deploy.reply.text and fake_helm.calls("upgrade") == []
        rollback = bot.run("/milvus rollback dev")
        assert rollback.exit_code == 0, rollback.reply.text
        assert "Approval requested" in rollback.reply.text and fake_helm.calls("rollback") == []
        bot.press(APPROVER_1, request_id_of(rollback))
        assert finished(bot, request_id_of(rollback)).state == "done"
        assert [c.positional for c in fake_helm.calls("rollback")] == [["rollback", "milvus", "2"]]
    finally:
        bot.close()


def test_changed_config_after_approval_refuses_to_deploy_after_restart(
    make_bot: Any, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    before = make_bot()
    request_id = request_id_of(before.run("/milvus deploy staging"))
    before.press(APPROVER_1, request_id)
    before.close()
    # The operator edits the profile and restarts the bot: same state file, different values.
    after = make_bot({"cluster": {"enabled": True}, "queryNode": {"replicas": 6}})
    outcome = after.press(APPROVER_2, request_id)
    assert outcome.exit_code == 0, outcome.reply.text
    done = finished(after, request_id)
    assert done.state == "stale"
    assert fake_helm.calls("upgrade") == []
    assert "changed since approval" in after.messenger.thread(f"approval:{request_id}")[-1]


def test_plan_values_are_bound_to_the_approval(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    bot.runtime.store.kv_put("plans", "p-small", {"vectors": "20M", "dim": 768, "milvus_version": "2.5"})
    asked = bot.run("/milvus deploy staging --plan p-small")
    assert asked.exit_code == 0, asked.reply.text
    # The plan's resources land in the values (and so in the diff the approvers see).
    assert "queryNode.resources.limits.memory" in asked.reply.data["diff"]["added"]
    request_id = request_id_of(asked)
    bot.press(APPROVER_1, request_id)
    # The stored plan changes before the second approval (plan ids are content hashes, but the sizing
    # rules behind them can change with a bot upgrade): the values it renders to differ.
    bot.runtime.store.kv_put("plans", "p-small", {"vectors": "200M", "dim": 768, "milvus_version": "2.5"})
    bot.press(APPROVER_2, request_id)
    assert finished(bot, request_id).state == "stale"
    assert fake_helm.calls("upgrade") == []


def test_reject_with_reason_by_text(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    request_id = request_id_of(bot.run("/milvus deploy staging"))
    outcome = bot.run(f"/milvus reject {request_id} wait for the freeze to end", user=APPROVER_1)
    assert outcome.exit_code == 0
    assert "Rejected by <@UAPP1>: wait for the freeze to end" in bot.messenger.text(f"approval:{request_id}")
    assert bot.press(APPROVER_2, request_id).exit_code == 1
    assert fake_helm.calls("upgrade") == []


# -- one deploy at a time -------------------------------------------------------------------------


def test_second_deploy_while_one_runs_is_told_who_holds_the_lock(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-dev")
    fake_helm.fail_next("upgrade", hang_seconds=4, stderr="Error: context deadline exceeded")
    results: list[Outcome] = []
    first = threading.Thread(target=lambda: results.append(bot.run("/milvus deploy dev")))
    first.start()
    wait_for(lambda: fake_helm.calls("upgrade"), timeout=20, message="first deploy never reached helm")
    second = bot.run("/milvus deploy dev --version 2.5.16", user=APPROVER_1)
    first.join(60)
    assert second.exit_code == 1
    assert "Deploy of Milvus 2.5.16 by <@UREQ> in progress in `dev`" in second.reply.text
    assert len(fake_helm.calls("upgrade")) == 1
    # The lock is released when the first one ends, even though it failed.
    assert results[0].exit_code == 2
    assert bot.runtime.store.holder("deploy:dev") is None


# -- failures and rollback ------------------------------------------------------------------------


def test_failed_rollout_reports_why_and_that_helm_rolled_back(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-dev")
    fake_kube.set_pod("milvus-dev", "milvus-querynode-1", {**MILVUS_LABELS, "component": "querynode"}, ready=False,
                      container_state="ImagePullBackOff", image="milvusdb/milvus:v2.5.16")
    fake_kube.add_event("milvus-dev", {"kind": "Pod", "name": "milvus-querynode-1"}, "Failed",
                        'Failed to pull image "milvusdb/milvus:v2.5.16": manifest unknown')
    fake_helm.fail_next("upgrade", hang_seconds=1, stderr="Error: timed out waiting for the condition")
    progress: list[str] = []
    outcome = bot.dispatcher.run_command("/milvus deploy dev", bot.runtime.identity(REQUESTER),
                                         progress=progress.append)
    assert outcome.exit_code == 2
    text = outcome.reply.text
    assert "milvus-querynode-1: ImagePullBackOff" in text
    assert "rolled back to revision 2 by itself (--atomic)" in text
    assert any("manifest unknown" in p for p in progress)
    revisions = fake_helm.release("milvus", "milvus-dev")["revisions"]  # type: ignore[index]
    assert [r["status"] for r in revisions[-2:]] == ["failed", "deployed"]
    assert revisions[-1]["description"] == "Rollback to 2"


def test_failed_validation_rolls_back_to_the_previous_revision(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-dev")
    # Helm says deployed, but a query node is OOM-killed: validation must catch it and roll back.
    fake_kube.set_pod("milvus-dev", "milvus-querynode-0", {**MILVUS_LABELS, "component": "querynode"}, ready=False,
                      container_state={"terminated": {"reason": "OOMKilled", "exitCode": 137}})
    outcome = bot.run("/milvus deploy dev")
    assert outcome.exit_code == 2
    assert "failed validation" in outcome.reply.text and "OOMKilled" in outcome.reply.text
    assert "Rolled back to revision 2" in outcome.reply.text
    [rollback] = fake_helm.calls("rollback")
    assert rollback.positional == ["rollback", "milvus", "2"]
    assert fake_helm.release("milvus", "milvus-dev")["revisions"][-1]["description"] == "Rollback to 2"  # type: ignore[index]


# -- risks ----------------------------------------------------------------------------------------


def test_skipping_a_minor_version_is_refused(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-dev", app_version="2.4.17", chart_version="4.2.25")
    outcome = bot.run("/milvus deploy dev --version 2.6.15")
    assert outcome.exit_code == 1
    assert "skips 2.5" in outcome.reply.text and "Nothing was changed" in outcome.reply.text
    assert fake_helm.calls("upgrade") == []


def test_2_6_needs_2_5_16_first(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-dev", app_version="2.5.14")
    outcome = bot.run("/milvus deploy dev --version 2.6.15")
    assert outcome.exit_code == 1 and "Deploy 2.5.16 first" in outcome.reply.text
    assert fake_helm.calls("upgrade") == []


def _seed_bot_deployed(fake_helm: FakeHelm, fake_kube: FakeKube, *, tag: str | None, pods: str) -> None:
    """A release whose chart (4.2.58) defaults to 2.5.16 while what runs is another version."""
    values: dict[str, Any] = {"cluster": {"enabled": True}, "queryNode": {"replicas": 2}}
    if tag:
        values["image"] = {"all": {"tag": tag}}
    fake_helm.seed_release("milvus", "milvus-dev", chart="milvus", version="4.2.58", app_version="2.5.16",
                           values=values, revisions=1)
    fake_kube.create_namespace("milvus-dev")
    for component in COMPONENTS:
        fake_kube.set_pod("milvus-dev", f"milvus-{component}-0", {**MILVUS_LABELS, "component": component},
                          image=f"milvusdb/milvus:{pods}")


def test_the_running_version_comes_from_what_is_deployed_not_the_charts_app_version(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    # The bot deployed 2.5.10 with chart 4.2.58, whose appVersion is 2.5.16.
    _seed_bot_deployed(fake_helm, fake_kube, tag="v2.5.10", pods="v2.5.10")
    refused = bot.run("/milvus deploy dev --version 2.6.15")
    assert refused.exit_code == 1
    assert "2.6 upgrades need 2.5.16 or later; this runs 2.5.10" in refused.reply.text
    assert fake_helm.calls("upgrade") == []
    patch = bot.run("/milvus deploy dev --version 2.5.16 --dry-run")
    assert patch.exit_code == 0, patch.reply.text
    assert "Patch upgrade 2.5.10 → 2.5.16." in patch.reply.data["risks"]
    assert patch.reply.data["milvus_version_before"] == "2.5.10"
    assert "2.5.10 → 2.5.16" in json.dumps(patch.reply.blocks, ensure_ascii=False)


def test_without_a_tag_in_the_values_the_running_pods_tell_the_version(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    _seed_bot_deployed(fake_helm, fake_kube, tag=None, pods="v2.5.14")
    refused = bot.run("/milvus deploy dev --version 2.6.15 --dry-run")
    assert refused.exit_code == 1 and "this runs 2.5.14" in refused.reply.text


# -- argv injection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/milvus deploy dev --version '2.5.16 --devel'", "not a Milvus version"),
        ("/milvus deploy dev --version 2.5.16;id", "not a Milvus version"),
        ("/milvus deploy dev --set '--post-renderer=/tmp/evil'", "not a Helm values key"),
        ("/milvus deploy 'dev --kube-context=other'", "no environment"),
        ("/milvus deploy dev;id", "no environment"),
        ("/milvus deploy dev --plan '../../etc'", "not a plan id"),
    ],
)
def test_injection_attempts_never_reach_helm(
    bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube, command: str, expected: str
) -> None:
    seed(fake_helm, fake_kube, "milvus-dev")
    outcome = bot.run(command)
    assert outcome.exit_code == 1
    assert expected in outcome.reply.text
    assert [c for c in fake_helm.calls() if c.command not in ("status", "get")] == []


def test_secret_overrides_are_applied_but_never_shown(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-dev")
    outcome = bot.run("/milvus deploy dev --dry-run --set externalS3.secretKey=hunter2-s3cr3t --set proxy.replicas=2")
    assert outcome.exit_code == 0, outcome.reply.text
    shown = json.dumps(outcome.reply.blocks) + outcome.reply.text + json.dumps(outcome.reply.data)
    assert "hunter2-s3cr3t" not in shown
    assert "externalS3.secretKey: ***" in shown and "proxy.replicas=2" in shown
    assert "hunter2-s3cr3t" not in json.dumps([e.arguments for e in bot.runtime.audit.recent()])
    [call] = fake_helm.calls("upgrade")
    assert call.values["externalS3"] == {"secretKey": "hunter2-s3cr3t"}


def test_set_value_with_flags_stays_a_value(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-dev")
    outcome = bot.run("/milvus deploy dev --set 'log.level=info --post-renderer=/tmp/evil'")
    assert outcome.exit_code == 0, outcome.reply.text
    [call] = fake_helm.calls("upgrade")
    assert not any("post-renderer" in a for a in call.argv)
    assert call.values["log"] == {"level": "info --post-renderer=/tmp/evil"}


# -- history, rollback, status --------------------------------------------------------------------


def test_history_and_rollback(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-dev", revisions=3)
    history = bot.run("/milvus history dev", user=VIEWER)
    assert history.exit_code == 0
    assert [r["revision"] for r in history.reply.data["revisions"]] == [1, 2, 3]
    denied = bot.run("/milvus rollback dev", user=VIEWER)
    assert denied.exit_code == 1 and "operator" in denied.reply.text
    outcome = bot.run("/milvus rollback dev")
    assert outcome.exit_code == 0, outcome.reply.text
    assert "to revision 2 (now revision 4" in outcome.reply.text
    [call] = fake_helm.calls("rollback")
    assert call.positional == ["rollback", "milvus", "2"]
    assert bot.run("/milvus rollback dev 9").exit_code == 1


def test_rollback_in_staging_needs_approval(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-staging", revisions=3)
    asked = bot.run("/milvus rollback staging 1")
    request_id = request_id_of(asked)
    assert fake_helm.calls("rollback") == []
    bot.press(APPROVER_1, request_id)
    bot.press(APPROVER_2, request_id)
    assert finished(bot, request_id).state == "done"
    assert fake_helm.calls("rollback")[0].positional == ["rollback", "milvus", "1"]


def test_a_rollback_request_shows_the_values_it_brings_back(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-staging", revisions=3)
    # Revision 1 exposed the proxy on a load balancer; going back to it brings that back.
    releases = fake_helm.releases()
    first = releases["milvus-staging/milvus"]["revisions"][0]
    first["values"] = {**first["values"], "proxy": {"service": {"type": "LoadBalancer"}}}
    (fake_helm.state_dir / "releases.json").write_text(json.dumps(releases))
    asked = bot.run("/milvus rollback staging 1")
    assert asked.exit_code == 0, asked.reply.text
    [post] = bot.messenger.posts
    texts = _texts(bot.messenger.current[post["ref"]].blocks)
    security = next(t for t in texts if "Security-relevant" in t)
    assert 'proxy.service.type: "LoadBalancer"' in security
    [upload] = bot.messenger.files_posted
    assert upload["thread_ref"] == f"approval:{request_id_of(asked)}"
    assert '! + proxy.service.type: "LoadBalancer"' in upload["files"][0].content.decode()


def test_release_summary_for_status(bot: Bot, fake_helm: FakeHelm, fake_kube: FakeKube) -> None:
    seed(fake_helm, fake_kube, "milvus-dev")
    fake_kube.set_pod("milvus-dev", "milvus-querynode-1", {**MILVUS_LABELS, "component": "querynode"}, ready=False,
                      container_state="CrashLoopBackOff")
    env = bot.runtime.config.environments["dev"]
    blocks = release_summary(Context(bot.runtime, Identity(VIEWER), env), env)
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "revision 2" in shown and "milvus-4.2.50" in shown and "milvusdb/milvus:v2.5.14" in shown
    assert "4/5 pods ready" in shown and "CrashLoopBackOff" in shown


# -- end to end: `milvus-chatops serve`, signed Slack requests, the fake Slack API ----------------


def _buttons(message: Any) -> dict[str, dict[str, Any]]:
    found = {}
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                found[element["action_id"].split(":")[0]] = element
    return found


def test_end_to_end_approval_in_slack_survives_a_restart(
    tmp_path: Path, fake_slack: Any, bot_server: Any, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    config = json.dumps(config_yaml(tmp_path, fake_kube.kubeconfig_path()))  # JSON is YAML
    server = bot_server(config, env=fake_helm.env_updates(), data_dir=tmp_path / "bot")

    server.slack.slash_command("deploy staging --set proxy.replicas=2", user_id=REQUESTER, channel_id="COPS",
                               response_url=fake_slack.response_url("ask"))
    request = fake_slack.wait_for_message("CAPPROVALS", timeout=30)
    assert "Deploy Milvus 2.5.16 to staging" in request.all_text()
    assert "+ proxy.replicas: 2" in request.all_text()
    approve = _buttons(request)["approval_approve"]

    server.slack.block_action(approve["action_id"], approve["value"], user_id=APPROVER_1, channel_id="CAPPROVALS",
                              message_ts=request.ts, response_url=fake_slack.response_url("a1"))
    fake_slack.wait_for_response("a1", lambda r: "1 of 2" in r.all_text(), timeout=30)

    server.restart()  # the pending request lives in the state store, not in the process

    # The requester's own click is refused; the second approver's click deploys.
    server.slack.block_action(approve["action_id"], approve["value"], user_id=REQUESTER, channel_id="CAPPROVALS",
                              message_ts=request.ts, response_url=fake_slack.response_url("self"))
    fake_slack.wait_for_response("self", lambda r: "cannot approve it" in r.all_text(), timeout=30)
    server.slack.block_action(approve["action_id"], approve["value"], user_id=APPROVER_2, channel_id="CAPPROVALS",
                              message_ts=request.ts, response_url=fake_slack.response_url("a2"))
    fake_slack.wait_for_response("a2", lambda r: "running request" in r.all_text(), timeout=30)

    def deployed() -> Any:
        replies = fake_slack.replies("CAPPROVALS", request.ts)
        return replies and "Deployed Milvus 2.5.16 to staging" in replies[-1].all_text() and replies

    replies = wait_for(deployed, timeout=90, message=lambda: str([m.all_text()[:100] for m in
                                                                   fake_slack.replies("CAPPROVALS", request.ts)]))
    assert any("pods ready" in r.all_text() for r in replies)
    final = wait_for(lambda: "Approved and done" in (m := fake_slack.message("CAPPROVALS", request.ts)).all_text()
                     and m, timeout=30, message="the request message never said it was done")
    assert "approval_approve" not in json.dumps(final.blocks)  # no buttons left to press
    [call] = fake_helm.calls("upgrade")
    assert call.values["proxy"] == {"replicas": 2}


def test_end_to_end_reject_asks_for_a_reason_in_a_modal(
    tmp_path: Path, fake_slack: Any, bot_server: Any, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-staging")
    config = json.dumps(config_yaml(tmp_path, fake_kube.kubeconfig_path()))
    server = bot_server(config, env=fake_helm.env_updates(), data_dir=tmp_path / "bot")
    server.slack.slash_command("deploy staging", user_id=REQUESTER, channel_id="COPS",
                               response_url=fake_slack.response_url("ask"))
    request = fake_slack.wait_for_message("CAPPROVALS", timeout=30)
    reject = _buttons(request)["approval_reject"]
    server.slack.block_action(reject["action_id"], reject["value"], user_id=APPROVER_1, channel_id="CAPPROVALS",
                              message_ts=request.ts, response_url=fake_slack.response_url("r"))
    opened = fake_slack.wait_for_call("views.open", timeout=30)
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "approval_reject_reason"
    server.slack.view_submission("approval_reject_reason", {"reason": {"reason": "not during the sale"}},
                                 user_id=APPROVER_1, private_metadata=view["private_metadata"])
    updated = wait_for(lambda: "Rejected by" in (m := fake_slack.message("CAPPROVALS", request.ts)).all_text() and m,
                       timeout=30, message="the request message was not updated")
    assert "not during the sale" in updated.all_text()
    assert fake_helm.calls("upgrade") == []


# -- validation through a real Prometheus ---------------------------------------------------------


@pytest.fixture
def metrics_target() -> Iterator[str]:
    """A live /metrics endpoint on loopback for Prometheus to scrape (stands in for a Milvus pod)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"milvus_up 1\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_prometheus_up_decides_validation_and_a_down_target_rolls_back(
    tmp_path: Path, fake_helm: FakeHelm, fake_kube: FakeKube, metrics_target: str
) -> None:
    from tests.support.servers import free_port, start_prometheus

    labels = {"namespace": "milvus-dev", "app_kubernetes_io_instance": "milvus"}
    dead = f"127.0.0.1:{free_port()}"
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "milvus", "static_configs": [
                {"targets": [metrics_target], "labels": {**labels, "pod": "milvus-proxy-0"}},
                {"targets": [dead], "labels": {**labels, "pod": "milvus-querynode-0"}},
            ]},
        ],
    }
    import yaml

    prometheus = start_prometheus(tmp_path / "prom", config_yaml=yaml.safe_dump(config))
    try:
        from integrations.prometheus import connect as prometheus_connect

        prom = prometheus_connect(prometheus.uri)
        wait_for(lambda: len(prom.query('up{namespace="milvus-dev"}')) == 2, timeout=30,
                 message="Prometheus did not scrape both targets")
        seed(fake_helm, fake_kube, "milvus-dev")
        cfg = config_yaml(tmp_path, fake_kube.kubeconfig_path())
        cfg["environments"]["dev"]["prometheus_url"] = prometheus.uri
        bot = Bot(tmp_path / "state.db", cfg)
        try:
            outcome = bot.run("/milvus deploy dev")
        finally:
            bot.close()
    finally:
        prometheus.stop()
    assert outcome.exit_code == 2
    assert "Prometheus sees 1 of 2 target(s) down: milvus-querynode-0" in outcome.reply.text
    assert "Rolled back to revision 2" in outcome.reply.text
    assert fake_helm.calls("rollback")[0].positional == ["rollback", "milvus", "2"]
