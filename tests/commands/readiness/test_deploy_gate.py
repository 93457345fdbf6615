"""The checklist in a deploy: a production deploy's approval request shows its summary, and
``require_checklist`` refuses a deploy with a failing item unless an admin overrides (audited).

helm and Kubernetes are FAKES at their boundaries; Milvus Lite answers the environment item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.commands.readiness.helpers import Bot
from tests.support.fake_helm import FakeHelm
from tests.support.fake_kube import FakeKube

OPERATOR, ADMIN, APPROVER = "UOPERATOR", "UADMIN", "UAPPROVER"
MILVUS_LABELS = {"app.kubernetes.io/instance": "milvus", "app.kubernetes.io/name": "milvus"}


@pytest.fixture
def helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHelm:
    helm = FakeHelm(tmp_path / "helm-state")
    helm.set_chart("milvus/milvus", {"4.2.50": "2.5.14", "4.2.58": "2.5.16"})
    for key, value in helm.env_updates().items():
        monkeypatch.setenv(key, value)
    helm.seed_release("milvus", "milvus-prod", chart="milvus", version="4.2.50", app_version="2.5.14",
                      values={"cluster": {"enabled": True}}, revisions=1)
    return helm


def config(tmp_path: Path, kube: FakeKube, **env: Any) -> dict[str, Any]:
    return {
        "environments": {"prod": {
            "milvus": {"uri": str(tmp_path / "milvus.db")},
            "kubernetes": {"kubeconfig": str(kube.kubeconfig_path()), "namespace": "milvus-prod"},
            "helm": {"release": "milvus", "chart": "milvus/milvus", "milvus_version": "2.5.16", "timeout": "5m",
                     "values": {"cluster": {"enabled": True}}},
            "channels": {"approvals": "CAPPROVALS"},
            **env,
        }},
        "access": [{"role": "operator", "users": [OPERATOR, APPROVER]}, {"role": "admin", "users": [ADMIN]}],
    }


def seed_pods(kube: FakeKube) -> None:
    for component in ("proxy", "querynode", "datanode", "mixcoord"):
        kube.set_pod("milvus-prod", f"milvus-{component}-0", {**MILVUS_LABELS, "component": component},
                     image="milvusdb/milvus:v2.5.16")


def test_production_approval_request_carries_the_checklist_summary(tmp_path: Path, helm: FakeHelm,
                                                                    fake_kube: FakeKube) -> None:
    seed_pods(fake_kube)
    bot = Bot(tmp_path / "data", config(tmp_path, fake_kube, production=True,
                                        approval={"required": True, "approvers": [APPROVER]}))
    try:
        outcome = bot.run("/milvus deploy prod", user=OPERATOR)
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    [request] = [p for p in bot.messenger.posts if p["channel"] == "CAPPROVALS"]
    shown = str(request["message"].blocks)
    assert "Readiness checklist:" in shown and "/12 pass" in shown
    assert "Backup and restore" in shown  # a failing item is named in the request


def test_require_checklist_refuses_a_failing_deploy_unless_an_admin_overrides(tmp_path: Path, helm: FakeHelm,
                                                                             fake_kube: FakeKube) -> None:
    seed_pods(fake_kube)
    bot = Bot(tmp_path / "data", config(tmp_path, fake_kube, require_checklist=True))
    try:
        refused = bot.run("/milvus deploy prod", user=OPERATOR)
        not_admin = bot.run("/milvus deploy prod --override-checklist", user=OPERATOR)
        overridden = bot.run("/milvus deploy prod --override-checklist", user=ADMIN)
        audit = bot.runtime.audit.recent(environment="prod", limit=50)
    finally:
        bot.close()
    assert refused.exit_code == 1
    assert "requires a passing readiness checklist; failing:" in refused.reply.text
    assert "backup" in refused.reply.text and "Nothing was changed" in refused.reply.text
    assert not_admin.exit_code == 1 and "admin" in not_admin.reply.text
    assert overridden.exit_code == 0, overridden.reply.text
    assert len(helm.calls("upgrade")) == 1  # only the overridden deploy reached helm
    override = [e for e in audit if e.action == "checklist override"]
    assert len(override) == 1 and override[0].user_id == ADMIN and "backup" in override[0].arguments["failing"]


def test_capacity_and_kubernetes_items_judge_the_deployed_plan(tmp_path: Path, helm: FakeHelm,
                                                               fake_kube: FakeKube) -> None:
    from tests.commands.readiness.helpers import make_collection, vectors

    seed_pods(fake_kube)
    fake_kube.put({"kind": "Node", "metadata": {"name": "small-node"}, "spec": {},
                   "status": {"allocatable": {"cpu": "2", "memory": "4Gi"},
                              "conditions": [{"type": "Ready", "status": "True"}]}})
    bot = Bot(tmp_path / "data", config(tmp_path, fake_kube))
    try:
        planned = bot.run("/milvus plan --vectors 1000 --dim 16 --milvus-version 2.5", user=OPERATOR)
        plan_id = planned.reply.data["plan_id"]
        deployed = bot.run(f"/milvus deploy prod --plan {plan_id}", user=OPERATOR)
        assert deployed.exit_code == 0, deployed.reply.text
        make_collection(bot.client("prod"), "items", vectors(900))
        got = {i["id"]: i for i in bot.run("/milvus checklist prod", user=OPERATOR).reply.data["items"]}
    finally:
        bot.close()
    assert got["capacity"]["status"] == "warn", got["capacity"]  # 900 rows of a 1,000-vector plan
    assert f"plan {plan_id}: 1,000 vectors" in got["capacity"]["evidence"]
    assert "today 900 rows (90% of the plan)" in got["capacity"]["evidence"]
    assert got["kubernetes"]["status"] == "fail", got["kubernetes"]
    assert "1/1 nodes ready (2.0 CPU, 4.0 GiB allocatable)" in got["kubernetes"]["evidence"]
    assert "the nodes cannot hold it" in got["kubernetes"]["evidence"]
