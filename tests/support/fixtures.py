"""pytest fixtures for the shared test infrastructure.

Load with ``pytest_plugins = ["tests.support.fixtures"]`` in tests/conftest.py.

Servers start once per session (``*_server`` fixtures); the fixtures tests
normally use hand out the same server emptied for each test, so tests do not
see each other's calls, objects or buckets.

A missing system dependency (Prometheus, PostgreSQL, the Milvus 2.3.5 venv)
skips the test locally with the command that installs it; under CI
(``CI`` set) it fails instead, so a broken install cannot pass as skips.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support import servers
from tests.support.certs import SelfSignedCertificate, make_certificate
from tests.support.fake_helm import FakeHelm
from tests.support.fake_kube import FakeKube
from tests.support.fake_slack import FakeSlack
from tests.support.fake_socket_mode import FakeSocketMode
from tests.support.wait import wait_for

INSTALL_HINT = "run: bash scripts/install-test-deps.sh"


def missing_dependency(reason: str) -> NoReturn:
    """Skip locally, fail in CI: CI installs everything, so absence there is a bug."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} ({INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{reason} ({INSTALL_HINT})")


# ------------------------------------------------------------------ Slack
@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlack) -> FakeSlack:
    """The FAKE Slack Web API (``api_url`` for WebClient), emptied for each test."""
    fake_slack_server.reset()
    return fake_slack_server


@pytest.fixture
def fake_socket_mode(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    """A FAKE Socket Mode endpoint, handed out by the fake Slack's ``apps.connections.open``."""
    with FakeSocketMode() as socket_mode:
        fake_slack.attach_socket_mode(socket_mode)
        yield socket_mode
        fake_slack.attach_socket_mode(None)


# ------------------------------------------------------------------ Kubernetes
@pytest.fixture(scope="session")
def fake_kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKube]:
    with FakeKube(workdir=tmp_path_factory.mktemp("fake-kube")) as kube:
        yield kube


@pytest.fixture
def fake_kube(fake_kube_server: FakeKube) -> FakeKube:
    """The FAKE Kubernetes API, back to three empty namespaces for each test.

    ``kubeconfig_path()`` for code that loads a kubeconfig, ``api_client()``
    for a ready ``kubernetes.client.ApiClient``.
    """
    fake_kube_server.reset()
    return fake_kube_server


# ------------------------------------------------------------------ helm
@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHelm:
    """The FAKE ``helm`` first on PATH for this test (and for subprocesses it starts).

    Sets ``PATH``, ``FAKE_HELM_STATE`` and ``FAKE_HELM_PYTHON`` in os.environ
    for the test only.  Code that takes a helm binary path can use
    ``fake_helm.binary``.
    """
    helm = FakeHelm(tmp_path / "fake-helm")
    for key, value in helm.env_updates().items():
        monkeypatch.setenv(key, value)
    return helm


# ------------------------------------------------------------------ Prometheus / Alertmanager
@dataclass(frozen=True)
class PrometheusBinaries:
    prometheus: str
    alertmanager: str
    promtool: str | None
    amtool: str | None


@pytest.fixture(scope="session")
def prometheus_binary() -> PrometheusBinaries:
    """Paths of the Debian Prometheus and Alertmanager binaries (skip/fail when missing)."""
    prometheus = shutil.which(servers.PROMETHEUS)
    alertmanager = shutil.which(servers.ALERTMANAGER)
    if not prometheus or not alertmanager:
        missing_dependency("prometheus and prometheus-alertmanager (Debian packages) are not installed")
    return PrometheusBinaries(prometheus, alertmanager, shutil.which(servers.PROMTOOL), shutil.which(servers.AMTOOL))


@pytest.fixture
def prometheus_factory(
    prometheus_binary: PrometheusBinaries, tmp_path: Path
) -> Iterator[Callable[..., servers.ProcessServer]]:
    """``start(**kwargs)`` -> a running Prometheus (kwargs of ``servers.start_prometheus``); stopped after the test."""
    started: list[servers.ProcessServer] = []

    def start(**kwargs: Any) -> servers.ProcessServer:
        server = servers.start_prometheus(tmp_path / f"prometheus-{len(started)}", **kwargs)
        started.append(server)
        return server

    yield start
    servers.stop_all(started)


@pytest.fixture
def alertmanager_factory(
    prometheus_binary: PrometheusBinaries, tmp_path: Path
) -> Iterator[Callable[..., servers.ProcessServer]]:
    """``start(config_yaml, **kwargs)`` -> a running Alertmanager; stopped after the test."""
    started: list[servers.ProcessServer] = []

    def start(config_yaml: str, **kwargs: Any) -> servers.ProcessServer:
        server = servers.start_alertmanager(tmp_path / f"alertmanager-{len(started)}", config_yaml, **kwargs)
        started.append(server)
        return server

    yield start
    servers.stop_all(started)


# ------------------------------------------------------------------ S3
@pytest.fixture(scope="session")
def moto_s3_server() -> Iterator[servers.MotoS3]:
    server = servers.start_moto_s3()
    yield server
    server.stop()


@pytest.fixture
def moto_s3(moto_s3_server: servers.MotoS3) -> servers.MotoS3:
    """moto's S3 on 127.0.0.1 with no buckets; ``url`` is the endpoint_url, ``client()`` a boto3 client."""
    moto_s3_server.reset()
    return moto_s3_server


# ------------------------------------------------------------------ Milvus
@pytest.fixture(scope="session")
def milvus_lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.ProcessServer]:
    server = servers.start_milvus_lite_server(tmp_path_factory.mktemp("milvus-lite"))
    yield server
    server.stop()


def drop_everything(uri: str) -> None:
    """Drop every alias, collection and non-default database, so a test starts from an empty Milvus.

    Connecting can fail transiently: the gRPC server answers a fresh channel with GOAWAY "Too many
    pings" when earlier clients of this process pinged it often. A new client then connects fine.
    """
    from pymilvus.exceptions import MilvusException

    wait_for(
        lambda: _drop_everything_once(uri) or True,
        timeout=60,
        ignore=(MilvusException,),
        message=f"could not empty milvus-lite at {uri}",
    )


def _drop_everything_once(uri: str) -> None:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=30)
    try:
        for db in client.list_databases():
            client.use_database(db)
            for name in client.list_collections():
                # A collection with aliases cannot be dropped.
                for alias in client.list_aliases(name).get("aliases", []):
                    client.drop_alias(alias)
                client.drop_collection(name)
            if db != "default":
                client.use_database("default")
                client.drop_database(db)
    finally:
        client.close()


@pytest.fixture
def milvus_lite_uri(milvus_lite_server: servers.ProcessServer) -> str:
    """``http://127.0.0.1:P`` of a milvus-lite gRPC server, emptied for each test."""
    drop_everything(milvus_lite_server.uri)
    return milvus_lite_server.uri


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.ProcessServer]:
    """A real Milvus 2.3.5 with ``/metrics`` (``uri``, ``metrics_url``); shared by the session, so
    tests use their own collection names.  Takes 4-10 s to start: mark such tests ``slow``."""
    reason = servers.milvus_server_available()
    if reason:
        missing_dependency(reason)
    server = servers.start_milvus_server(tmp_path_factory.mktemp("milvus-server"))
    yield server
    server.stop()


@dataclass(frozen=True)
class SecuredMilvus:
    server: servers.ProcessServer
    uri: str  # https://127.0.0.1:P
    certificate: SelfSignedCertificate


# Short-lived on purpose: the certificate watch's thresholds are reached by moving "now", not the clock.
SECURED_CERT_LIFETIME = dt.timedelta(days=2)


@pytest.fixture(scope="session")
def secured_milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredMilvus]:
    """A real Milvus 2.3.5 with ``common.security.authorizationEnabled: true`` and TLS (tlsMode 1) on
    its gRPC port, with a certificate from a test CA that expires two days after start. Root's
    password is the default ``Milvus``; a test that changes it changes it back. Mark users ``slow``."""
    reason = servers.milvus_server_available()
    if reason:
        missing_dependency(reason)
    base = tmp_path_factory.mktemp("secured-milvus")
    cert = make_certificate(base / "certs", valid_for=SECURED_CERT_LIFETIME)
    server = servers.start_milvus_server(
        base / "server",
        extra_args=["--authorization", "--tls-cert", str(cert.cert), "--tls-key", str(cert.key),
                    "--tls-ca", str(cert.ca)],
    )
    yield SecuredMilvus(server, f"https://127.0.0.1:{server.port}", cert)
    server.stop()


# ------------------------------------------------------------------ PostgreSQL
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.ProcessServer]:
    if servers.postgres_bin_dir() is None:
        missing_dependency("PostgreSQL (Debian package postgresql) is not installed")
    server = servers.start_postgres()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: servers.ProcessServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A SQLAlchemy URL (``postgresql+psycopg://``) of a fresh, empty database for this test."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    assert postgres_server.dsn is not None
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
