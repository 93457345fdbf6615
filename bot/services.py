"""The one services factory: every client of an outside system, built per environment with its
timeouts, cached, and handed to handlers as ``ctx.services``.

Handlers never construct a client; integrations never see the runtime. Building a client does no
I/O except where the library insists (a Milvus client dials when it is made), and those dials happen
under a lock of their own key, so a hung cluster holds up only callers of that one environment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bot.config import Environment, KubernetesTarget, TlsSettings
from bot.errors import ChatOpsError, UserError
from bot.logs import adopt_library_loggers

if TYPE_CHECKING:
    from bot.settings import Settings
    from integrations.alertmanager import AlertmanagerClient
    from integrations.helm import Helm
    from integrations.kubernetes import KubeCluster
    from integrations.milvus import MilvusAdmin, MilvusData, MilvusSearch, MilvusSecurity
    from integrations.milvus_backup import MilvusBackupClient
    from integrations.prometheus import Prometheus
    from integrations.s3 import ObjectStore
    from integrations.tls import TlsProbe

log = logging.getLogger("milvus_chatops.services")
T = TypeVar("T")

# A client that could not be built is not tried again for this long: a dead cluster answers every
# caller at once with the remembered error instead of each one waiting out its own connect timeout.
FAILURE_MEMORY_S = 10.0
S3_READ_TIMEOUT_S = 10.0
S3_ATTEMPTS = 2


class ClientCache:
    """Clients that are costly to open (a Milvus Lite file can only be opened once per process).

    Each key has its own lock, so opening one client never waits for another to open.
    """

    def __init__(self, failure_memory_s: float = FAILURE_MEMORY_S) -> None:
        self._clients: dict[str, Any] = {}
        self._failures: dict[str, tuple[float, ChatOpsError]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.failure_memory_s = failure_memory_s

    def get(self, key: str, factory: Callable[[], T]) -> T:
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._clients:
                return self._clients[key]
            failed = self._failures.get(key)
            if failed is not None and time.monotonic() - failed[0] < self.failure_memory_s:
                raise failed[1]
            try:
                client = factory()
            except ChatOpsError as exc:
                self._failures[key] = (time.monotonic(), exc)
                raise
            self._failures.pop(key, None)
            self._clients[key] = client
            return client

    def drop(self, key: str) -> None:
        with self._guard:
            client = self._clients.pop(key, None)
            self._failures.pop(key, None)
        _close(client)

    def close_all(self) -> None:
        with self._guard:
            clients, self._clients = list(self._clients.values()), {}
            self._failures.clear()
        for client in clients:
            _close(client)


def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # closing is best effort at shutdown
            log.debug("closing client failed", exc_info=True)


class Services:
    """Per-environment clients. Milvus, Kubernetes, S3 and HTTP sessions are cached; cheap wrappers
    (helm's argv builder, the Prometheus facade) are made per call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = ClientCache()

    # -- Milvus --------------------------------------------------------------------------------------

    def milvus_client(self, env: Environment) -> Any:
        """The process-wide pymilvus client of an environment (Milvus Lite allows one opener per file)."""
        from integrations.milvus import open_client

        target = env.milvus
        token = self.settings.secret(target.token_env)
        tls = self._milvus_tls(env)

        def dial() -> Any:
            try:
                return open_client(target.uri, token, db_name=target.db_name, timeout_s=target.timeout_s, tls=tls)
            finally:
                # pymilvus installs its own stderr handlers when first imported (just now, in open_client).
                adopt_library_loggers()

        return self.cache.get(f"milvus:{env.name}", dial)

    def milvus(self, env: Environment) -> MilvusAdmin:
        from integrations.milvus import MilvusAdmin

        return MilvusAdmin(self.milvus_client(env), uri=env.milvus.uri, timeout_s=env.milvus.timeout_s)

    def milvus_data(self, env: Environment) -> MilvusData:
        """The data plane (iterate, insert, create, rename, drop) on the environment's shared client."""
        from integrations.milvus import MilvusData

        return MilvusData(self.milvus_client(env), uri=env.milvus.uri, timeout_s=env.milvus.timeout_s)

    def milvus_search(self, env: Environment) -> MilvusSearch:
        """Searches, samples and scans of vectors (load tests and drills) on the shared client."""
        from integrations.milvus import MilvusSearch

        return MilvusSearch(self.milvus_client(env), uri=env.milvus.uri, timeout_s=env.milvus.timeout_s)
    def milvus_security(self, env: Environment) -> MilvusSecurity:
        """Users, roles and grants, through the bot's own connection (its user needs the rights)."""
        from integrations.milvus import MilvusSecurity

        return MilvusSecurity(self.milvus_client(env), uri=env.milvus.uri, timeout_s=env.milvus.timeout_s)

    def milvus_login(self, env: Environment, user: str | None, password: str | None) -> str | None:
        """Try a fresh connection with these credentials: None if Milvus let it in, else its refusal."""
        from integrations.milvus import probe_login

        return probe_login(env.milvus.uri, user, password, timeout_s=env.milvus.timeout_s, tls=self._milvus_tls(env))

    def tls_probe(self, env: Environment) -> TlsProbe:
        """Handshake with the Milvus port: protocol, chain, certificate dates."""
        from integrations.tls import endpoint, probe

        host, port = endpoint(env.milvus.uri)
        tls = self._tls(env)
        client = None
        if tls and tls.client_cert_file and tls.client_key_file:
            client = (tls.client_cert_file, tls.client_key_file)
        return probe(host, port, ca_file=tls.ca_file if tls else None, server_name=tls.server_name if tls else None,
                     client_cert=client, timeout_s=min(env.milvus.timeout_s, 10.0))

    def _milvus_tls(self, env: Environment) -> dict[str, str]:
        from integrations.milvus import tls_options

        tls = self._tls(env)
        if tls is None:
            return {}
        return tls_options(ca_file=tls.ca_file, server_name=tls.server_name, client_cert_file=tls.client_cert_file,
                           client_key_file=tls.client_key_file)

    @staticmethod
    def _tls(env: Environment) -> TlsSettings | None:
        security = env.secured()
        return security.tls if security is not None and security.tls.enabled else None

    # -- Kubernetes and helm ----------------------------------------------------------------------------

    @staticmethod
    def kube_target(env: Environment) -> KubernetesTarget:
        return env.kubernetes or KubernetesTarget()

    def helm(self, env: Environment) -> Helm:
        from integrations.helm import Helm

        kube = self.kube_target(env)
        return Helm(kube_context=kube.context, kubeconfig=kube.kubeconfig)

    def kube(self, env: Environment) -> KubeCluster:
        from integrations.kubernetes import connect

        kube = self.kube_target(env)
        return self.cache.get(f"kube:{env.name}", lambda: connect(context=kube.context, kubeconfig=kube.kubeconfig))

    # -- backups ----------------------------------------------------------------------------------------

    def object_store(self, env: Environment) -> ObjectStore:
        """Where an environment's backups live: a local directory or an S3 bucket and prefix."""
        from integrations.s3 import LocalStore, S3Store, make_s3_client

        target = env.backup
        if target is None:
            raise UserError(
                f"Environment `{env.name}` has no backup target.",
                hint="Add a `backup:` section (bucket or local_dir) to the environment in the bot's config.",
            )
        if target.local_dir:
            return LocalStore(target.local_dir)
        assert target.bucket is not None  # the config validator guarantees bucket or local_dir
        # A hung S3 answers `backup list` with a clear error in about 25 s rather than minutes: each
        # request waits at most 10 s for bytes and is tried twice.
        client = self.cache.get(
            f"s3:{env.name}",
            lambda: make_s3_client(endpoint_url=target.endpoint_url, region=target.region, connect_timeout=5.0,
                                   read_timeout=S3_READ_TIMEOUT_S, max_attempts=S3_ATTEMPTS),
        )
        return S3Store(client, target.bucket, target.prefix, sse=target.sse, kms_key_id=target.kms_key_id)

    def milvus_backup(self, env: Environment) -> MilvusBackupClient:
        import requests

        from integrations.milvus_backup import MilvusBackupClient

        url = (env.backup.milvus_backup_url if env.backup else None) or ""
        session = self.cache.get(f"milvus-backup:{env.name}", requests.Session)
        return MilvusBackupClient(session, url)

    # -- monitoring ---------------------------------------------------------------------------------------

    def prometheus(self, env: Environment, *, timeout_s: float | None = None) -> Prometheus:
        """The environment's Prometheus, or a clear error when none is configured."""
        from integrations.prometheus import DEFAULT_TIMEOUT_S, connect

        if not env.prometheus_url:
            raise UserError(
                f"Environment `{env.name}` has no Prometheus configured.",
                hint=f"Set `environments.{env.name}.prometheus_url` in the config.",
            )
        return connect(env.prometheus_url, timeout_s=timeout_s or DEFAULT_TIMEOUT_S)

    def alertmanager(self, env: Environment) -> AlertmanagerClient:
        from integrations.alertmanager import AlertmanagerClient

        url = env.alertmanager_url
        if not url:
            raise UserError(
                f"Environment `{env.name}` has no `alertmanager_url` in the bot's config, so it cannot silence alerts.",
                hint=f"Set `environments.{env.name}.alertmanager_url` in the config.",
            )
        return self.cache.get(f"alertmanager:{url}", lambda: AlertmanagerClient(url, timeout=5.0))

    def close_all(self) -> None:
        self.cache.close_all()
