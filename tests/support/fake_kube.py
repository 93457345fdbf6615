"""FakeKube: a FAKE Kubernetes API server on 127.0.0.1 for the official client.

No kube-apiserver can run on our machines.  kmock 0.8 was the first choice
but has no Namespace objects (create 500, get 404), no ``labelSelector`` and
no pod logs, all of which the bot needs, so this is our own small server.
It stores objects as JSON and answers the REST paths the ``kubernetes``
client uses:

- ``/api/v1/...`` core kinds and ``/apis/<group>/<version>/...`` for any
  group (apps, networking.k8s.io, custom resources), namespaced or not;
- create (409 AlreadyExists; 404 if the namespace does not exist), get, list
  (``labelSelector`` with ``=``, ``==``, ``!=``, ``in``, ``notin``, exists;
  ``fieldSelector`` on ``metadata.name``/``metadata.namespace``/
  ``involvedObject.*``/``status.phase``), replace, patch (merge, strategic
  merge treated as merge, JSON patch, apply), delete (namespaces cascade);
- ``/status`` and ``/scale`` subresources, ``pods/<name>/log``;
- ``?watch=true`` streaming JSON lines, resuming from ``resourceVersion``.

It runs no controllers: tests set pod and workload status with ``set_pod``,
``set_deployment``... as a cluster would have.  The one exception is opt-in:
``replace_deleted_pods(namespace)`` makes a pod deleted through the API come
back as a controller would bring it (a new pod, Ready after a delay), for
failure drills.  Every request is recorded.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

# plural -> (kind, namespaced) for the kinds we know; other plurals are
# accepted with a kind derived from the name or from the posted body.
KINDS: dict[str, tuple[str, bool]] = {
    "namespaces": ("Namespace", False),
    "nodes": ("Node", False),
    "persistentvolumes": ("PersistentVolume", False),
    "storageclasses": ("StorageClass", False),
    "clusterroles": ("ClusterRole", False),
    "clusterrolebindings": ("ClusterRoleBinding", False),
    "customresourcedefinitions": ("CustomResourceDefinition", False),
    "pods": ("Pod", True),
    "services": ("Service", True),
    "serviceaccounts": ("ServiceAccount", True),
    "configmaps": ("ConfigMap", True),
    "secrets": ("Secret", True),
    "events": ("Event", True),
    "persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "resourcequotas": ("ResourceQuota", True),
    "limitranges": ("LimitRange", True),
    "endpoints": ("Endpoints", True),
    "deployments": ("Deployment", True),
    "statefulsets": ("StatefulSet", True),
    "replicasets": ("ReplicaSet", True),
    "daemonsets": ("DaemonSet", True),
    "jobs": ("Job", True),
    "cronjobs": ("CronJob", True),
    "networkpolicies": ("NetworkPolicy", True),
    "ingresses": ("Ingress", True),
    "roles": ("Role", True),
    "rolebindings": ("RoleBinding", True),
    "poddisruptionbudgets": ("PodDisruptionBudget", True),
    "horizontalpodautoscalers": ("HorizontalPodAutoscaler", True),
    "milvuses": ("Milvus", True),
    "servicemonitors": ("ServiceMonitor", True),
}
PLURAL_OF_KIND = {kind: plural for plural, (kind, _) in KINDS.items()}
# Groups (and their version) of the kinds tests seed by kind name.
DEFAULT_API_VERSION = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Ingress": "networking.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "StorageClass": "storage.k8s.io/v1",
    "Milvus": "milvus.io/v1beta1",
}
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public")
FAKE_TOKEN = "fake-kube-token"  # not a secret: the fake accepts any token and records it


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class KubeRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]  # lower-cased keys
    at: float
    status: int


@dataclass
class _Fault:
    method: str
    path_re: re.Pattern[str]
    status: int
    message: str
    remaining: int


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.status,
        }


def _not_found(plural: str, name: str, group: str = "") -> KubeError:
    resource = f"{plural}.{group}" if group else plural
    return KubeError(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": plural})


# --------------------------------------------------------------- selectors
_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def label_selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    for term in _split_selector(selector):
        match = _SET_RE.match(term)
        if match:
            key, op, raw = match.groups()
            values = {v.strip() for v in raw.split(",") if v.strip()}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "==" in term or "=" in term:
            key, value = (s.strip() for s in re.split(r"==?", term, maxsplit=1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: dict[str, Any], dotted: str) -> Any:
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def field_selector_matches(selector: str | None, obj: dict[str, Any]) -> bool:
    if not selector:
        return True
    for term in _split_selector(selector):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if str(_field(obj, key.strip()) or "") == value.strip():
                return False
        else:
            key, value = re.split(r"==?", term, maxsplit=1)
            if str(_field(obj, key.strip()) or "") != value.strip():
                return False
    return True


# --------------------------------------------------------------- patches
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test, copy, move."""
    doc = copy.deepcopy(target)

    def parent(path: str) -> tuple[Any, str]:
        parts = _pointer(path)
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, parts[-1]

    def get(path: str) -> Any:
        node = doc
        for part in _pointer(path):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    for op in ops:
        kind, path = op["op"], op["path"]
        try:
            if kind == "test":
                if get(path) != op["value"]:
                    raise KubeError(
                        422,
                        "Invalid",
                        f"the server rejected our request due to an error in our request: test failed at {path}",
                    )
                continue
            if kind in ("copy", "move"):
                value = copy.deepcopy(get(op["from"]))
                if kind == "move":
                    src_parent, src_key = parent(op["from"])
                    if isinstance(src_parent, list):
                        src_parent.pop(int(src_key))
                    else:
                        del src_parent[src_key]
                kind, op = "add", {"op": "add", "path": path, "value": value}
            node, key = parent(path)
            if kind == "add":
                if isinstance(node, list):
                    node.insert(len(node) if key == "-" else int(key), op["value"])
                else:
                    node[key] = op["value"]
            elif kind == "replace":
                if isinstance(node, list):
                    node[int(key)] = op["value"]
                else:
                    if key not in node:
                        raise KeyError(key)
                    node[key] = op["value"]
            elif kind == "remove":
                if isinstance(node, list):
                    node.pop(int(key))
                else:
                    del node[key]
            else:
                raise KubeError(422, "Invalid", f"unsupported JSON patch op {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise KubeError(
                422, "Invalid", f"the server rejected our request: jsonpatch {kind} {path}: {exc!r}"
            ) from exc
    return doc


# --------------------------------------------------------------- the server
class FakeKube:
    """A threaded HTTP server on 127.0.0.1 that the ``kubernetes`` client can use.

    ``api_client()`` returns a ``kubernetes.client.ApiClient`` configured from
    ``kubeconfig_path()``; nothing global is loaded.
    """

    def __init__(self, *, workdir: str | Path | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._workdir = Path(workdir) if workdir else None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._init_state()

    def _init_state(self) -> None:
        # key: (api_version, plural, namespace or "", name) -> object
        self._objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._events: list[tuple[int, str, str, str, dict[str, Any]]] = []  # rv, type, api_version, plural, obj
        self._requests: list[KubeRequest] = []
        self._faults: list[_Fault] = []
        self._logs: dict[tuple[str, str], str] = {}
        self._replacing: dict[str, tuple[float, bool]] = {}  # namespace -> (ready after s, keep name)
        self._rv = itertools.count(100)
        self._last_rv = 99
        for name in INITIAL_NAMESPACES:
            self.create_namespace(name)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FakeKube:
        if self._server is not None:
            return self
        self._stopping = False
        server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="FakeKube", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        with self._lock:
            self._stopping = True
            self._changed.notify_all()  # ends open watches
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to a cluster with only the initial namespaces; open watches end."""
        with self._lock:
            self._init_state()
            self._changed.notify_all()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeKube is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, context: str = "fake", namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": FAKE_TOKEN}}],
            "contexts": [
                {"name": context, "context": {"cluster": "fake", "user": "fake-user", "namespace": namespace}}
            ],
            "current-context": context,
        }

    def kubeconfig_path(self, directory: str | Path | None = None) -> Path:
        """Write a kubeconfig pointing at this server and return its path."""
        base = Path(directory) if directory else self._workdir
        if base is None:
            import tempfile

            base = Path(tempfile.mkdtemp(prefix="fake-kube-"))
            self._workdir = base
        base.mkdir(parents=True, exist_ok=True)
        path = base / f"kubeconfig-{self.port}.yaml"
        path.write_text(yaml.safe_dump(self.kubeconfig()))
        return path

    def api_client(self) -> Any:
        """A fresh ``kubernetes.client.ApiClient`` for this server."""
        from kubernetes import config  # imported here: kubernetes is slow to import

        return config.new_client_from_config(config_file=str(self.kubeconfig_path()))

    # ------------------------------------------------------------ faults
    def fail_next(
        self, method: str, path_pattern: str, status: int = 500, *, message: str = "fake failure", times: int = 1
    ) -> None:
        """Answer the next ``times`` requests whose method and path (regex search) match with ``status``."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_pattern), status, message, times))

    # ------------------------------------------------------------ records
    def requests(self, method: str | None = None, path_contains: str | None = None) -> list[KubeRequest]:
        with self._lock:
            return [
                r
                for r in self._requests
                if (method is None or r.method == method.upper()) and (path_contains is None or path_contains in r.path)
            ]

    # ------------------------------------------------------------ state API for tests
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace any object as given (apiVersion/kind/metadata), firing watch events."""
        obj = copy.deepcopy(obj)
        kind = obj["kind"]
        api_version = obj.get("apiVersion") or DEFAULT_API_VERSION.get(kind, "v1")
        obj["apiVersion"] = api_version
        plural = PLURAL_OF_KIND.get(kind) or kind.lower() + "s"
        namespaced = KINDS.get(plural, (kind, True))[1]
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "default") if namespaced else ""
        with self._lock:
            key = (api_version, plural, ns, meta["name"])
            existing = self._objects.get(key)
            if namespaced and ns not in self._namespace_names():
                self.create_namespace(ns)
            self._store(key, obj, existing)
            return copy.deepcopy(self._objects[key])

    def get(
        self, kind: str, name: str, namespace: str | None = None, api_version: str | None = None
    ) -> dict[str, Any] | None:
        plural = PLURAL_OF_KIND.get(kind, kind)
        api_version = api_version or DEFAULT_API_VERSION.get(KINDS.get(plural, (kind, True))[0], "v1")
        namespaced = KINDS.get(plural, (kind, True))[1]
        with self._lock:
            obj = self._objects.get((api_version, plural, (namespace or "default") if namespaced else "", name))
            return copy.deepcopy(obj) if obj else None

    def objects(self, kind: str, namespace: str | None = None, api_version: str | None = None) -> list[dict[str, Any]]:
        plural = PLURAL_OF_KIND.get(kind, kind)
        api_version = api_version or DEFAULT_API_VERSION.get(KINDS.get(plural, (kind, True))[0], "v1")
        with self._lock:
            return [
                copy.deepcopy(o)
                for (av, pl, ns, _), o in sorted(self._objects.items())
                if av == api_version and pl == plural and (namespace is None or ns == namespace)
            ]

    def namespaces(self) -> list[str]:
        with self._lock:
            return sorted(self._namespace_names())

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        with self._lock:
            key = ("v1", "namespaces", "", name)
            obj = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            self._store(key, obj, self._objects.get(key))
            return copy.deepcopy(self._objects[key])

    def set_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str] | None = None,
        *,
        ready: bool = True,
        phase: str = "Running",
        container_state: str | dict[str, Any] | None = None,
        containers: list[str] | None = None,
        restart_count: int = 0,
        node_name: str = "fake-node-1",
        image: str = "milvusdb/milvus:v2.4.5",
        last_state: dict[str, Any] | None = None,
        owner: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create or replace a pod with the status a kubelet would report.

        ``container_state``: ``None`` -> running (or waiting ``ContainerCreating``
        when not ready and phase is Pending), a string -> ``waiting`` with that
        reason (e.g. ``"CrashLoopBackOff"``), or a full state dict such as
        ``{"terminated": {"reason": "OOMKilled", "exitCode": 137}}``.
        """
        names = containers or [name.split("-")[0] if "-" in name else name]
        if container_state is None:
            if ready or phase == "Running":
                state: dict[str, Any] = {"running": {"startedAt": _now()}}
            else:
                state = {"waiting": {"reason": "ContainerCreating"}}
        elif isinstance(container_state, str):
            state = {"waiting": {"reason": container_state, "message": f"fake {container_state}"}}
        else:
            state = container_state
        statuses = [
            {
                "name": c,
                "ready": ready,
                "started": ready,
                "restartCount": restart_count,
                "image": image,
                "imageID": f"docker-pullable://{image}",
                "containerID": f"containerd://{uuid.uuid5(uuid.NAMESPACE_DNS, namespace + name + c).hex}",
                "state": state,
                "lastState": last_state or {},
            }
            for c in names
        ]
        cond = "True" if ready else "False"
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
        if owner:
            meta["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner[0],
                    "name": owner[1],
                    "uid": str(uuid.uuid4()),
                    "controller": True,
                }
            ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {"nodeName": node_name, "containers": [{"name": c, "image": image} for c in names]},
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": _now()},
                    {"type": "Ready", "status": cond, "lastTransitionTime": _now()},
                    {"type": "ContainersReady", "status": cond, "lastTransitionTime": _now()},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()},
                ],
                "containerStatuses": statuses,
                "hostIP": "10.0.0.1",
                "podIP": "10.1.0.1",
                "startTime": _now(),
                "qosClass": "Burstable",
            },
        }
        return self.put(pod)

    def delete(self, kind: str, name: str, namespace: str | None = None, api_version: str | None = None) -> None:
        plural = PLURAL_OF_KIND.get(kind, kind)
        kind_name, namespaced = KINDS.get(plural, (kind, True))
        api_version = api_version or DEFAULT_API_VERSION.get(kind_name, "v1")
        with self._lock:
            key = (api_version, plural, (namespace or "default") if namespaced else "", name)
            self._remove(key)

    def replace_deleted_pods(self, namespace: str, *, ready_after_s: float = 1.0, keep_name: bool = False) -> None:
        """Pods deleted through the API in ``namespace`` are replaced as a ReplicaSet (new name) or a
        StatefulSet (``keep_name``) would: same labels and image, Pending at once, Ready after
        ``ready_after_s``."""
        with self._lock:
            self._replacing[namespace] = (ready_after_s, keep_name)

    def _replace(self, gone: dict[str, Any]) -> None:
        meta = gone.get("metadata", {})
        namespace = meta.get("namespace", "")
        if namespace not in self._replacing:
            return
        ready_after_s, keep_name = self._replacing[namespace]
        name = meta["name"] if keep_name else f"{meta['name'].rsplit('-', 1)[0]}-{uuid.uuid4().hex[:5]}"
        labels = dict(meta.get("labels") or {})
        containers = (gone.get("spec") or {}).get("containers") or [{}]
        image = containers[0].get("image") or "milvusdb/milvus:v2.4.5"
        self.set_pod(namespace, name, labels, ready=False, phase="Pending", image=image)
        generation = self._events

        def ready() -> None:
            with self._lock:
                if self._events is generation and not self._stopping:
                    self.set_pod(namespace, name, labels, ready=True, image=image)

        timer = threading.Timer(ready_after_s, ready)
        timer.daemon = True
        timer.start()

    def set_pod_log(self, namespace: str, name: str, text: str) -> None:
        with self._lock:
            self._logs[(namespace, name)] = text

    def add_event(
        self,
        namespace: str,
        involved: dict[str, str],
        reason: str,
        message: str,
        *,
        type: str = "Warning",
        count: int = 1,
        name: str | None = None,
    ) -> dict[str, Any]:
        """An Event about ``involved`` (``{"kind": "Pod", "name": ...}``), as kubelet or a controller would post."""
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name or f"{involved.get('name', 'x')}.{uuid.uuid4().hex[:12]}",
                "namespace": namespace,
            },
            "involvedObject": {"namespace": namespace, **involved},
            "reason": reason,
            "message": message,
            "type": type,
            "count": count,
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
            "source": {"component": "fake-kubelet"},
            "reportingComponent": "fake-kubelet",
        }
        return self.put(event)

    def set_workload(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        replicas: int = 1,
        ready_replicas: int | None = None,
        labels: dict[str, str] | None = None,
        image: str = "milvusdb/milvus:v2.4.5",
    ) -> dict[str, Any]:
        """A Deployment or StatefulSet with the status its controller would report."""
        ready = replicas if ready_replicas is None else ready_replicas
        labels = labels or {}
        status: dict[str, Any] = {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": 1,
        }
        if kind == "Deployment":
            status["updatedReplicas"] = replicas
        else:
            status.update({"currentReplicas": replicas, "updatedReplicas": replicas})
        obj = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels or {"app": name}},
                "template": {
                    "metadata": {"labels": labels or {"app": name}},
                    "spec": {"containers": [{"name": name, "image": image}]},
                },
                **({"serviceName": name} if kind == "StatefulSet" else {}),
            },
            "status": status,
        }
        return self.put(obj)

    def set_deployment(self, namespace: str, name: str, **kwargs: Any) -> dict[str, Any]:
        return self.set_workload("Deployment", namespace, name, **kwargs)

    def set_statefulset(self, namespace: str, name: str, **kwargs: Any) -> dict[str, Any]:
        return self.set_workload("StatefulSet", namespace, name, **kwargs)

    # ------------------------------------------------------------ internals
    def _namespace_names(self) -> set[str]:
        return {k[3] for k in self._objects if k[0] == "v1" and k[1] == "namespaces"}

    def _next_rv(self) -> int:
        self._last_rv = next(self._rv)
        return self._last_rv

    def _store(self, key: tuple[str, str, str, str], obj: dict[str, Any], existing: dict[str, Any] | None) -> None:
        api_version, plural, ns, name = key
        meta = obj.setdefault("metadata", {})
        meta["name"] = name
        if ns:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if existing:
            old = existing["metadata"]
            meta["uid"] = old["uid"]
            meta["creationTimestamp"] = old["creationTimestamp"]
            generation = old.get("generation", 1)
            if existing.get("spec") != obj.get("spec"):
                generation += 1
            meta["generation"] = generation
        else:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta["generation"] = 1
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        obj.setdefault("kind", KINDS.get(plural, (plural[:-1].capitalize(), True))[0])
        obj["apiVersion"] = api_version
        self._objects[key] = obj
        self._events.append((rv, "MODIFIED" if existing else "ADDED", api_version, plural, copy.deepcopy(obj)))
        self._changed.notify_all()

    def _remove(self, key: tuple[str, str, str, str]) -> dict[str, Any] | None:
        obj = self._objects.pop(key, None)
        if obj is None:
            return None
        rv = self._next_rv()
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(rv)
        self._events.append((rv, "DELETED", key[0], key[1], gone))
        if key[1] == "namespaces" and key[0] == "v1":
            for other in [k for k in self._objects if k[2] == key[3]]:
                self._remove(other)
        self._changed.notify_all()
        return gone

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in (method, "*") and fault.path_re.search(path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str], status: int
    ) -> None:
        with self._lock:
            self._requests.append(KubeRequest(method, path, query, body, headers, time.time(), status))


# --------------------------------------------------------------- routing
@dataclass
class _Route:
    api_version: str
    plural: str
    namespace: str | None  # None: cluster-wide or cluster-scoped
    name: str | None
    sub: str | None  # status, scale, log

    @property
    def kind(self) -> str:
        return KINDS.get(self.plural, (self.plural[:-1].capitalize(), True))[0]

    @property
    def namespaced(self) -> bool:
        return KINDS.get(self.plural, (self.kind, True))[1]


def _parse_route(path: str) -> _Route | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        api_version, rest = parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) == 3 and rest[2] in ("status", "finalize"):
        return _Route(api_version, "namespaces", None, rest[1], rest[2])
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
        return _Route(
            api_version, rest[0], namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
        )
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return _Route(api_version, plural, None, name, sub)


def _handle(
    fake: FakeKube, method: str, route: _Route, query: dict[str, str], body: Any, content_type: str
) -> tuple[int, Any]:
    ns_key = (route.namespace or "") if route.namespaced else ""
    if route.plural == "namespaces":
        ns_key = ""
    if route.name is None:
        if method == "GET":
            return 200, _list(fake, route, query)
        if method == "POST":
            return 201, _create(fake, route, body)
        if method == "DELETE":
            return 200, _delete_collection(fake, route, query)
        raise KubeError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
    key = (route.api_version, route.plural, ns_key, route.name)
    with fake._lock:
        existing = fake._objects.get(key)
        if route.sub == "log":
            if existing is None:
                raise _not_found("pods", route.name)
            return 200, fake._logs.get((route.namespace or "", route.name), "")
        if method == "GET":
            if existing is None:
                raise _not_found(
                    route.plural, route.name, route.api_version.split("/")[0] if "/" in route.api_version else ""
                )
            if route.sub == "scale":
                return 200, _scale_of(existing)
            return 200, copy.deepcopy(existing)
        if method == "DELETE":
            if existing is None:
                raise _not_found(route.plural, route.name)
            gone = fake._remove(key)
            if route.plural == "pods" and gone is not None:
                fake._replace(gone)
            return 200, gone
        if method in ("PUT", "PATCH"):
            if existing is None:
                if method == "PATCH" and content_type.startswith("application/apply-patch"):
                    return 201, _create(fake, route, body)
                raise _not_found(route.plural, route.name)
            current = _scale_of(existing) if route.sub == "scale" else existing
            if method == "PUT":
                updated = copy.deepcopy(body)
            elif content_type.startswith("application/json-patch+json"):
                if not isinstance(body, list):
                    raise KubeError(400, "BadRequest", "json patch body must be a list")
                updated = json_patch(current, body)
            else:
                # merge-patch, strategic-merge-patch (lists replaced, not merged by key), apply-patch
                updated = merge_patch(current, body)
            if route.sub == "scale":
                new = copy.deepcopy(existing)
                new.setdefault("spec", {})["replicas"] = int(updated.get("spec", {}).get("replicas", 0))
                fake._store(key, new, existing)
                return 200, _scale_of(fake._objects[key])
            if route.sub == "status":
                new = copy.deepcopy(existing)
                new["status"] = updated.get("status", {})
            else:
                new = updated
                new.setdefault("metadata", {})
                if "status" in existing and method == "PUT":
                    new["status"] = existing["status"]
            wanted_rv = (
                (body or {}).get("metadata", {}).get("resourceVersion")
                if method == "PUT" and isinstance(body, dict)
                else None
            )
            if wanted_rv and wanted_rv != existing["metadata"]["resourceVersion"]:
                raise KubeError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {route.plural} "{route.name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )
            new.setdefault("metadata", {})["name"] = route.name
            fake._store(key, new, existing)
            return 200, copy.deepcopy(fake._objects[key])
    raise KubeError(405, "MethodNotAllowed", f"{method} not supported")


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {"replicas": obj.get("status", {}).get("replicas", 0)},
    }


def _create(fake: FakeKube, route: _Route, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise KubeError(400, "BadRequest", "the body of the request was in an unknown format")
    meta = body.setdefault("metadata", {})
    name = meta.get("name")
    if not name and meta.get("generateName"):
        name = meta["generateName"] + uuid.uuid4().hex[:5]
    if not name:
        raise KubeError(
            422, "Invalid", f"{route.kind} is invalid: metadata.name: Required value: name or generateName is required"
        )
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) or len(name) > 253:
        raise KubeError(
            422,
            "Invalid",
            f'{route.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": '
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character",
        )
    if route.plural == "namespaces" and (len(name) > 63 or "." in name):
        raise KubeError(
            422,
            "Invalid",
            f'Namespace "{name}" is invalid: metadata.name: Invalid value: "{name}": must be a DNS-1123 label',
        )
    ns = (route.namespace or "") if route.namespaced and route.plural != "namespaces" else ""
    with fake._lock:
        if ns and ns not in fake._namespace_names():
            raise KubeError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
        key = (route.api_version, route.plural, ns, name)
        if key in fake._objects:
            raise KubeError(
                409, "AlreadyExists", f'{route.plural} "{name}" already exists', {"name": name, "kind": route.plural}
            )
        obj = copy.deepcopy(body)
        obj.setdefault("kind", route.kind)
        if route.plural == "namespaces":
            obj.setdefault("status", {"phase": "Active"})
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["metadata"]["name"] = name
        obj["metadata"].pop("resourceVersion", None)
        fake._store(key, obj, None)
        return copy.deepcopy(fake._objects[key])


def _matching(fake: FakeKube, route: _Route, query: dict[str, str], obj: dict[str, Any], ns: str) -> bool:
    if route.namespace and route.namespaced and ns != route.namespace:
        return False
    labels = obj.get("metadata", {}).get("labels") or {}
    return label_selector_matches(query.get("labelSelector"), labels) and field_selector_matches(
        query.get("fieldSelector"), obj
    )


def _list(fake: FakeKube, route: _Route, query: dict[str, str]) -> dict[str, Any]:
    with fake._lock:
        items = [
            copy.deepcopy(obj)
            for (av, pl, ns, _), obj in sorted(fake._objects.items())
            if av == route.api_version and pl == route.plural and _matching(fake, route, query, obj, ns)
        ]
        rv = fake._last_rv
    limit = int(query.get("limit") or 0)
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if limit and len(items) > limit:
        start = int(query.get("continue") or 0)
        page = items[start : start + limit]
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        items = page
    elif query.get("continue"):
        items = items[int(query["continue"]) :]
    return {"apiVersion": route.api_version, "kind": f"{route.kind}List", "metadata": meta, "items": items}


def _delete_collection(fake: FakeKube, route: _Route, query: dict[str, str]) -> dict[str, Any]:
    with fake._lock:
        keys = [
            key
            for key, obj in fake._objects.items()
            if key[0] == route.api_version and key[1] == route.plural and _matching(fake, route, query, obj, key[2])
        ]
        for key in keys:
            fake._remove(key)
    return {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}


# --------------------------------------------------------------- HTTP layer
def _make_handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send_json(self, status: int, data: Any) -> None:
            if isinstance(data, str):
                raw, ctype = data.encode(), "text/plain"
            else:
                raw, ctype = json.dumps(data).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            content_type = headers.get("content-type", "application/json")
            body: Any = None
            status = 500
            try:
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = yaml.safe_load(raw)  # apply-patch+yaml
                fault = fake._take_fault(self.command, parts.path)
                if fault is not None:
                    raise KubeError(
                        fault.status, "InternalError" if fault.status >= 500 else "BadRequest", fault.message
                    )
                if parts.path in ("/version", "/version/"):
                    status = 200
                    self._send_json(
                        200,
                        {"major": "1", "minor": "29", "gitVersion": "v1.29.0-fake", "gitCommit": "0" * 40,
                         "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.21.5",
                         "compiler": "gc", "platform": "linux/amd64"},
                    )
                    return
                if parts.path in ("/api", "/api/"):
                    status = 200
                    self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
                    return
                route = _parse_route(parts.path)
                if route is None:
                    raise KubeError(404, "NotFound", "the server could not find the requested resource")
                if self.command == "GET" and route.name is None and query.get("watch") in ("true", "1"):
                    status = 200
                    self._watch(route, query)
                    return
                status, result = _handle(fake, self.command, route, query, body, content_type)
                self._send_json(status, result)
            except KubeError as err:
                status = err.status
                self._send_json(err.status, err.body())
            finally:
                fake._record(self.command, parts.path, query, body, headers, status)

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _watch(self, route: _Route, query: dict[str, str]) -> None:
            timeout = float(query.get("timeoutSeconds") or 1800)
            deadline = time.monotonic() + timeout
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            since = query.get("resourceVersion") or ""
            with fake._lock:
                if since in ("", "0"):
                    # A watch without a version starts with the current state as ADDED events.
                    pending = [
                        {"type": "ADDED", "object": copy.deepcopy(obj)}
                        for (av, pl, ns, _), obj in sorted(fake._objects.items())
                        if av == route.api_version and pl == route.plural and _matching(fake, route, query, obj, ns)
                    ]
                    cursor = len(fake._events)
                else:
                    wanted = int(since)
                    oldest = fake._events[0][0] if fake._events else fake._last_rv + 1
                    if wanted < oldest - 1:
                        pending = [
                            {
                                "type": "ERROR",
                                "object": KubeError(
                                    410, "Expired", f"too old resource version: {wanted} ({oldest})"
                                ).body(),
                            }
                        ]
                        cursor = len(fake._events)
                    else:
                        pending = []
                        cursor = next((i for i, e in enumerate(fake._events) if e[0] > wanted), len(fake._events))
                generation = fake._events  # reset() replaces the list: that ends this watch
            try:
                while True:
                    for event in pending:
                        self._write_chunk(json.dumps(event).encode() + b"\n")
                    pending = []
                    with fake._lock:
                        while cursor >= len(fake._events) and not fake._stopping and fake._events is generation:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                break
                            fake._changed.wait(min(remaining, 1.0))
                        if fake._stopping or fake._events is not generation or time.monotonic() >= deadline:
                            break
                        for _rv, etype, av, pl, obj in fake._events[cursor:]:
                            ns = obj.get("metadata", {}).get("namespace", "")
                            if (
                                av == route.api_version
                                and pl == route.plural
                                and _matching(fake, route, query, obj, ns)
                            ):
                                pending.append({"type": etype, "object": obj})
                        cursor = len(fake._events)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped watching
            self.close_connection = True

        do_GET = _dispatch
        do_POST = _dispatch
        do_PUT = _dispatch
        do_PATCH = _dispatch
        do_DELETE = _dispatch

    return Handler
