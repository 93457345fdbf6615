"""deploy/: the Kubernetes manifests render and point only at what the bot really reads and serves."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import _parser
from bot.config import Config
from bot.settings import Settings
from commands import build_registry
from tests.support.fixtures import missing_dependency

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ["base", "http", "replicas"]
SERVED = {"/healthz", "/readyz", "/metrics", "/slack/events"}  # bot/server.py; the rest are registry routes


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        missing_dependency("kubectl (Debian package kubectl) is not installed")
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY / overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def test_every_file_parses():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert files
    for path in files:
        assert all(isinstance(doc, dict) for doc in yaml.safe_load_all(path.read_text()) if doc), path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_uses_only_the_bots_flags_env_vars_ports_and_routes(overlay):
    docs = render(overlay)
    deployment = one(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]

    args = _parser().parse_args(container["args"])  # unknown flags fail here
    assert args.cmd == "serve" and args.host == "0.0.0.0"
    (port,) = container["ports"]
    assert port["containerPort"] == args.port

    known_env = {str(f.validation_alias.choices[0]) for f in Settings.model_fields.values()}  # type: ignore[union-attr]
    assert {e["name"] for e in container.get("env", [])} <= known_env

    routes = SERVED | {r.path for r in build_registry().routes}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
        assert container[probe]["httpGet"]["port"] == port["name"]

    # The config the pod mounts is valid, and the Milvus token it names comes from the Secret.
    configmap = one(docs, "ConfigMap")
    config = Config.model_validate(yaml.safe_load(configmap["data"]["config.yaml"]))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert args.config == f"{mounts['config']}/config.yaml"
    assert container["envFrom"] == [{"secretRef": {"name": "milvus-chatops"}}]
    assert all(env.milvus.token_env for env in config.environments.values())

    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    # The NetworkPolicy the bot's deploy writes must still let the bot itself reach Milvus.
    own_namespace = deployment["metadata"]["namespace"]
    for env in config.environments.values():
        assert env.kubernetes is None or own_namespace in env.kubernetes.client_namespaces, env.name

    # The bot may deploy into each namespace its config names, and nowhere else.
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    namespaces = {env.kubernetes.namespace for env in config.environments.values() if env.kubernetes}
    assert {b["metadata"]["namespace"] for b in bindings} == namespaces
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "chatops"}]


def test_only_slack_events_is_public_in_http_mode_and_replicas_get_a_disruption_budget():
    ingress = one(render("http"), "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert [p["path"] for p in rule["http"]["paths"]] == ["/slack/events"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "milvus-chatops", "port": {"name": "http"}}
    assert ingress["spec"]["tls"]

    replicas = render("replicas")
    assert one(replicas, "Deployment")["spec"]["replicas"] == 2
    assert one(replicas, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert one(render("base"), "Deployment")["spec"]["replicas"] == 1


def test_the_overlay_in_the_kubernetes_docs_sets_the_image_and_the_config(tmp_path):
    """docs/kubernetes.md tells operators to write exactly this overlay; it must render."""
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    kustomization = docs.split("<!-- overlay -->\n```yaml\n", 1)[1].split("```", 1)[0]
    mine = tmp_path / "my-chatops"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(
        kustomization.replace("../milvus-chatops/deploy/http", os.path.relpath(DEPLOY / "http", mine))
    )
    (mine / "config.yaml").write_text((ROOT / "config.minimal.yaml").read_text())
    kubectl = shutil.which("kubectl") or missing_dependency("kubectl is not installed")
    out = subprocess.run([kubectl, "kustomize", str(mine)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs_rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    deployment = one(docs_rendered, "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/team/milvus-chatops:0.1.0"
    configmap = one(docs_rendered, "ConfigMap")
    assert configmap["data"]["config.yaml"] == (ROOT / "config.minimal.yaml").read_text()
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
