"""Secure Helm values for milvus-helm, what a set of values says about security, and what a change
turns off. Pure functions: the deploy preview and ``/milvus plan`` call them.

The chart has no switch for Milvus security; it is configured through the chart's general keys:
``extraConfigFiles["user.yaml"]`` (merged into milvus.yaml with top priority) carries
``common.security.authorizationEnabled`` / ``tlsMode`` and ``tls.serverPemPath`` / ``serverKeyPath``
/ ``caPemPath``; the certificate Secret is mounted into every Milvus pod through the global
``volumes`` / ``volumeMounts``; the root password reaches Milvus as the environment variable that
overrides ``common.security.defaultRootPassword`` (Milvus maps ``COMMON_SECURITY_...`` variables
onto config keys), read from a Secret with ``secretKeyRef`` through each component's ``extraEnv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from bot.config import Environment, SecuritySettings
from commands.plan.values import deep_merge
from integrations.kubernetes import certificate_body

USER_YAML = "user.yaml"
TLS_VOLUME = "milvus-tls"
ROOT_PASSWORD_ENV = "COMMON_SECURITY_DEFAULTROOTPASSWORD"  # noqa: S105 - a variable name
# The root user is created by the root coordinator: the standalone pod, or mixCoordinator (2.5/2.6),
# or rootCoordinator when an old layout runs it on its own.
ROOT_COMPONENTS = ("standalone", "mixCoordinator", "rootCoordinator")
TLS_MODES = {0: "off", 1: "server TLS", 2: "mutual TLS"}


def _user_config(security: SecuritySettings) -> dict[str, Any]:
    common: dict[str, Any] = {"authorizationEnabled": security.authorization}
    config: dict[str, Any] = {"common": {"security": common}}
    tls = security.tls
    if tls.enabled:
        common["tlsMode"] = tls.mode
        config["tls"] = {
            "serverPemPath": f"{tls.mount_path}/tls.crt",
            "serverKeyPath": f"{tls.mount_path}/tls.key",
            "caPemPath": f"{tls.mount_path}/ca.crt",
        }
    return config


def security_layer(env: Environment) -> dict[str, Any]:
    """The values that secure Milvus in ``env`` (empty when the environment asks for nothing)."""
    security = env.secured()
    if security is None:
        return {}
    layer: dict[str, Any] = {
        "extraConfigFiles": {USER_YAML: yaml.safe_dump(_user_config(security), sort_keys=False)},
    }
    if security.tls.enabled:
        layer["volumes"] = [{"name": TLS_VOLUME, "secret": {"secretName": security.tls.secret}}]
        layer["volumeMounts"] = [{"name": TLS_VOLUME, "mountPath": security.tls.mount_path, "readOnly": True}]
    if security.root_password_secret:
        env_var = {
            "name": ROOT_PASSWORD_ENV,
            "valueFrom": {
                "secretKeyRef": {"name": security.root_password_secret, "key": security.root_password_key}
            },
        }
        for component in ROOT_COMPONENTS:
            layer[component] = {"extraEnv": [env_var]}
    return layer


def certificate_for(env: Environment, release: str, namespace: str) -> dict[str, Any] | None:
    """The cert-manager Certificate that fills the TLS Secret, when the environment names an issuer."""
    security = env.secured()
    if security is None or not security.tls.enabled or not security.tls.cert_manager_issuer:
        return None
    tls = security.tls
    assert tls.cert_manager_issuer is not None
    return certificate_body(namespace, release, tls.secret, tls.cert_manager_issuer, tls.cert_manager_issuer_kind)


def _parse_user_yaml(values: Mapping[str, Any]) -> dict[str, Any]:
    text = (values.get("extraConfigFiles") or {}).get(USER_YAML)
    if not text or not isinstance(text, str):
        return {}
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def with_security(env: Environment, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` over the security layer: anything the profile, plan or ``--set`` says wins.

    ``user.yaml`` is one string to Helm, so a profile that sets its own would silently drop the
    security keys; its content is merged key by key instead.
    """
    layer = security_layer(env)
    if not layer:
        return dict(values)
    merged = deep_merge(layer, values)
    theirs = _parse_user_yaml(values)
    if theirs:
        ours = _parse_user_yaml(layer)
        merged["extraConfigFiles"][USER_YAML] = yaml.safe_dump(deep_merge(ours, theirs), sort_keys=False)
    return merged


# -- reading values back ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    key: str
    label: str
    value: str
    secure: bool

    def to_data(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "value": self.value, "secure": self.secure}


def _root_password_source(values: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[str, bool]:
    plaintext = ((config.get("common") or {}).get("security") or {}).get("defaultRootPassword")
    for component in ROOT_COMPONENTS:
        for item in (values.get(component) or {}).get("extraEnv") or []:
            if isinstance(item, Mapping) and item.get("name") == ROOT_PASSWORD_ENV:
                ref = ((item.get("valueFrom") or {}).get("secretKeyRef")) or {}
                if ref.get("name"):
                    return f"Secret {ref['name']} (key {ref.get('key', '?')})", True
                return "plaintext in the values", False
    if plaintext:
        return "plaintext in the values", False
    return "Milvus default (root/Milvus)", False


def _certificate_source(values: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[str, bool]:
    pem = (config.get("tls") or {}).get("serverPemPath")
    if not pem:
        return "none", False
    mounts = {m.get("name"): m.get("mountPath") for m in values.get("volumeMounts") or [] if isinstance(m, Mapping)}
    for volume in values.get("volumes") or []:
        if not isinstance(volume, Mapping):
            continue
        secret = (volume.get("secret") or {}).get("secretName")
        path = mounts.get(volume.get("name"))
        if secret and path and str(pem).startswith(str(path).rstrip("/") + "/"):
            return f"Secret {secret} at {path}", True
    return f"{pem} (not mounted from a Secret)", False


def security_settings(values: Mapping[str, Any]) -> list[Setting]:
    """Each security setting as the values configure it, in the order the preview lists them."""
    config = _parse_user_yaml(values)
    security = (config.get("common") or {}).get("security") or {}
    auth = security.get("authorizationEnabled") is True
    try:
        mode = int(security.get("tlsMode") or 0)
    except (TypeError, ValueError):
        mode = 0
    certificate, cert_ok = _certificate_source(values, config)
    root, root_ok = _root_password_source(values, config)
    return [
        Setting("authorization", "Authentication and authorization", "on" if auth else "off", auth),
        Setting("tls", "TLS on the Milvus port", TLS_MODES.get(mode, f"tlsMode {mode}"), mode in (1, 2)),
        Setting("certificate", "Certificate and key", certificate, cert_ok),
        Setting("root_password", "Root password", root, root_ok),
    ]


def security_risks(before: Mapping[str, Any], after: Mapping[str, Any], *, production: bool = False) -> list[str]:
    """A risk for each setting that ``before`` had secure and ``after`` does not; in production also
    each one that is not secure at all."""
    was = {s.key: s for s in security_settings(before)}
    risks = []
    for setting in security_settings(after):
        old = was[setting.key]
        if old.secure and not setting.secure:
            risks.append(f"Turns security off: {setting.label} {old.value} → {setting.value}.")
        elif production and not setting.secure:
            risks.append(f"Production without security: {setting.label} is {setting.value}.")
    return risks
