"""Start real servers on 127.0.0.1 for tests: Prometheus, Alertmanager, moto S3,
milvus-lite, Milvus 2.3.5 and PostgreSQL.

Each ``start_*`` returns a handle with ``url`` and ``stop()`` once the server
answers its readiness check (polled with a timeout, never a fixed sleep).  A
server that does not come up raises ``ServerStartError`` with the tail of its
log.  Ports are picked free on 127.0.0.1; a start that loses the race for its
port is retried.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.wait import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_SERVERS_DIR = REPO_ROOT / ".test-servers"
MILVUS_VENV = TEST_SERVERS_DIR / "milvus-venv"
MILVUS_BIN_CACHE = TEST_SERVERS_DIR / "milvus-bin"
MILVUS_SERVER_SCRIPT = REPO_ROOT / "scripts" / "milvus-server.py"

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
PROMTOOL = "promtool"
AMTOOL = "amtool"


class ServerStartError(RuntimeError):
    pass


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the test process dies.

    A killed or crashed pytest run would otherwise leave servers running and
    holding ports.  (Linux ties this to the thread that forked: start servers
    from the main thread, as pytest fixtures do.)
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """The same as ``_die_with_parent`` done by util-linux's setpriv, so Popen needs no preexec_fn.

    A preexec_fn makes Python fork instead of vfork, and gRPC's fork handlers (pymilvus is loaded in
    the test process) then run in the child and sometimes abort it before it can exec (seen as an
    Alertmanager "exited with -6" and an epoll error in its log).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ProcessServer:
    """A server running as a child process."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    config_path: Path | None = None
    metrics_url: str | None = None  # Milvus: its Prometheus endpoint
    dsn: str | None = None  # PostgreSQL: libpq connection string
    info: dict[str, Any] = field(default_factory=dict)  # whatever else the server reported
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        """Same as ``url``: the name pymilvus' ``MilvusClient(uri=...)`` uses."""
        return self.url

    def reload(self) -> int:
        """Prometheus/Alertmanager: re-read the config file (``POST /-/reload``)."""
        return _post(f"{self.url}/-/reload")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for fn in self._cleanup:
            fn()
        self._cleanup.clear()

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return _tail(self.log_path, 200)

    def __enter__(self) -> ProcessServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    ready: Callable[[subprocess.Popen[bytes]], bool],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"

    def child_setup() -> None:
        _die_with_parent()
        if preexec_fn is not None:
            preexec_fn()

    if preexec_fn is None and shutil.which("setpriv"):
        argv, setup = _with_parent_death_signal(argv), None
    else:
        setup = child_setup
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            preexec_fn=setup,
        )
    finally:
        log.close()
    try:
        wait_for(
            lambda: proc.poll() is not None or ready(proc),
            timeout=timeout,
            interval=0.05,
            message=f"{name} not ready in time",
        )
    except AssertionError as exc:
        proc.kill()
        proc.wait(timeout=5)
        raise ServerStartError(f"{exc}; log {log_path}:\n{_tail(log_path)}") from None
    if proc.poll() is not None:
        raise ServerStartError(f"{name} exited with {proc.returncode}; log {log_path}:\n{_tail(log_path)}")
    return proc, log_path


def _retry_on_port_clash(start: Callable[[int], ProcessServer], attempts: int = 3) -> ProcessServer:
    last: ServerStartError | None = None
    for _ in range(attempts):
        try:
            return start(free_port())
        except ServerStartError as exc:
            if "address already in use" not in str(exc).lower():
                raise
            last = exc
    assert last is not None
    raise last


# ----------------------------------------------------------------- Prometheus
def binary_path(name: str) -> str | None:
    return shutil.which(name)


def prometheus_config(
    scrape_targets: dict[str, Sequence[str]] | Sequence[str] | None = None,
    rule_files: Sequence[str] = (),
    alertmanager_url: str | None = None,
    *,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    metrics_path: str = "/metrics",
) -> dict[str, Any]:
    """A prometheus.yml as a dict. ``scrape_targets``: ``["127.0.0.1:9091"]`` or ``{"job": [...]}``."""
    if scrape_targets is None:
        jobs: dict[str, Sequence[str]] = {}
    elif isinstance(scrape_targets, dict):
        jobs = scrape_targets
    else:
        jobs = {"targets": list(scrape_targets)}
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "scrape_configs": [
            {"job_name": job, "metrics_path": metrics_path, "static_configs": [{"targets": list(targets)}]}
            for job, targets in jobs.items()
        ],
    }
    if rule_files:
        config["rule_files"] = list(rule_files)
    if alertmanager_url:
        target = alertmanager_url.split("://", 1)[-1].rstrip("/")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    return config


def start_prometheus(
    tmpdir: str | Path,
    *,
    config_yaml: str | None = None,
    scrape_targets: dict[str, Sequence[str]] | Sequence[str] | None = None,
    rule_files: dict[str, str] | Sequence[str | Path] = (),
    alertmanager_url: str | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> ProcessServer:
    """Run /usr/bin/prometheus on 127.0.0.1 with a fresh TSDB.

    ``rule_files``: paths, or ``{"name.yml": "<yaml text>"}`` written into
    ``tmpdir``.  ``config_yaml`` replaces the generated config entirely.
    ``--rules.alert.resend-delay=1s`` makes the first alert reach Alertmanager
    on the first evaluations instead of a minute later.
    The handle has ``config_path`` and ``reload()``.
    """
    binary = binary_path(PROMETHEUS)
    if binary is None:
        raise ServerStartError("prometheus is not installed (scripts/install-test-deps.sh)")
    base = Path(tmpdir)
    base.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    if isinstance(rule_files, dict):
        for name, text in rule_files.items():
            path = base / name
            path.write_text(text)
            paths.append(str(path))
    else:
        paths = [str(Path(p).resolve()) for p in rule_files]
    config_path = base / "prometheus.yml"
    if config_yaml is not None:
        config_path.write_text(config_yaml)
    else:
        config = prometheus_config(
            scrape_targets,
            paths,
            alertmanager_url,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
        )
        config_path.write_text(yaml.safe_dump(config))

    def start(port: int) -> ProcessServer:
        data = Path(tempfile.mkdtemp(prefix="tsdb-", dir=base))
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--rules.alert.resend-delay=1s",
            "--web.enable-lifecycle",
            *extra_args,
        ]
        url = f"http://127.0.0.1:{port}"
        proc, log = _spawn("prometheus", argv, base, lambda _: _http_ok(f"{url}/-/ready"), timeout=timeout)
        return ProcessServer("prometheus", url, port, proc, log, base, config_path=config_path)

    return _retry_on_port_clash(start)


def start_alertmanager(
    tmpdir: str | Path, config_yaml: str, *, extra_args: Sequence[str] = (), timeout: float = 30.0
) -> ProcessServer:
    """Run prometheus-alertmanager on 127.0.0.1, gossip off (``--cluster.listen-address=``)."""
    binary = binary_path(ALERTMANAGER)
    if binary is None:
        raise ServerStartError("prometheus-alertmanager is not installed (scripts/install-test-deps.sh)")
    base = Path(tmpdir)
    base.mkdir(parents=True, exist_ok=True)
    config_path = base / "alertmanager.yml"
    config_path.write_text(config_yaml)

    def start(port: int) -> ProcessServer:
        data = Path(tempfile.mkdtemp(prefix="am-", dir=base))
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            *extra_args,
        ]
        url = f"http://127.0.0.1:{port}"
        proc, log = _spawn("alertmanager", argv, base, lambda _: _http_ok(f"{url}/-/ready"), timeout=timeout)
        return ProcessServer("alertmanager", url, port, proc, log, base, config_path=config_path)

    return _retry_on_port_clash(start)


def _post(url: str) -> int:
    req = urllib.request.Request(url, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


# ----------------------------------------------------------------- moto S3
@dataclass
class MotoS3:
    """moto's S3 server in this process (a thread), on 127.0.0.1."""

    url: str
    port: int
    _server: Any
    region: str = "us-east-1"
    access_key: str = "testing"  # moto accepts any credentials
    secret_key: str = "testing"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def reset(self) -> None:
        """Drop every bucket and object (moto's own reset API)."""
        _post(f"{self.url}/moto-api/reset")

    def stop(self) -> None:
        self._server.stop()


def start_moto_s3(timeout: float = 30.0) -> MotoS3:
    import logging

    from moto.server import ThreadedMotoServer

    # werkzeug logs every request to stderr; the test output is no place for it.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _http_ok(f"{url}/moto-api/"), timeout=timeout, message="moto server not ready")
    return MotoS3(url=url, port=port, _server=server)


# ----------------------------------------------------------------- Milvus
def start_milvus_lite_server(data_dir: str | Path, *, timeout: float = 60.0) -> ProcessServer:
    """``milvus-lite server`` (our venv's milvus-lite 3.2.2) on 127.0.0.1; ``uri`` for MilvusClient."""
    exe = Path(sys.executable).parent / "milvus-lite"
    if not exe.exists():
        found = shutil.which("milvus-lite")
        if found is None:
            raise ServerStartError("milvus-lite is not installed in this venv")
        exe = Path(found)
    base = Path(data_dir)

    def start(port: int) -> ProcessServer:
        argv = [str(exe), "server", "--data-dir", str(base / "data"), "--host", "127.0.0.1", "--port", str(port)]
        log = base / "milvus-lite.log"

        def ready(_: subprocess.Popen[bytes]) -> bool:
            # It prints this once the gRPC server is bound.
            return "server listening on" in _tail(log, 5) and _tcp_open(port)

        proc, log = _spawn("milvus-lite", argv, base, ready, timeout=timeout)
        uri = f"http://127.0.0.1:{port}"
        return ProcessServer("milvus-lite", uri, port, proc, log, base)

    return _retry_on_port_clash(start)


def milvus_server_available() -> str | None:
    """None when the Milvus 2.3.5 venv is usable, else why not."""
    python = MILVUS_VENV / "bin" / "python"
    if not python.exists():
        return f"{python} missing: run scripts/install-test-deps.sh"
    return None


def start_milvus_server(
    data_dir: str | Path, *, timeout: float = 120.0, extra_args: list[str] | None = None
) -> ProcessServer:
    """A real Milvus 2.3.5 standalone (scripts/milvus-server.py) on 127.0.0.1.

    ``uri``: gRPC for pymilvus; ``metrics_url``: ``http://127.0.0.1:P/metrics``
    (``/healthz`` beside it); ``info``: the READY line (ports, pid, startup
    seconds, whether it runs in its own network namespace).
    """
    reason = milvus_server_available()
    if reason:
        raise ServerStartError(reason)
    base = Path(data_dir)
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        port, metrics_port = free_port(), free_port()
        run_dir = base / f"milvus-{attempt}"
        argv = [
            str(MILVUS_VENV / "bin" / "python"),
            str(MILVUS_SERVER_SCRIPT),
            "--base-dir",
            str(run_dir),
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--bin-cache",
            str(MILVUS_BIN_CACHE),
            "--timeout",
            str(timeout),
            *(extra_args or []),
        ]
        ready_line: dict[str, Any] = {}
        log_path = base / f"milvus-server-{attempt}.log"

        def ready(
            _: subprocess.Popen[bytes], log_path: Path = log_path, ready_line: dict[str, Any] = ready_line
        ) -> bool:
            for line in _tail(log_path, 50).splitlines():
                if line.startswith("READY "):
                    ready_line.update(json.loads(line[6:]))
                    return True
            return False

        try:
            proc, log = _spawn(f"milvus-server-{attempt}", argv, base, ready, timeout=timeout + 30)
        except ServerStartError as exc:
            if "cannot bind" in str(exc) and attempt < 2:
                continue
            raise
        uri = f"http://127.0.0.1:{ready_line['proxy_port']}"
        metrics_url = f"http://127.0.0.1:{ready_line['metrics_port']}/metrics"
        return ProcessServer(
            "milvus", uri, int(ready_line["proxy_port"]), proc, log, run_dir, metrics_url=metrics_url, info=ready_line
        )
    raise ServerStartError("could not start milvus")


# ----------------------------------------------------------------- PostgreSQL
def postgres_bin_dir() -> Path | None:
    """Debian's postgresql server binaries, newest version first."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name), reverse=True
    )
    if found:
        return found[0].parent
    which = shutil.which("postgres")
    return Path(which).parent if which else None


def start_postgres(*, timeout: float = 60.0) -> ProcessServer:
    """A throwaway PostgreSQL on 127.0.0.1.

    Runs as the ``postgres`` user when we are root (initdb refuses root).  The
    data dir lives in its own /tmp dir (pytest's tmp dirs are private to root,
    so the postgres user could not enter them) and is removed on ``stop()``.
    ``url`` is a SQLAlchemy URL (``postgresql+psycopg://...``), ``dsn`` a libpq one.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise ServerStartError("PostgreSQL is not installed (scripts/install-test-deps.sh)")
    as_root = os.geteuid() == 0
    preexec: Callable[[], None] | None = None
    if as_root:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServerStartError("running as root but there is no 'postgres' user to run PostgreSQL as") from exc

        def preexec() -> None:
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

    base = Path(tempfile.mkdtemp(prefix="pg-test-"))
    if as_root:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data = base / "data"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    init = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        capture_output=True,
        env=env,
        preexec_fn=preexec,
        timeout=timeout,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise ServerStartError(f"initdb failed: {init.stderr.decode(errors='replace')[-2000:]}")

    def start(port: int) -> ProcessServer:
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={port}",
            "-c",
            f"unix_socket_directories={base}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        log_dir = base / "log"

        def ready(_: subprocess.Popen[bytes]) -> bool:
            probe = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-t", "1"],
                capture_output=True,
                check=False,
            )
            return probe.returncode == 0

        if as_root:
            log_dir.mkdir(exist_ok=True)
            os.chown(log_dir, pw.pw_uid, pw.pw_gid)
        proc, log = _spawn("postgres", argv, log_dir, ready, timeout=timeout, env=env, preexec_fn=preexec)
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        server = ProcessServer("postgres", url, port, proc, log, base, dsn=dsn)
        server._cleanup.append(lambda: shutil.rmtree(base, ignore_errors=True))
        return server

    return _retry_on_port_clash(start)


def stop_all(servers: Sequence[Any]) -> None:
    """Stop each server, continuing past failures (for fixture teardown)."""
    errors = []
    for server in servers:
        try:
            server.stop()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


__all__ = [
    "MotoS3",
    "ProcessServer",
    "ServerStartError",
    "free_port",
    "milvus_server_available",
    "postgres_bin_dir",
    "prometheus_config",
    "start_alertmanager",
    "start_milvus_lite_server",
    "start_milvus_server",
    "start_moto_s3",
    "start_postgres",
    "start_prometheus",
    "stop_all",
]
