"""/milvus status with a Helm release: revision, chart, image and pods, even when Milvus is down.

Helm and Kubernetes are FAKES at their boundaries (a fake ``helm`` on PATH, a fake API server).
"""

from __future__ import annotations

from pathlib import Path

from tests.commands.deploy.test_deploy import MILVUS_LABELS, Bot, config_yaml, seed


def test_status_adds_the_release_and_pod_readiness(tmp_path: Path, fake_helm, fake_kube):
    seed(fake_helm, fake_kube, "milvus-dev")
    fake_kube.set_pod(
        "milvus-dev",
        "milvus-querynode-1",
        {**MILVUS_LABELS, "component": "querynode"},
        ready=False,
        container_state="ImagePullBackOff",
    )
    bot = Bot(tmp_path / "state.db", config_yaml(tmp_path, fake_kube.kubeconfig_path()))
    try:
        outcome = bot.run("status dev")
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    shown = str(outcome.reply.blocks)
    assert "revision 2" in shown and "milvus-4.2.50" in shown and "v2.5.14" in shown
    assert "4/5" in shown or "4 of 5" in shown
    assert "ImagePullBackOff" in shown
    assert outcome.reply.data["milvus_version"].startswith("milvus_lite")


def test_status_still_shows_the_release_when_milvus_does_not_answer(tmp_path: Path, fake_helm, fake_kube):
    seed(fake_helm, fake_kube, "milvus-dev")
    config = config_yaml(tmp_path, fake_kube.kubeconfig_path())
    config["environments"]["dev"]["milvus"] = {"uri": "http://127.0.0.1:9", "timeout_s": 2}
    bot = Bot(tmp_path / "state.db", config)
    try:
        outcome = bot.run("status dev")
    finally:
        bot.close()
    text = str(outcome.reply.blocks)
    assert "Milvus is not answering" in text
    assert "revision 2" in text
    assert outcome.reply.data["milvus_version"] is None
