"""/milvus security: a live audit of one environment. Each check looks at the real thing (a login
attempt, a TLS handshake, the NetworkPolicy objects, Milvus' users and roles, the deployed Helm
values) and says what it saw and how to fix it; a check that cannot look says ``not_checked`` and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.config import Environment
from bot.context import Context
from bot.errors import ChatOpsError
from bot.redact import SECRET_KEY
from bot.services import Services
from bot.state import utcnow
from integrations.kubernetes import MILVUS_PORT
from integrations.milvus import is_lite
from integrations.tls import TlsProbe

PASS, WARN, FAIL, NOT_CHECKED = "pass", "warn", "fail", "not_checked"
DEFAULT_ROOT = ("root", "Milvus")
ADMIN_ROLE = "admin"
BUILT_IN_ROLES = ("admin", "public")
ALL_PRIVILEGES = ("*", "All")
GOOD_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
# Expiring within this many days is a failure rather than a warning.
EXPIRY_FAIL_DAYS = 7
# Values keys that name a secret rather than hold one.
SECRET_REFERENCE_KEYS = ("secretname", "existingsecret", "secretkeyref", "secretref", "key", "name",
                         "serverpempath", "serverkeypath", "capempath", "authorizationenabled")
ROOT_PASSWORD_ENV = "COMMON_SECURITY_DEFAULTROOTPASSWORD"  # noqa: S105 - a variable name


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: str
    detail: str
    fix: str = ""

    def to_data(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class Findings:
    """What earlier checks learnt that later ones build on (one handshake, one login probe)."""

    auth_enforced: bool | None = None
    tls: TlsProbe | None = None
    tls_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


TITLES = {
    "authentication": "Authentication enforced",
    "default_root_password": "Default root password refused",
    "tls": "TLS on the Milvus port",
    "certificate_expiry": "Certificate expiry",
    "network_policy": "NetworkPolicy admits only client namespaces",
    "rbac": "Milvus users and roles",
    "bot_privileges": "The bot's own Milvus user",
    "values_secrets": "No plaintext secrets in Helm values",
}


def _check(check_id: str, status: str, detail: str, fix: str = "") -> Check:
    return Check(check_id, TITLES[check_id], status, detail, fix)


# -- authentication -----------------------------------------------------------------------------


def check_authentication(ctx: Context, env: Environment, found: Findings) -> Check:
    if is_lite(env.milvus.uri):
        return _check("authentication", NOT_CHECKED, "Milvus Lite has no authentication; nothing to enforce.",
                      "Use a Milvus server for anything reachable by others.")
    refusal = ctx.services.milvus_login(env, None, None)
    found.auth_enforced = refusal is not None
    if refusal is None:
        return _check(
            "authentication", FAIL,
            "A connection without user or password was let in and listed collections: authorization is off.",
            f"Set `environments.{env.name}.security.authorization: true` (production has it by default) and "
            f"deploy, or set `common.security.authorizationEnabled: true` in milvus.yaml.",
        )
    return _check("authentication", PASS, f"A connection without credentials was refused: {refusal}")


def check_default_root_password(ctx: Context, env: Environment, found: Findings) -> Check:
    if is_lite(env.milvus.uri):
        return _check("default_root_password", NOT_CHECKED, "Milvus Lite has no users.")
    if found.auth_enforced is False:
        return _check(
            "default_root_password", NOT_CHECKED,
            "Authorization is off, so Milvus accepts any password; whether root's is the default cannot be told.",
            "Turn authorization on first (see the authentication check).",
        )
    refusal = ctx.services.milvus_login(env, *DEFAULT_ROOT)
    if refusal is None:
        return _check(
            "default_root_password", FAIL, "root logs in with the default password `Milvus`.",
            f"`/milvus user password {env.name} root --secret milvus-root-password` sets a generated one "
            "and writes it to that Secret.",
        )
    return _check("default_root_password", PASS, f"root with the default password was refused: {refusal}")


# -- TLS ----------------------------------------------------------------------------------------


def _probe(ctx: Context, env: Environment, found: Findings) -> TlsProbe | None:
    if found.tls is None and found.tls_error is None:
        try:
            found.tls = ctx.services.tls_probe(env)
        except ChatOpsError as exc:
            found.tls_error = exc.message
    return found.tls


def check_tls(ctx: Context, env: Environment, found: Findings) -> Check:
    if is_lite(env.milvus.uri):
        return _check("tls", NOT_CHECKED, "Milvus Lite is a local file; there is no port to secure.")
    probe = _probe(ctx, env, found)
    if probe is None:
        return _check("tls", NOT_CHECKED, f"Could not reach the Milvus port: {found.tls_error}")
    where = f"{probe.host}:{probe.port}"
    if not probe.tls:
        return _check(
            "tls", FAIL,
            f"{where} does not speak TLS (handshake: {probe.error}); traffic and passwords are in the clear.",
            f"Set `environments.{env.name}.security.tls` (production has it by default), create the Secret "
            "with tls.crt, tls.key and ca.crt, and deploy.",
        )
    detail = (f"{where}: {probe.protocol}, {probe.cipher}; certificate `{probe.subject}` issued by "
              f"`{probe.issuer}`")
    security = env.secured()
    ca = security.tls.ca_file if security and security.tls.ca_file else "the system's CA bundle"
    if probe.protocol not in GOOD_PROTOCOLS:
        return _check("tls", FAIL, f"{detail}; {probe.protocol} is obsolete.", "Allow only TLS 1.2 and 1.3.")
    if not probe.verified:
        return _check(
            "tls", WARN, f"{detail}; the chain does not verify against {ca}: {probe.verify_error}.",
            f"Set `environments.{env.name}.security.tls.ca_file` to the CA that signed it, or use a certificate "
            "from a trusted CA (cert-manager).",
        )
    return _check("tls", PASS, f"{detail}; chain verified against {ca}.")


def check_certificate_expiry(ctx: Context, env: Environment, found: Findings, now: dt.datetime | None = None) -> Check:
    if is_lite(env.milvus.uri):
        return _check("certificate_expiry", NOT_CHECKED, "Milvus Lite has no certificate.")
    probe = _probe(ctx, env, found)
    if probe is None or not probe.tls or probe.not_after is None:
        why = found.tls_error or (probe.error if probe else None) or "no certificate presented"
        return _check("certificate_expiry", NOT_CHECKED, f"No certificate to read on the Milvus port ({why}).")
    days = probe.days_left(now or utcnow())
    assert days is not None
    until = f"`{probe.subject}` expires {probe.not_after:%Y-%m-%d %H:%M} UTC"
    renew = "Renew it (cert-manager renews by itself when it issued the Secret) and restart the Milvus pods."
    if days < 0:
        return _check("certificate_expiry", FAIL, f"{until}: expired {-days:.0f} day(s) ago.", renew)
    if days <= EXPIRY_FAIL_DAYS:
        return _check("certificate_expiry", FAIL, f"{until}: {days:.1f} day(s) left.", renew)
    security = env.secured()
    horizon = max(security.expiry_warn_days) if security else 30
    if days <= horizon:
        return _check("certificate_expiry", WARN, f"{until}: {days:.0f} day(s) left.", renew)
    return _check("certificate_expiry", PASS, f"{until}: {days:.0f} day(s) left.")


# -- NetworkPolicy ------------------------------------------------------------------------------


def _selects(policy: Mapping[str, Any], release: str) -> bool:
    spec = policy.get("spec") or {}
    if "Ingress" not in (spec.get("policyTypes") or ["Ingress"]):
        return False
    selector = spec.get("podSelector") or {}
    labels = {"app.kubernetes.io/instance": release, "app.kubernetes.io/name": "milvus"}
    wanted = selector.get("matchLabels") or {}
    return not selector.get("matchExpressions") and all(labels.get(k) == v for k, v in wanted.items())


def _admits_port(rule: Mapping[str, Any]) -> bool:
    ports = rule.get("ports") or []
    return not ports or any(p.get("port") in (MILVUS_PORT, str(MILVUS_PORT), "milvus") for p in ports)


def _sources(rule: Mapping[str, Any]) -> tuple[set[str], list[str]]:
    """(namespaces admitted by name, anything broader said in words)."""
    names: set[str] = set()
    broad: list[str] = []
    sources = rule.get("from")
    if not sources:
        return names, ["every source (rule without `from`)"]
    for source in sources:
        if "ipBlock" in source:
            broad.append(f"IP range {source['ipBlock'].get('cidr')}")
            continue
        ns_selector = source.get("namespaceSelector")
        if ns_selector is None:
            continue  # podSelector alone: pods of Milvus' own namespace
        match = ns_selector.get("matchLabels") or {}
        exprs = ns_selector.get("matchExpressions") or []
        if not match and not exprs:
            broad.append("every namespace")
            continue
        if set(match) - {"kubernetes.io/metadata.name"}:
            broad.append(f"namespaces labelled {match}")
            continue
        if match:
            names.add(str(match["kubernetes.io/metadata.name"]))
        for expr in exprs:
            if expr.get("key") == "kubernetes.io/metadata.name" and expr.get("operator") == "In":
                names.update(str(v) for v in expr.get("values") or [])
            else:
                broad.append(f"namespaces matching {expr}")
    return names, broad


def check_network_policy(ctx: Context, env: Environment, found: Findings) -> Check:
    if env.kubernetes is None:
        return _check("network_policy", NOT_CHECKED,
                      f"No Kubernetes configured for `{env.name}`, so there are no NetworkPolicies to read.",
                      f"Add a `kubernetes:` section to `environments.{env.name}` if it runs in Kubernetes.")
    namespace = env.kubernetes.namespace
    release = env.helm.release if env.helm else "milvus"
    policies = [p for p in ctx.services.kube(env).network_policies(namespace) if _selects(p, release)]
    configured = set(env.kubernetes.client_namespaces)
    fix = (f"Deploy with `/milvus deploy {env.name}`: it writes the policy `{release}-milvus-clients` admitting port "
           f"{MILVUS_PORT} only from `kubernetes.client_namespaces`.")
    if not policies:
        return _check("network_policy", FAIL,
                      f"No NetworkPolicy in `{namespace}` selects the Milvus pods of `{release}`: every pod in the "
                      "cluster can reach Milvus.", fix)
    admitted: set[str] = set()
    broad: list[str] = []
    for policy in policies:
        for rule in (policy.get("spec") or {}).get("ingress") or []:
            if _admits_port(rule):
                names, wide = _sources(rule)
                admitted |= names
                broad += wide
    listed = ", ".join(f"`{(p.get('metadata') or {}).get('name')}`" for p in policies)
    if broad:
        sources = "; ".join(sorted(set(broad)))
        return _check("network_policy", FAIL, f"{listed} admit port {MILVUS_PORT} from {sources}.", fix)
    extra = admitted - configured
    if extra:
        return _check("network_policy", FAIL,
                      f"{listed} admit port {MILVUS_PORT} from {', '.join(sorted(extra))}, which are not among the "
                      f"configured client namespaces ({', '.join(sorted(configured)) or 'none'}).", fix)
    shown = ", ".join(sorted(admitted)) or "no other namespace"
    return _check("network_policy", PASS, f"{listed} admit port {MILVUS_PORT} only from {shown} (and Milvus' own "
                                          f"namespace `{namespace}`).")


# -- users and roles ----------------------------------------------------------------------------


def _rbac_blocked(env: Environment, found: Findings) -> str | None:
    if is_lite(env.milvus.uri):
        return "Milvus Lite has no users or roles."
    if found.auth_enforced is False:
        return "Authorization is off, so users and roles are not enforced."
    return None


def check_rbac(ctx: Context, env: Environment, found: Findings) -> Check:
    blocked = _rbac_blocked(env, found)
    if blocked:
        return _check("rbac", NOT_CHECKED, blocked)
    security = ctx.services.milvus_security(env)
    users = security.users_with_roles()
    grants = {role: security.grants(role) for role in security.roles()}
    found.extra["users"], found.extra["grants"] = users, grants
    admins = sorted({"root"} & set(users) | {u for u, roles in users.items() if ADMIN_ROLE in roles})
    wide = sorted(
        role for role, items in grants.items() if role not in BUILT_IN_ROLES and any(
            g.object_name == "*" and g.privilege in ALL_PRIVILEGES for g in items)
    )
    roleless = sorted(u for u, roles in users.items() if not roles and u != "root")
    parts = [f"Admin: {', '.join(admins) or 'nobody'}."]
    problems = []
    if wide:
        problems.append(f"Roles granting every privilege on every collection: {', '.join(wide)}.")
    if roleless:
        problems.append(f"Users without a role (they get only `public`): {', '.join(roleless)}.")
    parts += problems
    detail = " ".join(parts) + f" {len(users)} user(s), {len(grants)} role(s)."
    if problems:
        return _check("rbac", WARN, detail,
                      "Grant named privileges on named collections (`/milvus role grant`), give each user a role "
                      "(`/milvus user create ... --role`), drop users nobody uses (`/milvus user drop`).")
    return _check("rbac", PASS, detail)


def _bot_user(ctx: Context, env: Environment) -> str | None:
    token = ctx.settings.secret(env.milvus.token_env)
    if not token or ":" not in token:
        return None
    return token.split(":", 1)[0]


def check_bot_privileges(ctx: Context, env: Environment, found: Findings) -> Check:
    blocked = _rbac_blocked(env, found)
    if blocked:
        return _check("bot_privileges", NOT_CHECKED, blocked)
    user = _bot_user(ctx, env)
    if user is None:
        return _check("bot_privileges", NOT_CHECKED,
                      f"The bot connects with an API key or without credentials (`milvus.token_env` "
                      f"{'unset' if not env.milvus.token_env else 'holds no user:password'}), so its user is unknown.",
                      f"Give the bot its own user: `{env.milvus.token_env or 'MILVUS_TOKEN'}=<user>:<password>`.")
    if user == "root":
        return _check("bot_privileges", FAIL,
                      "The bot connects as `root`, which can do anything and cannot be limited.",
                      f"Create a user for the bot (`/milvus user create {env.name} chatops_bot --role <role> --secret "
                      f"<name>`) and point `milvus.token_env` at it.")
    users = found.extra.get("users")
    # A least-privileged bot may not list other users, but it may describe itself.
    roles = users.get(user, []) if users else ctx.services.milvus_security(env).roles_of(user)
    if ADMIN_ROLE in roles:
        return _check("bot_privileges", WARN,
                      f"The bot's user `{user}` holds `admin`. That is what managing users and roles from chat needs; "
                      "without that use, it is more than the bot needs.",
                      "Give it a role with only the privileges the commands you use need.")
    grants = found.extra.get("grants") or {}
    everything = [r for r in roles if any(g.privilege in ALL_PRIVILEGES for g in grants.get(r, []))]
    if everything:
        return _check("bot_privileges", WARN,
                      f"The bot's user `{user}` has every privilege through {', '.join(everything)}.",
                      "Grant named privileges instead of `*`.")
    return _check("bot_privileges", PASS,
                  f"The bot connects as `{user}` with role(s) {', '.join(roles) or 'public only'}.")


# -- Helm values --------------------------------------------------------------------------------


def plaintext_secrets(values: Any, path: str = "") -> list[str]:
    """Dotted keys of the values that hold a secret in plain text (the keys only, never the value)."""
    found: list[str] = []
    if isinstance(values, Mapping):
        if values.get("name") == ROOT_PASSWORD_ENV and values.get("value"):
            found.append(f"{path}value")
        for key, child in values.items():
            key_text = str(key)
            if key_text.lower() in SECRET_REFERENCE_KEYS or key_text in ("valueFrom",):
                continue
            if isinstance(child, str) and key_text.endswith(".yaml"):
                found += _secrets_in_yaml(child, f"{path}{key_text}:")
            elif isinstance(child, (Mapping, list)):
                found += plaintext_secrets(child, f"{path}{key_text}.")
            elif SECRET_KEY.search(key_text) and isinstance(child, str) and child:
                found.append(f"{path}{key_text}")
    elif isinstance(values, list):
        for i, item in enumerate(values):
            found += plaintext_secrets(item, f"{path.rstrip('.')}[{i}].")
    return found


def _secrets_in_yaml(text: str, path: str) -> list[str]:
    import yaml

    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    return plaintext_secrets(parsed, path) if isinstance(parsed, (Mapping, list)) else []


def check_values_secrets(ctx: Context, env: Environment, found: Findings) -> Check:
    if env.helm is None:
        return _check("values_secrets", NOT_CHECKED, f"`{env.name}` is not deployed with Helm by this bot.")
    namespace = Services.kube_target(env).namespace
    values = ctx.services.helm(env).get_values(env.helm.release, namespace)
    if not values:
        return _check("values_secrets", PASS,
                      f"Release `{env.helm.release}` in `{namespace}` has no user-supplied values.")
    keys = plaintext_secrets(values)
    if keys:
        shown = ", ".join(f"`{k}`" for k in keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
        return _check(
            "values_secrets", FAIL,
            f"The deployed values of `{env.helm.release}` hold {len(keys)} secret(s) in plain text: {shown}. "
            "Anyone who can run `helm get values` reads them.",
            "Move each into a Kubernetes Secret and reference it (`existingSecret`, `secretKeyRef`), then deploy.",
        )
    return _check("values_secrets", PASS,
                  f"No secret-looking key holds a plain value in `{env.helm.release}`'s values.")


CHECKS: tuple[Callable[[Context, Environment, Findings], Check], ...] = (
    check_authentication, check_default_root_password, check_tls, check_certificate_expiry,
    check_network_policy, check_rbac, check_bot_privileges, check_values_secrets,
)


def audit(ctx: Context, env: Environment) -> list[Check]:
    """Every check in order; one that cannot reach what it looks at is ``not_checked`` with the reason."""
    found = Findings()
    results = []
    for fn in CHECKS:
        check_id = fn.__name__.removeprefix("check_")
        try:
            results.append(fn(ctx, env, found))
        except ChatOpsError as exc:
            results.append(_check(check_id, NOT_CHECKED, f"Could not look: {exc.message}"))
    return results
