"""Secure values by default: what production rendering turns on (in the chart's own keys), and the
deploy preview that lists each setting and warns first when a change turns one off. Helm and
Kubernetes are the fakes at their boundaries, as in test_deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Config
from bot.errors import ConfigError
from commands.security.values import security_layer, security_risks, security_settings, with_security
from tests.commands.deploy.test_deploy import Bot, seed
from tests.support.fake_helm import FakeHelm
from tests.support.fake_kube import FakeKube


def env_config(tmp: Path, kubeconfig: Path, **extra: Any) -> dict[str, Any]:
    return {
        "milvus": {"uri": str(tmp / "milvus.db")},
        "kubernetes": {"kubeconfig": str(kubeconfig), "namespace": "milvus-prod", "client_namespaces": ["app"]},
        "helm": {"release": "milvus", "chart": "milvus/milvus", "milvus_version": "2.5.16", "timeout": "5m",
                 "values": {"cluster": {"enabled": True}}},
        **extra,
    }


def make(tmp: Path, kube: FakeKube, **extra: Any) -> Bot:
    if extra.get("production"):
        # Production means four eyes; the config is refused without someone to approve.
        extra.setdefault("approval", {"approvers": ["UAPP"]})
        extra.setdefault("channels", {"approvals": "CAPPROVALS"})
    config = {"environments": {"prod": env_config(tmp, kube.kubeconfig_path(), **extra)},
              "access": [{"role": "operator", "users": ["UREQ", "UAPP"]}]}
    return Bot(tmp / "state.db", config)


def user_yaml(values: dict[str, Any]) -> dict[str, Any]:
    return dict(yaml.safe_load(values["extraConfigFiles"]["user.yaml"]))


def test_production_deploy_turns_on_authorization_tls_and_the_root_password_secret(
    tmp_path: Path, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-prod")
    bot = make(tmp_path, fake_kube, production=True)
    try:
        outcome = bot.run("/milvus deploy prod --dry-run")
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    [call] = fake_helm.calls("upgrade")
    values = call.values
    assert user_yaml(values) == {
        "common": {"security": {"authorizationEnabled": True, "tlsMode": 1}},
        "tls": {"serverPemPath": "/etc/milvus/certs/tls.crt", "serverKeyPath": "/etc/milvus/certs/tls.key",
                "caPemPath": "/etc/milvus/certs/ca.crt"},
    }
    assert values["volumes"] == [{"name": "milvus-tls", "secret": {"secretName": "milvus-tls"}}]
    assert values["volumeMounts"] == [{"name": "milvus-tls", "mountPath": "/etc/milvus/certs", "readOnly": True}]
    root_env = {"name": "COMMON_SECURITY_DEFAULTROOTPASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "milvus-root-password", "key": "password"}}}
    assert values["mixCoordinator"]["extraEnv"] == [root_env] and values["standalone"]["extraEnv"] == [root_env]
    assert values["cluster"] == {"enabled": True}  # the profile is still there
    shown = json.dumps(outcome.reply.blocks)
    assert ":lock: Authentication and authorization: on" in shown
    assert ":lock: TLS on the Milvus port: server TLS" in shown
    assert "Root password: Secret milvus-root-password (key password)" in shown
    assert {s["key"]: s["secure"] for s in outcome.reply.data["security"]} == {
        "authorization": True, "tls": True, "certificate": True, "root_password": True}


def test_a_change_that_turns_security_off_is_the_first_risk_an_approver_sees(
    tmp_path: Path, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    secured = make(tmp_path / "a", fake_kube, production=True).runtime.config.environments["prod"]
    seed(fake_helm, fake_kube, "milvus-prod", app_version="2.5.16", chart_version="4.2.58",
         values=with_security(secured, {"cluster": {"enabled": True}, "image": {"all": {"tag": "v2.5.16"}}}))
    bot = make(tmp_path, fake_kube, security={"authorization": False, "tls": {"enabled": False}},
               approval={"required": True, "approvers": ["UAPP"]}, channels={"approvals": "CAPPROVALS"})
    try:
        outcome = bot.run("/milvus deploy prod")
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    risks = outcome.reply.data["risks"]
    assert risks[:3] == [
        "Turns security off: Authentication and authorization on → off.",
        "Turns security off: TLS on the Milvus port server TLS → off.",
        "Turns security off: Certificate and key Secret milvus-tls at /etc/milvus/certs → none.",
    ]
    # The approval request carries the preview; its first block is the security warning.
    [post] = bot.messenger.posts
    request_blocks = json.dumps(post["message"].blocks, ensure_ascii=False)
    assert request_blocks.index("Security risks") < request_blocks.index("Values diff")
    assert ":unlock: Authentication and authorization: off" in request_blocks


def test_plan_for_a_production_environment_attaches_secure_values(tmp_path: Path, fake_kube: FakeKube) -> None:
    bot = make(tmp_path, fake_kube, production=True)
    try:
        outcome = bot.run("/milvus plan prod --vectors 1M --dim 768")
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    [attachment] = outcome.reply.files
    values = yaml.safe_load(attachment.content)
    settings = {s.key: s.value for s in security_settings(values)}
    assert settings == {"authorization": "on", "tls": "server TLS",
                        "certificate": "Secret milvus-tls at /etc/milvus/certs",
                        "root_password": "Secret milvus-root-password (key password)"}
    assert "standalone" in values and "etcd" in values  # the plan's resources are still there


def test_profile_user_yaml_keeps_its_keys_and_security_is_merged_in(tmp_path: Path) -> None:
    config = Config.model_validate({"environments": {"prod": {"production": True, "milvus": {"uri": "x.db"},
                                                              "approval": {"approvers": ["UAPP"]}}}})
    env = config.environments["prod"]
    mine = {"extraConfigFiles": {"user.yaml": "proxy:\n  http:\n    enabled: false\n"}}
    merged = user_yaml(with_security(env, mine))
    assert merged["proxy"] == {"http": {"enabled": False}}
    assert merged["common"]["security"]["authorizationEnabled"] is True
    # Non-production without a security section renders nothing extra.
    plain = Config.model_validate({"environments": {"dev": {"milvus": {"uri": "x.db"}}}}).environments["dev"]
    assert security_layer(plain) == {} and with_security(plain, mine) == mine


def test_plaintext_root_password_and_default_are_flagged() -> None:
    plaintext = {"extraConfigFiles": {"user.yaml": "common:\n  security:\n    defaultRootPassword: hunter22\n"}}
    assert {s.key: s.value for s in security_settings(plaintext)}["root_password"] == "plaintext in the values"
    assert security_risks({}, {}, production=True)[0] == (
        "Production without security: Authentication and authorization is off.")
    assert security_risks({}, {}) == []


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"expiry_warn_days": [30, 0]}, "environments.prod.security.expiry_warn_days"),
        ({"tls": {"secret": "Not_A_Name"}}, "environments.prod.security.tls.secret"),
        ({"tls": {"mode": 3}}, "environments.prod.security.tls.mode"),
        ({"tls": {"mount_path": "certs"}}, "environments.prod.security.tls.mount_path"),
        ({"authorisation": True}, "environments.prod.security.authorisation"),
    ],
)
def test_bad_security_config_names_the_key(tmp_path: Path, section: dict[str, Any], key: str) -> None:
    from bot.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"environments": {"prod": {"milvus": {"uri": "x.db"}, "security": section}}}))
    with pytest.raises(ConfigError) as caught:
        load_config(path, tmp_path)
    assert key in str(caught.value)


def test_cert_manager_issuer_gets_a_certificate_that_fills_the_mounted_secret(
    tmp_path: Path, fake_helm: FakeHelm, fake_kube: FakeKube
) -> None:
    seed(fake_helm, fake_kube, "milvus-prod")
    # Not production, so the deploy runs at once; the security section alone turns TLS on.
    bot = make(tmp_path, fake_kube, security={"tls": {"secret": "prod-tls", "cert_manager_issuer": "internal-ca"}})
    try:
        preview = bot.run("/milvus deploy prod --dry-run")
        assert preview.reply.data["kubernetes"]["certificate"] == "would create"
        assert not fake_kube.requests("POST", "certificates")
        outcome = bot.run("/milvus deploy prod")
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    cert = fake_kube.get("certificates", "milvus-milvus-tls", "milvus-prod", api_version="cert-manager.io/v1")
    assert cert is not None
    assert cert["spec"]["secretName"] == "prod-tls"
    assert cert["spec"]["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert "milvus-milvus.milvus-prod.svc" in cert["spec"]["dnsNames"]
    [upgrade] = [c for c in fake_helm.calls("upgrade") if not c.has_flag("--dry-run")]
    assert upgrade.values["volumes"] == [{"name": "milvus-tls", "secret": {"secretName": "prod-tls"}}]
