"""/milvus drill restore on the embedded default (real Milvus Lite, backups in the data dir) and
/milvus drill pod against the FAKE Kubernetes API, which replaces a deleted pod as a controller would."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import embedded_default
from tests.commands.readiness.helpers import Bot, make_collection, vectors
from tests.support.fake_kube import FakeKube

RESTORE_KEYS = {"environment", "backup_id", "collections", "rows", "verified", "rto_s", "rpo_s", "scratch_dropped"}
POD_KEYS = {"environment", "component", "pod", "recovered", "recovery_s", "failed_searches", "total_searches"}
MILVUS_LABELS = {"app.kubernetes.io/instance": "milvus", "app.kubernetes.io/name": "milvus"}


@pytest.fixture
def bot(tmp_path: Path):
    bot = Bot(tmp_path / "data")
    yield bot
    bot.close()


def test_restore_drill_verifies_the_newest_backup_and_leaves_no_scratch_collection(bot: Bot) -> None:
    client = bot.client()
    make_collection(client, "items", vectors(2000))
    make_collection(client, "ivf_items", vectors(3000, seed=2), index="IVF_FLAT", params={"nlist": 16})
    older = bot.run("/milvus backup create local items").reply.data["id"]
    newest = bot.run("/milvus backup create local").reply.data["id"]
    assert older != newest

    outcome = bot.run("/milvus drill restore local")
    assert outcome.exit_code == 0, outcome.reply.text
    data = outcome.reply.data
    assert set(data) >= RESTORE_KEYS
    assert data["backup_id"] == newest and sorted(data["collections"]) == ["items", "ivf_items"]
    assert data["rows"] == 5000 and data["verified"] is True and data["scratch_dropped"] is True
    assert data["rto_s"] > 0 and data["rpo_s"] >= 0
    assert all("100% of ids the same" in c["search"] for c in data["checks"])
    assert sorted(client.list_collections()) == ["items", "ivf_items"]

    chosen = bot.run(f"/milvus drill restore local --backup {older}")
    assert chosen.reply.data["backup_id"] == older and chosen.reply.data["collections"] == ["items"]


def test_a_damaged_backup_fails_the_drill_and_the_scratch_collections_still_go(bot: Bot, tmp_path: Path) -> None:
    client = bot.client()
    make_collection(client, "items", vectors(2000))
    backup_id = bot.run("/milvus backup create local").reply.data["id"]
    [part] = (tmp_path / "data" / "backups" / "local" / backup_id).rglob("*.parquet")
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, different bytes: only the checksum can tell
    part.write_bytes(bytes(raw))

    outcome = bot.run("/milvus drill restore local")
    data = outcome.reply.data
    assert outcome.exit_code == 0, outcome.reply.text  # the drill ran; its finding is the failure
    assert data["verified"] is False and "SHA-256" in data["error"]
    assert data["scratch_dropped"] is True and client.list_collections() == ["items"]
    assert "did NOT verify" in outcome.reply.text


def test_restore_drill_needs_a_backup(bot: Bot) -> None:
    outcome = bot.run("/milvus drill restore local")
    assert outcome.exit_code == 1 and "backup create local" in outcome.reply.text


def cluster_config(data_dir: Path, kube: FakeKube, **extra: object) -> dict[str, object]:
    config = embedded_default(data_dir).model_dump()
    config["environments"]["local"].update(
        kubernetes={"kubeconfig": str(kube.kubeconfig_path()), "namespace": "milvus"}, **extra)
    return config


def test_pod_drill_deletes_one_querynode_and_times_its_replacement(tmp_path: Path, fake_kube: FakeKube) -> None:
    for i in range(2):
        fake_kube.set_pod("milvus", f"milvus-querynode-7d9f-{i}abcd", {**MILVUS_LABELS, "component": "querynode"})
    fake_kube.set_pod("milvus", "milvus-proxy-0", {**MILVUS_LABELS, "component": "proxy"})
    fake_kube.replace_deleted_pods("milvus", ready_after_s=2.0)
    bot = Bot(tmp_path / "data", cluster_config(tmp_path / "data", fake_kube, targets={"pod_recovery_s": 60}))
    try:
        make_collection(bot.client(), "items", vectors(500))
        outcome = bot.run("/milvus drill pod local --component querynode --collection items")
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    data = outcome.reply.data
    assert set(data) >= POD_KEYS
    assert data["pod"] == "milvus-querynode-7d9f-0abcd"
    [deleted] = fake_kube.requests("DELETE", "/pods/")
    assert deleted.path.endswith("/namespaces/milvus/pods/milvus-querynode-7d9f-0abcd")
    assert data["recovered"] is True and 2.0 <= data["recovery_s"] < 30
    assert data["replacement"] not in (None, data["pod"])
    assert data["total_searches"] >= 2 and data["failed_searches"] == 0
    assert data["collection_loaded"] is True and data["passed"] is True


def test_pod_drill_that_never_recovers_says_so(tmp_path: Path, fake_kube: FakeKube) -> None:
    fake_kube.set_pod("milvus", "milvus-proxy-5c4-abcde", {**MILVUS_LABELS, "component": "proxy"})
    bot = Bot(tmp_path / "data", cluster_config(tmp_path / "data", fake_kube))
    try:
        make_collection(bot.client(), "items", vectors(100))
        outcome = bot.run("/milvus drill pod local --component proxy --timeout 10s")
        refused = bot.run("/milvus drill pod local --component etcd")
    finally:
        bot.close()
    assert outcome.reply.data["recovered"] is False and outcome.reply.data["recovery_s"] is None
    assert "no replacement became Ready" in outcome.reply.text
    assert refused.exit_code == 1 and "querynode" in refused.reply.text


def test_scheduled_drill_and_load_test_run_from_config_and_feed_the_checklist(tmp_path: Path) -> None:
    from bot.scheduler import jobs_from_config

    config = embedded_default(tmp_path / "data").model_dump()
    config["environments"]["local"]["schedules"] = {"drill_restore": "0 3 * * 0", "loadtest": "0 4 * * 0",
                                                    "loadtest_collection": "items", "loadtest_duration": "2s"}
    config["channels"] = {"ops": "COPS"}
    bot = Bot(tmp_path / "data", config)
    try:
        jobs = {j.job_id: j for j in jobs_from_config(bot.runtime.registry, bot.runtime.config)}
        assert jobs["drill_restore:local"].cron == "0 3 * * 0" and jobs["loadtest:local"].task == "loadtest"
        make_collection(bot.client(), "items", vectors(300))
        bot.run("/milvus backup create local")
        tasks = bot.runtime.registry.tasks
        restore_summary = tasks["drill_restore"](bot.runtime, env="local")
        load_summary = tasks["loadtest"](bot.runtime, env="local")
        checklist = {i["id"]: i for i in bot.run("/milvus checklist local").reply.data["items"]}
    finally:
        bot.close()
    assert "verified" in restore_summary and "Load test of items in local" in load_summary
    assert [p["message"].text for p in bot.messenger.posts if p["channel"] == "COPS"] == [restore_summary,
                                                                                         load_summary]
    assert "restore drill" in checklist["backup"]["evidence"] and "verified" in checklist["backup"]["evidence"]
    assert checklist["performance"]["status"] == "warn"  # ran, but the environment sets no targets
