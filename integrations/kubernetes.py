"""Kubernetes through the official client: namespace preparation and watching a Milvus rollout.

``KubeCluster`` takes an ``ApiClient``; ``connect`` builds one from a kubeconfig/context (that is the
I/O). Every call has a request timeout and ``ApiException`` / connection errors become
``IntegrationError`` naming what we tried, never the token.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.errors import IntegrationError

log = logging.getLogger("milvus_chatops.kubernetes")

MILVUS_PORT = 19530
METRICS_PORT = 9091
MANAGED_BY = "milvus-chatops"
# Container states that mean "this will not become Ready by waiting".
BAD_WAITING = {"ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError",
               "InvalidImageName", "CreateContainerError", "RunContainerError"}
WARNING_REASONS = {"Failed", "BackOff", "FailedScheduling", "FailedMount", "FailedAttachVolume", "OOMKilling",
                   "Unhealthy", "FailedCreate", "Evicted"}


@dataclass(frozen=True)
class PodState:
    name: str
    component: str
    ready: bool
    phase: str
    image: str
    restarts: int
    problem: str | None = None  # ImagePullBackOff, OOMKilled, CrashLoopBackOff ...
    # A StatefulSet's replacement pod has the old name; only the uid tells it apart.
    uid: str = ""

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "component": self.component,
            "ready": self.ready,
            "phase": self.phase,
            "image": self.image,
            "restarts": self.restarts,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class KubeEvent:
    object_name: str
    reason: str
    message: str
    type: str
    count: int
    at: str

    def line(self) -> str:
        times = f" (x{self.count})" if self.count > 1 else ""
        return f"{self.object_name}: {self.reason}{times}: {self.message}"


@dataclass
class Readiness:
    """Ready counts by component, and pods that are in trouble."""

    components: dict[str, tuple[int, int]] = field(default_factory=dict)  # component -> (ready, total)
    problems: list[str] = field(default_factory=list)
    images: set[str] = field(default_factory=set)

    @property
    def ready(self) -> int:
        return sum(r for r, _ in self.components.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.components.values())

    @property
    def all_ready(self) -> bool:
        return self.total > 0 and self.ready == self.total

    def line(self) -> str:
        parts = [f"{name} {r}/{t}" for name, (r, t) in sorted(self.components.items())]
        return f"{self.ready}/{self.total} pods ready" + (f" ({', '.join(parts)})" if parts else "")


def milvus_selector(release: str) -> str:
    """milvus-helm labels every Milvus pod with app.kubernetes.io/name=milvus and the release name."""
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/name=milvus"


def readiness(pods: list[PodState]) -> Readiness:
    result = Readiness()
    for pod in pods:
        ready, total = result.components.get(pod.component, (0, 0))
        result.components[pod.component] = (ready + int(pod.ready), total + 1)
        if pod.problem:
            result.problems.append(f"{pod.name}: {pod.problem}")
        if pod.image:
            result.images.add(pod.image)
    return result


def network_policy_body(namespace: str, release: str, client_namespaces: list[str]) -> dict[str, Any]:
    """Milvus pods accept 19530 only from the client namespaces.

    Milvus components talk to each other (and to etcd/MinIO/Pulsar) on many ports inside the
    namespace, so same-namespace traffic stays open; without that rule the policy would cut the
    cluster in pieces. The metrics port stays open to any namespace because Prometheus, wherever it
    runs, must scrape it, and post-deploy validation reads ``up`` from it; it serves no data.
    """
    ingress: list[dict[str, Any]] = [
        {"from": [{"podSelector": {}}]},
        {"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": METRICS_PORT}]},
    ]
    if client_namespaces:
        ingress.append(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/metadata.name",
                                    "operator": "In",
                                    "values": sorted(set(client_namespaces)),
                                }
                            ]
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": MILVUS_PORT}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{release}-milvus-clients",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/instance": release},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/instance": release}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def certificate_body(namespace: str, release: str, secret: str, issuer: str, issuer_kind: str) -> dict[str, Any]:
    """A cert-manager Certificate that keeps ``secret`` (tls.crt, tls.key, ca.crt) filled and renewed,
    for the names clients use to reach the release's Milvus service (milvus-helm names it
    ``<release>-milvus``)."""
    service = f"{release}-milvus"
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {
            "name": f"{release}-milvus-tls",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/instance": release},
        },
        "spec": {
            "secretName": secret,
            "dnsNames": [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                         f"{service}.{namespace}.svc.cluster.local"],
            "issuerRef": {"name": issuer, "kind": issuer_kind, "group": "cert-manager.io"},
            "privateKey": {"rotationPolicy": "Always"},
        },
    }


class KubeCluster:
    def __init__(self, api_client: Any, *, timeout_s: float = 10.0, name: str = "cluster") -> None:
        self.api_client = api_client
        self.timeout_s = timeout_s
        self.name = name

    # -- plumbing --------------------------------------------------------------------------------

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    def _net(self) -> Any:
        from kubernetes import client

        return client.NetworkingV1Api(self.api_client)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=self.timeout_s, **kwargs)
        except ApiException as exc:
            reason = exc.reason or ""
            try:
                import json

                reason = json.loads(exc.body or "{}").get("message") or reason
            except (ValueError, AttributeError):
                pass
            raise IntegrationError(
                f"Kubernetes ({self.name}) refused to {what}: {exc.status} {reason}"[:600], system="kubernetes"
            ) from exc
        except Exception as exc:  # urllib3 connection/timeouts, TLS errors
            raise IntegrationError(
                f"Kubernetes ({self.name}) could not {what}: {type(exc).__name__}", system="kubernetes"
            ) from exc

    def _exists(self, what: str, fn: Callable[..., Any], *args: Any) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=self.timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise IntegrationError(
                f"Kubernetes ({self.name}) refused to {what}: {exc.status}", system="kubernetes"
            ) from exc
        except Exception as exc:
            raise IntegrationError(
                f"Kubernetes ({self.name}) could not {what}: {type(exc).__name__}", system="kubernetes"
            ) from exc

    # -- namespace preparation -------------------------------------------------------------------

    def ensure_namespace(self, name: str, labels: dict[str, str], *, dry_run: bool = False) -> str:
        """Create the namespace with ``labels`` or add them to it; returns created|updated|unchanged."""
        core = self._core()
        current = self._exists(f"read namespace {name}", core.read_namespace, name)
        if dry_run:
            have = (current.metadata.labels or {}) if current is not None and current.metadata else {}
            if current is None:
                return "would create"
            return "unchanged" if all(have.get(k) == v for k, v in labels.items()) else "would update"
        if current is None:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
            self._call(f"create namespace {name}", core.create_namespace, body)
            return "created"
        have = (current.metadata.labels or {}) if current.metadata else {}
        if all(have.get(k) == v for k, v in labels.items()):
            return "unchanged"
        self._call(f"label namespace {name}", core.patch_namespace, name, {"metadata": {"labels": labels}})
        return "updated"

    def ensure_service_account(
        self, namespace: str, name: str, labels: dict[str, str], *, dry_run: bool = False
    ) -> str:
        core = self._core()
        if self._exists(f"read service account {name}", core.read_namespaced_service_account, name, namespace):
            return "unchanged"
        if dry_run:
            return "would create"
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "labels": labels}}
        self._call(f"create service account {name}", core.create_namespaced_service_account, namespace, body)
        return "created"

    def ensure_network_policy(
        self, namespace: str, release: str, client_namespaces: list[str], *, dry_run: bool = False
    ) -> str:
        net = self._net()
        body = network_policy_body(namespace, release, client_namespaces)
        name = body["metadata"]["name"]
        current = self._exists(f"read network policy {name}", net.read_namespaced_network_policy, name, namespace)
        if current is None:
            if dry_run:
                return "would create"
            self._call(f"create network policy {name}", net.create_namespaced_network_policy, namespace, body)
            return "created"
        if self.api_client.sanitize_for_serialization(current).get("spec") == body["spec"]:
            return "unchanged"
        if dry_run:
            return "would update"
        self._call(f"replace network policy {name}", net.replace_namespaced_network_policy, name, namespace, body)
        return "updated"

    def ensure_certificate(self, body: dict[str, Any], *, dry_run: bool = False) -> str:
        """Create or replace a cert-manager Certificate; created|updated|unchanged (or would ...)."""
        from kubernetes import client

        api = client.CustomObjectsApi(self.api_client)
        meta = body["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        args = ("cert-manager.io", "v1", namespace, "certificates")
        current = self._exists(f"read certificate {name}", api.get_namespaced_custom_object, *args, name)
        if current is None:
            if dry_run:
                return "would create"
            self._call(f"create certificate {name}", api.create_namespaced_custom_object, *args, body)
            return "created"
        if current.get("spec") == body["spec"]:
            return "unchanged"
        if dry_run:
            return "would update"
        replaced = {**body, "metadata": {**meta, "resourceVersion": (current.get("metadata") or {}).get(
            "resourceVersion")}}
        self._call(f"replace certificate {name}", api.replace_namespaced_custom_object, *args, name, replaced)
        return "updated"

    def prepare(
        self, namespace: str, release: str, client_namespaces: list[str], *, dry_run: bool = False,
        certificate: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """Namespace with labels, the release's service account, the client NetworkPolicy, and the
        cert-manager Certificate when one is given.

        With ``dry_run`` nothing is written: the answer says what would be created or updated (a
        service account or policy in a namespace that does not exist yet would be created).
        """
        labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "milvus-chatops/release": release}
        ns = self.ensure_namespace(namespace, labels, dry_run=dry_run)
        if ns == "would create":
            result = {"namespace": ns, "service_account": "would create", "network_policy": "would create"}
            if certificate is not None:
                result["certificate"] = "would create"
            return result
        result = {
            "namespace": ns,
            "service_account": self.ensure_service_account(namespace, f"{release}-milvus", labels, dry_run=dry_run),
            "network_policy": self.ensure_network_policy(namespace, release, client_namespaces, dry_run=dry_run),
        }
        if certificate is not None:
            result["certificate"] = self.ensure_certificate(certificate, dry_run=dry_run)
        return result

    # -- security ---------------------------------------------------------------------------------

    def network_policies(self, namespace: str) -> list[dict[str, Any]]:
        """Every NetworkPolicy in the namespace, as plain dicts (camelCase keys, as kubectl shows them)."""
        listed = self._call(
            f"list network policies in {namespace}", self._net().list_namespaced_network_policy, namespace
        )
        return [self.api_client.sanitize_for_serialization(p) for p in listed.items or []]

    def secret_keys(self, namespace: str, name: str) -> list[str] | None:
        """The keys of a Secret (never its values), or None when there is no such Secret."""
        secret = self._exists(f"read secret {name}", self._core().read_namespaced_secret, name, namespace)
        if secret is None:
            return None
        return sorted((secret.data or {}).keys())

    def write_secret(self, namespace: str, name: str, data: dict[str, str], labels: dict[str, str]) -> str:
        """Create the Secret or replace its data; returns created|updated. Values are sent, never logged."""
        import base64

        core = self._core()
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": encoded,
        }
        try:
            if self._exists(f"read secret {name}", core.read_namespaced_secret, name, namespace) is None:
                self._call(f"create secret {name}", core.create_namespaced_secret, namespace, body)
                return "created"
            self._call(f"replace secret {name}", core.replace_namespaced_secret, name, namespace, body)
            return "updated"
        except IntegrationError as exc:
            # An API server may quote the object it refused; none of its values may travel on.
            message = exc.message
            for value in [*data.values(), *encoded.values()]:
                if value:
                    message = message.replace(value, "***")
            raise IntegrationError(message, hint=exc.hint, system="kubernetes") from None

    # -- watching --------------------------------------------------------------------------------

    def pods(self, namespace: str, selector: str) -> list[PodState]:
        listed = self._call(
            f"list pods in {namespace}", self._core().list_namespaced_pod, namespace, label_selector=selector
        )
        return [_pod_state(p) for p in listed.items or []]

    def warning_events(self, namespace: str, since: dt.datetime | None = None, prefix: str = "") -> list[KubeEvent]:
        """Warning events (image pulls, OOM kills, scheduling) in the namespace, newest last."""
        listed = self._call(f"list events in {namespace}", self._core().list_namespaced_event, namespace)
        events = []
        for e in listed.items or []:
            when = e.last_timestamp or e.event_time or e.first_timestamp
            if since and when and _aware(when) < since:
                continue
            obj = e.involved_object.name if e.involved_object else ""
            if prefix and not str(obj).startswith(prefix):
                continue
            if e.type != "Warning" and e.reason not in WARNING_REASONS:
                continue
            events.append(
                KubeEvent(
                    object_name=str(obj),
                    reason=str(e.reason or ""),
                    message=str(e.message or "")[:300],
                    type=str(e.type or ""),
                    count=int(e.count or 1),
                    at=when.isoformat() if when else "",
                )
            )
        return sorted(events, key=lambda ev: ev.at)


    # -- readiness: cluster facts and the pod drill --------------------------------------------------

    def version(self) -> str:
        from kubernetes import client

        info = self._call("read the server version", client.VersionApi(self.api_client).get_code)
        return str(info.git_version)

    def nodes(self) -> list[NodeInfo]:
        listed = self._call("list nodes", self._core().list_node)
        out = []
        for node in listed.items or []:
            status = node.status
            allocatable = (status.allocatable or {}) if status else {}
            conditions = {c.type: c.status for c in (status.conditions or [])} if status else {}
            unschedulable = bool(node.spec.unschedulable) if node.spec else False
            out.append(NodeInfo(
                name=str(node.metadata.name),
                ready=conditions.get("Ready") == "True" and not unschedulable,
                cpu=parse_cpu(str(allocatable.get("cpu", "0"))),
                memory_gib=parse_quantity(str(allocatable.get("memory", "0"))) / 2**30,
            ))
        return out

    def volume_claims(self, namespace: str) -> dict[str, str]:
        """Name -> phase (Bound, Pending, Lost) of every PersistentVolumeClaim in the namespace."""
        listed = self._call(
            f"list volume claims in {namespace}", self._core().list_namespaced_persistent_volume_claim, namespace
        )
        return {str(c.metadata.name): str(c.status.phase if c.status else "") for c in listed.items or []}

    def network_policy_spec(self, namespace: str, name: str) -> dict[str, Any] | None:
        current = self._exists(
            f"read network policy {name}", self._net().read_namespaced_network_policy, name, namespace
        )
        if current is None:
            return None
        spec: dict[str, Any] = self.api_client.sanitize_for_serialization(current).get("spec") or {}
        return spec

    def container_settings(self, namespace: str, selector: str = "") -> dict[str, list[str]]:
        """Pod name -> its containers' env (NAME=value, values from secrets left out) and args."""
        listed = self._call(
            f"list pods in {namespace}", self._core().list_namespaced_pod, namespace, label_selector=selector
        )
        out: dict[str, list[str]] = {}
        for pod in listed.items or []:
            settings: list[str] = []
            for container in (pod.spec.containers or []) if pod.spec else []:
                settings.extend(f"{e.name}={e.value}" for e in container.env or [] if e.value is not None)
                settings.extend(str(a) for a in [*(container.command or []), *(container.args or [])])
            out[str(pod.metadata.name)] = settings
        return out

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call(f"delete pod {name} in {namespace}", self._core().delete_namespaced_pod, name, namespace)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    cpu: float
    memory_gib: float


_QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "k": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12, "P": 10**15, "m": 1e-3}


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity (``16Gi``, ``500m``, ``4``) as a plain number (bytes, cores)."""
    text = text.strip()
    for suffix in sorted(_QUANTITY, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _QUANTITY[suffix]
    return float(text or 0)


def parse_cpu(text: str) -> float:
    return parse_quantity(text)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _pod_state(pod: Any) -> PodState:
    meta, status, spec = pod.metadata, pod.status, pod.spec
    labels = (meta.labels or {}) if meta else {}
    component = labels.get("component") or labels.get("app.kubernetes.io/component") or "milvus"
    conditions = {c.type: c.status for c in (status.conditions or [])} if status else {}
    ready = conditions.get("Ready") == "True"
    problem = None
    restarts = 0
    image = ""
    for cs in (status.container_statuses or []) if status else []:
        restarts += int(cs.restart_count or 0)
        image = image or str(cs.image or "")
        waiting = cs.state.waiting if cs.state else None
        terminated = cs.state.terminated if cs.state else None
        last = cs.last_state.terminated if cs.last_state else None
        if waiting and waiting.reason in BAD_WAITING:
            problem = waiting.reason
        elif terminated and terminated.reason == "OOMKilled":
            problem = "OOMKilled"
        elif last and last.reason == "OOMKilled" and not problem:
            problem = "OOMKilled (restarted)"
    if not image and spec and spec.containers:
        image = str(spec.containers[0].image or "")
    return PodState(
        name=str(meta.name if meta else ""),
        component=component,
        ready=ready,
        phase=str(status.phase if status else ""),
        image=image,
        restarts=restarts,
        problem=problem,
        uid=str(meta.uid or "") if meta else "",
    )


def connect(*, context: str | None, kubeconfig: str | None, timeout_s: float = 10.0) -> KubeCluster:
    """Read the kubeconfig (or the in-cluster service account) and return a cluster handle."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig or context:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        else:
            try:
                config.load_incluster_config()
                from kubernetes import client

                api_client = client.ApiClient()
            except ConfigException:
                api_client = config.new_client_from_config()
    except Exception as exc:  # ConfigException, unreadable or malformed YAML, missing keys
        where = f"context {context}" if context else (kubeconfig or "the default kubeconfig")
        raise IntegrationError(
            f"Cannot load Kubernetes credentials for {where}.",
            hint="Check kubernetes.kubeconfig/context in the config.",
            system="kubernetes",
        ) from exc
    return KubeCluster(api_client, timeout_s=timeout_s, name=context or "default")
