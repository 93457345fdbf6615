"""/milvus security, /milvus user | role and the certificate watch against real parts: Milvus 2.3.5
without authorization (``milvus_server``), one with authorization and TLS from a test CA
(``secured_milvus_server``), Milvus Lite, and the fake Kubernetes API, helm and Slack at their
boundaries. Users are checked by connecting as them and trying what their role allows and what not.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from bot.dispatch import Dispatcher, Outcome
from bot.outbox import Outbox
from bot.settings import Settings
from bot.state import Store
from commands.approvals.workflow import Approvals
from commands.security import watch
from integrations.kubernetes import KubeCluster
from tests.commands.approvals.test_approvals import RecordingMessenger
from tests.support.fake_helm import FakeHelm
from tests.support.fake_kube import FakeKube
from tests.support.fake_slack import FakeSlack
from tests.support.fixtures import SecuredMilvus
from tests.support.runtime import build_test_runtime
from tests.support.wait import wait_for

REPO = Path(__file__).resolve().parents[3]
ADMIN, APPROVER, OUTSIDER = "UADMIN", "UAPPROVER", "UOUTSIDER"
TOKEN_ENV = "SECURITY_TEST_MILVUS_TOKEN"
# Milvus 2.3 answers a missing privilege with gRPC PERMISSION_DENIED, which pymilvus passes on as is.
DENIED = (MilvusException, grpc.RpcError)
IDS = ["authentication", "default_root_password", "tls", "certificate_expiry", "network_policy", "rbac",
       "bot_privileges", "values_secrets"]


class Bot:
    def __init__(self, tmp: Path, environments: dict[str, Any], messenger: Any = None) -> None:
        self.messenger = messenger or RecordingMessenger()
        store = Store(f"sqlite:///{tmp / 'state.db'}")
        store.migrate()
        self.store = store
        config = {
            "environments": environments,
            "access": [{"role": "admin", "users": [ADMIN, APPROVER]}, {"role": "viewer", "users": [OUTSIDER]}],
        }
        self.runtime = build_test_runtime(settings=Settings(data_dir=tmp), config=config, store=store,
                                          messenger=self.messenger)
        self.dispatcher = Dispatcher(self.runtime)

    def run(self, text: str, user: str = ADMIN) -> Outcome:
        return self.dispatcher.run_command(text, self.runtime.identity(user), channel="CASK")

    def checks(self, env: str) -> dict[str, dict[str, Any]]:
        outcome = self.run(f"/milvus security {env}")
        assert outcome.exit_code == 0, outcome.reply.text
        data = outcome.reply.data
        assert data["environment"] == env and [c["id"] for c in data["checks"]] == IDS
        return {c["id"]: c for c in data["checks"]}

    def close(self) -> None:
        self.runtime.services.close_all()
        self.store.engine.dispose()


@pytest.fixture
def make_bot(tmp_path: Path) -> Iterator[Any]:
    bots: list[Bot] = []

    def make(environments: dict[str, Any], messenger: Any = None, name: str = "bot") -> Bot:
        (tmp_path / name).mkdir(exist_ok=True)
        bot = Bot(tmp_path / name, environments, messenger)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()


@pytest.fixture
def root_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "root:Milvus")


def secured_env(secured: SecuredMilvus, **extra: Any) -> dict[str, Any]:
    return {"milvus": {"uri": secured.uri, "token_env": TOKEN_ENV, "timeout_s": 15},
            "security": {"tls": {"ca_file": str(secured.certificate.ca)}}, **extra}


def connect_as(secured: SecuredMilvus, user: str, password: str) -> MilvusClient:
    return MilvusClient(uri=secured.uri, user=user, password=password, timeout=15,
                        server_pem_path=str(secured.certificate.ca), dedicated=True)


# -- the audit ------------------------------------------------------------------------------------


def test_milvus_lite_without_kubernetes_or_helm_is_not_checked_through_run_json(tmp_path: Path) -> None:
    env = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    env.pop("MILVUS_CHATOPS_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "bot", "run", "/milvus security", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)["data"]
    assert data["environment"] == "local"
    assert [(c["id"], c["status"]) for c in data["checks"]] == [(i, "not_checked") for i in IDS]
    by_id = {c["id"]: c for c in data["checks"]}
    assert "Milvus Lite has no authentication" in by_id["authentication"]["detail"]
    assert "No Kubernetes configured" in by_id["network_policy"]["detail"]
    assert set(data["checks"][0]) == {"id", "title", "status", "detail", "fix"}


@pytest.mark.slow
def test_milvus_without_authorization_fails_authentication(make_bot: Any, milvus_server: Any) -> None:
    bot = make_bot({"open": {"milvus": {"uri": milvus_server.uri}}})
    checks = bot.checks("open")
    assert checks["authentication"]["status"] == "fail"
    assert "without user or password was let in" in checks["authentication"]["detail"]
    assert "authorizationEnabled" in checks["authentication"]["fix"]
    assert checks["default_root_password"]["status"] == "not_checked"
    assert checks["tls"]["status"] == "fail" and "does not speak TLS" in checks["tls"]["detail"]
    assert checks["certificate_expiry"]["status"] == "not_checked"
    assert checks["rbac"]["status"] == "not_checked"


@pytest.mark.slow
def test_secured_milvus_passes_authentication_and_fails_the_default_root_password_until_it_changes(
    make_bot: Any, secured_milvus_server: SecuredMilvus, root_token: None, fake_kube: FakeKube,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secured = secured_milvus_server
    bot = make_bot({"prod": secured_env(secured, kubernetes={"kubeconfig": str(fake_kube.kubeconfig_path()),
                                                                "namespace": "milvus-prod"})})
    checks = bot.checks("prod")
    assert checks["authentication"]["status"] == "pass", checks["authentication"]
    assert "refused" in checks["authentication"]["detail"]
    assert checks["default_root_password"]["status"] == "fail"
    assert "`/milvus user password prod root --secret" in checks["default_root_password"]["fix"]
    assert checks["tls"]["status"] == "pass", checks["tls"]
    assert "TLSv1.3" in checks["tls"]["detail"] and "chain verified" in checks["tls"]["detail"]
    # Two days left: within a week is a failure.
    assert checks["certificate_expiry"]["status"] == "fail" and "day(s) left" in checks["certificate_expiry"]["detail"]
    assert checks["bot_privileges"]["status"] == "fail" and "`root`" in checks["bot_privileges"]["detail"]
    assert "Admin: root." in checks["rbac"]["detail"]

    # Change root's password into a Secret; then the default is refused.
    fake_kube.create_namespace("milvus-prod")
    outcome = bot.run("/milvus user password prod root --secret milvus-root-password")
    assert outcome.exit_code == 0, outcome.reply.text
    stored = fake_kube.get("Secret", "milvus-root-password", "milvus-prod")
    assert stored is not None
    new_password = base64.b64decode(stored["data"]["password"]).decode()
    try:
        assert new_password not in json.dumps(outcome.reply.data) + outcome.reply.text
        assert outcome.reply.data["delivered"] == "secret:milvus-root-password"
        assert f"put the new password in `{TOKEN_ENV}`" in outcome.reply.text
        monkeypatch.setenv(TOKEN_ENV, f"root:{new_password}")
        bot.runtime.services.close_all()
        after = bot.checks("prod")
        assert after["default_root_password"]["status"] == "pass", after["default_root_password"]
    finally:
        MilvusClient(uri=secured.uri, user="root", password=new_password, server_pem_path=str(secured.certificate.ca),
                     dedicated=True).update_password("root", new_password, "Milvus")


@pytest.mark.slow
def test_tls_without_the_ca_warns_that_the_chain_does_not_verify(
    make_bot: Any, secured_milvus_server: SecuredMilvus, root_token: None
) -> None:
    env = secured_env(secured_milvus_server)
    env["security"] = {"tls": {}}
    bot = make_bot({"prod": env})
    probe = bot.runtime.services.tls_probe(bot.runtime.environment("prod"))
    assert probe.tls and not probe.verified and probe.subject == "milvus-test"
    from bot.context import Context
    from commands.security.audit import Findings, check_tls

    ctx = Context(bot.runtime, bot.runtime.identity(ADMIN), bot.runtime.environment("prod"))
    check = check_tls(ctx, bot.runtime.environment("prod"), Findings())
    assert check.status == "warn" and "does not verify" in check.detail and "ca_file" in check.fix


def test_network_policy_is_read_from_kubernetes(make_bot: Any, tmp_path: Path, fake_kube: FakeKube) -> None:
    kube_cfg = {"kubeconfig": str(fake_kube.kubeconfig_path()), "namespace": "milvus-prod",
                "client_namespaces": ["app"]}
    bot = make_bot({"prod": {"milvus": {"uri": str(tmp_path / "m.db")}, "kubernetes": kube_cfg}})
    fake_kube.create_namespace("milvus-prod")
    missing = bot.checks("prod")["network_policy"]
    assert missing["status"] == "fail" and "No NetworkPolicy" in missing["detail"]

    KubeCluster(fake_kube.api_client()).prepare("milvus-prod", "milvus", ["app"])
    written = bot.checks("prod")["network_policy"]
    assert written["status"] == "pass", written
    assert "only from app" in written["detail"]

    fake_kube.put({"kind": "NetworkPolicy", "metadata": {"name": "open-door", "namespace": "milvus-prod"},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["batch"]}]}}],
                                "ports": [{"port": 19530, "protocol": "TCP"}]}]}})
    extra = bot.checks("prod")["network_policy"]
    assert extra["status"] == "fail" and "batch" in extra["detail"] and "not among the configured" in extra["detail"]


def test_plaintext_secrets_in_the_deployed_values_are_named_never_shown(
    make_bot: Any, tmp_path: Path, fake_helm: FakeHelm
) -> None:
    env = {"milvus": {"uri": str(tmp_path / "m.db")}, "helm": {"release": "milvus"},
           "kubernetes": {"namespace": "milvus-prod", "kubeconfig": str(tmp_path / "nowhere")}}
    bot = make_bot({"prod": env})
    fake_helm.seed_release("milvus", "milvus-prod", values={
        "minio": {"accessKey": "minioadmin", "secretKey": "s3cr3t-minio"},
        "extraConfigFiles": {"user.yaml": "common:\n  security:\n    defaultRootPassword: hunter22\n"},
        "standalone": {"extraEnv": [{"name": "COMMON_SECURITY_DEFAULTROOTPASSWORD",
                                     "valueFrom": {"secretKeyRef": {"name": "root", "key": "password"}}}]},
    })
    outcome = bot.run("/milvus security prod")
    check = {c["id"]: c for c in outcome.reply.data["checks"]}["values_secrets"]
    assert check["status"] == "fail"
    assert "3 secret(s) in plain text: `extraConfigFiles.user.yaml:common.security.defaultRootPassword`, " \
        "`minio.accessKey`, `minio.secretKey`." in check["detail"]
    shown = json.dumps(outcome.reply.blocks) + outcome.reply.text + json.dumps(outcome.reply.data)
    assert "s3cr3t-minio" not in shown and "hunter22" not in shown and "minioadmin" not in shown
    # The Kubernetes API is not reachable here: that check says so instead of guessing.
    assert {c["id"]: c for c in outcome.reply.data["checks"]}["network_policy"]["status"] == "not_checked"

    fake_helm.seed_release("milvus", "milvus-prod", values={"queryNode": {"replicas": 2}})
    clean = {c["id"]: c for c in bot.run("/milvus security prod").reply.data["checks"]}["values_secrets"]
    assert clean["status"] == "pass"


# -- users and roles ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_user_created_from_chat_can_do_what_its_role_grants_and_nothing_else(
    make_bot: Any, secured_milvus_server: SecuredMilvus, root_token: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    secured = secured_milvus_server
    bot = make_bot({"stage": secured_env(secured)})
    root = connect_as(secured, "root", "Milvus")
    for name in ("sec_docs", "sec_other"):
        if root.has_collection(name):
            root.drop_collection(name)
        root.create_collection(name, dimension=4)
        root.insert(name, [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4]}])
    for user in ("svc_reader",):
        if user in root.list_users():
            root.drop_user(user)
    if "reader" in root.list_roles():
        for grant in root.describe_role("reader").get("privileges", []):
            root.revoke_privilege("reader", grant["object_type"], grant["privilege"], grant["object_name"])
        root.drop_role("reader")

    assert bot.run("/milvus role create stage reader").exit_code == 0
    granted = bot.run("/milvus role grant stage reader Query --collection sec_docs")
    assert granted.exit_code == 0, granted.reply.text
    assert granted.reply.data == {"environment": "stage", "role": "reader", "privilege": "Query",
                                  "object": "Collection", "object_name": "sec_docs", "database": "default"}
    assert bot.run("/milvus role grant stage reader Load --collection sec_docs").exit_code == 0
    created = bot.run("/milvus user create stage svc_reader --role reader")
    assert created.exit_code == 0, created.reply.text
    data = created.reply.data
    password = data["password"]
    assert {k: data[k] for k in ("environment", "user", "roles", "delivered")} == {
        "environment": "stage", "user": "svc_reader", "roles": ["reader"], "delivered": "reply"}
    assert password in created.reply.text and created.reply.response_type == "ephemeral"

    svc = connect_as(secured, "svc_reader", password)
    root.load_collection("sec_docs")
    root.load_collection("sec_other")
    assert svc.query("sec_docs", filter="id >= 0", output_fields=["id"]) == [{"id": 1}]
    with pytest.raises(DENIED, match=r"(?i)permission den"):
        svc.query("sec_other", filter="id >= 0", output_fields=["id"])
    with pytest.raises(DENIED, match=r"(?i)permission den"):
        svc.insert("sec_docs", [{"id": 2, "vector": [0.1, 0.2, 0.3, 0.4]}])

    # A bot that connects as this least-privileged user: its own privileges pass.
    env_as_svc = secured_env(secured)
    env_as_svc["milvus"]["token_env"] = "SECURITY_TEST_SVC_TOKEN"
    monkeypatch.setenv("SECURITY_TEST_SVC_TOKEN", f"svc_reader:{password}")
    as_svc = make_bot({"stage": env_as_svc}, name="as-svc").checks("stage")
    assert as_svc["bot_privileges"]["status"] == "pass", as_svc["bot_privileges"]
    assert "`svc_reader` with role(s) reader" in as_svc["bot_privileges"]["detail"]

    users = {u["name"]: u["roles"] for u in bot.run("/milvus user list stage").reply.data["users"]}
    assert users["svc_reader"] == ["reader"]
    roles = {r["name"]: r for r in bot.run("/milvus role list stage").reply.data["roles"]}
    assert roles["reader"]["users"] == ["svc_reader"]
    assert {"object": "Collection", "object_name": "sec_docs", "privilege": "Query", "database": "default"} in \
        roles["reader"]["privileges"]

    revoked = bot.run("/milvus role revoke stage reader Query --collection sec_docs")
    assert revoked.exit_code == 0, revoked.reply.text
    with pytest.raises(DENIED, match=r"(?i)permission den"):
        svc.query("sec_docs", filter="id >= 0", output_fields=["id"])

    rotated = bot.run("/milvus user password stage svc_reader")
    assert rotated.exit_code == 0 and rotated.reply.data["roles"] == ["reader"]
    assert bot.runtime.services.milvus_login(bot.runtime.environment("stage"), "svc_reader", password) is not None
    dropped = bot.run("/milvus user drop stage svc_reader")
    assert dropped.reply.data == {"environment": "stage", "user": "svc_reader", "dropped": True}
    assert bot.run("/milvus role drop stage reader").exit_code == 1  # still has a privilege: Milvus refuses
    assert bot.run("/milvus role revoke stage reader Load --collection sec_docs").exit_code == 0
    assert bot.run("/milvus role drop stage reader").reply.data == {"environment": "stage", "role": "reader"}
    for entry in bot.runtime.audit.recent(limit=50):
        assert password not in json.dumps(entry.arguments) + (entry.detail or "")


def test_bad_names_are_refused_with_what_to_type(make_bot: Any, tmp_path: Path) -> None:
    bot = make_bot({"prod": {"milvus": {"uri": "http://127.0.0.1:1"}}})
    bad = bot.run("/milvus user create prod 'drop me' --role reader")
    assert bad.exit_code == 1 and "not a Milvus user name" in bad.reply.text
    assert "Usage: `/milvus user create" in bad.reply.text
    missing = bot.run("/milvus user create prod svc")
    assert missing.exit_code == 1 and "`--role` is required" in missing.reply.text
    lite = make_bot({"local": {"milvus": {"uri": str(tmp_path / "m.db")}}}, name="lite")
    assert "Milvus Lite, which has no users" in lite.run("/milvus user list").reply.text
    # With one environment it may be left out: the first word is then the user (or role), not an environment.
    assert "Milvus Lite, which has no users" in lite.run("/milvus user create alice --role reader").reply.text
    assert "Milvus Lite, which has no users" in lite.run("/milvus role grant reader Search").reply.text
    viewer = bot.run("/milvus user create prod svc --role reader", user=OUTSIDER)
    assert viewer.exit_code == 1
    # Where approval is needed and nothing can whisper, the approver would see the password: refused first.
    guarded = make_bot({"prod": {"milvus": {"uri": "http://127.0.0.1:1"}, "production": True,
                                 "approval": {"required": True, "approvers": [APPROVER]}}}, name="guarded")
    refused = guarded.run("/milvus user create prod svc --role reader")
    assert refused.exit_code == 1 and "not to you alone" in refused.reply.text and "--secret" in refused.reply.text
    no_kube = guarded.run("/milvus user password prod svc --secret svc-milvus")
    assert no_kube.exit_code == 1 and "no Kubernetes configured" in no_kube.reply.text


@pytest.mark.slow
def test_in_production_the_password_reaches_the_requester_alone_after_approval(
    make_bot: Any, secured_milvus_server: SecuredMilvus, root_token: None, fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from slack_sdk import WebClient

    secured = secured_milvus_server
    caplog.set_level(logging.DEBUG)
    root = connect_as(secured, "root", "Milvus")
    if "svc_prod" in root.list_users():
        root.drop_user("svc_prod")
    if "prod_reader" not in root.list_roles():
        root.create_role("prod_reader")
    env = secured_env(secured, production=True,
                      approval={"required": True, "approvers": [APPROVER], "approvals_required": 1},
                      channels={"approvals": "CAPPROVALS", "ops": "COPS"})
    bot = make_bot({"prod": env}, messenger=RecordingMessenger())
    outbox = Outbox(bot.store, WebClient(token="xoxb-test", base_url=fake_slack.api_url))
    bot.runtime.messenger = outbox

    asked = bot.run("/milvus user create prod svc_prod --role prod_reader")
    assert asked.exit_code == 0, asked.reply.text
    assert "Approval requested" in asked.reply.text and "password" not in json.dumps(asked.reply.data)
    assert "svc_prod" not in root.list_users()  # nothing happens before the approval
    request_id = asked.reply.data["approval"]["id"]
    approved = bot.dispatcher.run_action(f"approval_approve:{request_id}", {"env": "prod", "id": request_id},
                                         bot.runtime.identity(APPROVER), channel="CAPPROVALS")
    assert approved.exit_code == 0, approved.reply.text
    done = wait_for(lambda: (r := Approvals(bot.runtime).get(request_id)).state in ("done", "failed") and r,
                    timeout=60, message="the approved change did not finish")
    assert done.state == "done", done.result
    wait_for(lambda: outbox.drain_once() >= 0 and outbox.pending() == 0, timeout=30, message="outbox not drained")

    [whisper] = fake_slack.ephemerals()
    assert whisper.user == ADMIN and whisper.channel == "CASK"
    password = whisper.text.split("`")[-2]
    assert len(password) >= 30
    # The new user logs in with it, and only its role's rights.
    assert bot.runtime.services.milvus_login(bot.runtime.environment("prod"), "svc_prod", password) is None
    assert root.describe_user("svc_prod")["roles"] == ("prod_reader",) or \
        list(root.describe_user("svc_prod")["roles"]) == ["prod_reader"]

    # Nowhere else: every Slack call but that one ephemeral, every log line, every audit row, the request.
    for call in fake_slack.calls():
        if call.method == "chat.postEphemeral":
            assert call.params.get("user") == ADMIN
            continue
        assert password not in json.dumps(call.params, default=str), call.method
    assert password not in caplog.text
    for entry in bot.runtime.audit.recent(limit=100):
        assert password not in json.dumps(entry.arguments) + (entry.detail or "")
    change = next(e for e in bot.runtime.audit.recent(limit=100) if e.action == "milvus user create")
    assert change.user_id == APPROVER and change.outcome == "ok"
    assert change.arguments == {"requester": ADMIN, "op": "user_create", "user": "svc_prod", "role": "prod_reader",
                                "delivery": "reply"}
    request = Approvals(bot.runtime).get(request_id)
    assert password not in json.dumps(request.payload) + (request.result or "")
    assert "shown to <@UADMIN> alone" in (request.result or "")
    root.drop_user("svc_prod")


# -- certificate watch ---------------------------------------------------------------------------


@pytest.mark.slow
def test_an_expiring_certificate_warns_once_per_threshold_across_replicas(
    make_bot: Any, secured_milvus_server: SecuredMilvus, root_token: None, tmp_path: Path
) -> None:
    secured = secured_milvus_server
    env = secured_env(secured, channels={"ops": "COPS"})
    env["security"]["expiry_warn_days"] = [30, 14, 7, 3, 1]
    first = make_bot({"prod": env}, name="replica")
    # A second replica on the same state store: it must not repeat a warning the first one gave.
    second = Bot.__new__(Bot)
    second.messenger = RecordingMessenger()
    second.store = first.store
    second.runtime = build_test_runtime(settings=Settings(data_dir=tmp_path), config=first.runtime.config,
                                        store=first.store, messenger=second.messenger)
    [job] = list(watch.certificate_jobs(first.runtime.config))
    assert job.task == watch.TASK and job.kwargs == {"env": "prod"} and job.cron == "0 7 * * *"

    not_after = secured.certificate.not_after
    days_before = [40, 29, 28.5, 20, 13.5, 13, 6.5, 2.5, 2.4, 0.5, 0.2]
    for i, days in enumerate(days_before):
        runtime = (first if i % 2 == 0 else second).runtime
        watch.check_certificate(runtime, env="prod", now=not_after - dt.timedelta(days=days))
    posts = [p for m in (first.messenger, second.messenger) for p in m.posts]
    assert {p["channel"] for p in posts} == {"COPS"}
    warned = [p["message"].text.split("warning at ")[1].split(" ")[0] for p in posts]
    assert sorted(map(int, warned), reverse=True) == [30, 14, 7, 3, 1]
    # The health report's line says the same, in its colours.
    status = watch.certificate_status(first.runtime, first.runtime.environment("prod"))
    assert status is not None and status[0] == "red" and "day(s) left" in status[1]
    later = watch.certificate_status(first.runtime, first.runtime.environment("prod"),
                                     now=not_after - dt.timedelta(days=20))
    assert later is not None and later[0] == "yellow"
    second.runtime.services.close_all()


def test_a_certificate_first_seen_close_to_expiry_warns_once_not_for_every_threshold() -> None:
    assert watch.due_thresholds(5, [30, 14, 7, 3, 1]) == [30, 14, 7]
    assert watch.due_thresholds(40, [30, 14, 7, 3, 1]) == []


@pytest.mark.slow
def test_through_slack_the_password_is_an_ephemeral_reply_and_nowhere_else(
    bot_server: Any, fake_slack: FakeSlack, secured_milvus_server: SecuredMilvus
) -> None:
    secured = secured_milvus_server
    root = connect_as(secured, "root", "Milvus")
    if "svc_slack" in root.list_users():
        root.drop_user("svc_slack")
    config = json.dumps({
        "environments": {"stage": secured_env(secured, channels={"ops": "COPS"})},
        "access": [{"role": "admin", "users": [ADMIN]}],
    })
    # DEBUG: the HTTP clients log request bodies at this level; none may carry the password.
    bot = bot_server(config, env={TOKEN_ENV: "root:Milvus", "MILVUS_CHATOPS_LOG_LEVEL": "DEBUG"})
    bot.slack.slash_command("user create stage svc_slack --role public", user_id=ADMIN,
                            response_url=fake_slack.response_url("create"))
    reply = fake_slack.wait_for_response("create", timeout=60)
    assert reply.body.get("response_type") == "ephemeral", reply.body
    text = reply.all_text()
    assert "Created Milvus user `svc_slack`" in text, text
    password = text.split("`")[-2]
    assert len(password) >= 30
    assert MilvusClient(uri=secured.uri, user="svc_slack", password=password, dedicated=True,
                        server_pem_path=str(secured.certificate.ca)).list_collections() is not None
    others = [r for r in fake_slack.responses() if r.response_id != "create"]
    assert all(password not in json.dumps(r.body) for r in others)
    assert all(password not in json.dumps(c.params, default=str) for c in fake_slack.calls())
    assert "Sending a request" in bot.log()  # request bodies are being logged, just not this one
    assert password not in bot.log()
    root.drop_user("svc_slack")


@pytest.mark.slow
def test_mutual_tls_the_bot_presents_its_client_certificate(make_bot: Any, tmp_path: Path) -> None:
    from tests.support import servers
    from tests.support.certs import make_certificate

    cert = make_certificate(tmp_path / "certs", valid_for=dt.timedelta(days=90))
    server = servers.start_milvus_server(
        tmp_path / "mtls", extra_args=["--tls-cert", str(cert.cert), "--tls-key", str(cert.key),
                                       "--tls-ca", str(cert.ca), "--tls-mode", "2"])
    try:
        tls = {"mode": 2, "ca_file": str(cert.ca), "client_cert_file": str(cert.client_cert),
               "client_key_file": str(cert.client_key)}
        bot = make_bot({"mtls": {"milvus": {"uri": f"https://127.0.0.1:{server.port}", "timeout_s": 15},
                                 "security": {"authorization": False, "tls": tls}}})
        # The bot's own connection presents the client certificate.
        assert bot.runtime.services.milvus(bot.runtime.environment("mtls")).server_version().startswith("v2.3")
        checks = bot.checks("mtls")
        assert checks["tls"]["status"] == "pass", checks["tls"]
        assert checks["certificate_expiry"]["status"] == "pass"
        assert checks["authentication"]["status"] == "fail"  # TLS is not authentication
        # Without the client certificate Milvus will not talk to the bot at all.
        with pytest.raises(Exception, match=r"(?i)connect|unavailable|handshake"):
            MilvusClient(uri=f"https://127.0.0.1:{server.port}", server_pem_path=str(cert.ca), timeout=5,
                         dedicated=True).list_collections()
    finally:
        server.stop()
