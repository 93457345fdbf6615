#!/usr/bin/env python3
"""Run a real Milvus 2.3.5 standalone server reachable only on 127.0.0.1.

Run it with the interpreter of the separate venv that holds PyPI ``milvus==2.3.5``
(``.test-servers/milvus-venv/bin/python``, made by scripts/install-test-deps.sh).
The package's ``client`` extra pins pymilvus<2.4, and its top-level module is
the generic name ``milvus``; a venv of its own keeps both away from the app's
dependencies.  Clients use our own pymilvus over gRPC.

Why a real server at all: milvus-lite serves no Prometheus metrics, and the
health and capacity reports read ``/metrics``.

    .test-servers/milvus-venv/bin/python scripts/milvus-server.py \\
        --base-dir DIR --port 19530 --metrics-port 9091 [--bin-cache DIR]

Prints one line ``READY {"proxy_port": ..., "metrics_port": ..., ...}`` on
stdout once ``/healthz`` answers OK, then stays up until SIGTERM/SIGINT, and
exits 1 if milvus itself dies.  ``--base-dir`` must be fresh (empty or absent):
a restart on a reused dir panicked once.

Isolation: Milvus 2.3 binds its nine gRPC and HTTP ports on every interface
whatever ``<component>.ip`` says (that only sets the advertised address), and
its embedded etcd always takes 2379/2380.  So, when allowed (root, as in CI),
this script binds the two requested ports on 127.0.0.1 first, then moves itself
and Milvus into a private network namespace, and forwards connections from
those two host ports into it.  Nothing else is reachable from outside, and
several servers can run at once without port clashes.  Without the privilege
(``--no-isolate`` or unshare failing) Milvus runs directly on the host.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import milvus

COMPONENTS_WITH_IP = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
INNER_PROXY_PORT = 19530
INNER_METRICS_PORT = 9091


def _fill_bin_cache(cache: Path) -> None:
    """Unpack milvus' binaries once into a shared dir.

    The package unpacks ~250 MB into every base dir (5 s); we want a fresh
    base dir per run, so share the binaries instead.  The marker names the
    package build, so an upgraded package refills the cache.
    """
    lzma_dir = Path(milvus.__file__).parent / "data" / "bin"
    digest = hashlib.sha256()
    for item in sorted(lzma_dir.iterdir()):
        digest.update(item.name.encode())
        digest.update(str(item.stat().st_size).encode())
    marker = cache / ".complete"
    if marker.exists() and marker.read_text() == digest.hexdigest():
        return
    # Unpack beside the cache and rename, so a concurrent run never sees
    # half-written binaries.
    scratch = cache.parent / f".{cache.name}.tmp-{os.getpid()}"
    milvus._initialize_data_files(str(scratch))
    (scratch / "bin" / ".complete").write_text(digest.hexdigest())
    if cache.exists():
        old = cache.parent / f".{cache.name}.old-{os.getpid()}"
        cache.rename(old)
        subprocess.run(["rm", "-rf", str(old)], check=False)
    # OSError: another run filled it first; theirs is as good as ours.
    with contextlib.suppress(OSError):
        (scratch / "bin").rename(cache)
    subprocess.run(["rm", "-rf", str(scratch)], check=False)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class _PopenDyingWithUs(subprocess.Popen[bytes]):
    """Popen whose child is killed when this wrapper dies, even by SIGKILL.

    The milvus package starts its binary itself; without this a killed test
    run would leave a 300 MB Milvus behind.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("preexec_fn", _die_with_parent)
        super().__init__(*args, **kwargs)  # type: ignore[call-overload]


def _enter_private_netns() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        print(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}; running milvus on the host", file=sys.stderr)
        return False
    # A new namespace has only `lo`, and it starts down.
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH", fcntl.ioctl(sock, siocgifflags, ifreq)[:18])[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))
    return True


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(262144)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _serve_forward(listener: socket.socket, target_port: int) -> None:
    """Accept on a host-namespace socket, connect inside the private one."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", target_port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _run(a: socket.socket = client, b: socket.socket = upstream) -> None:
            back = threading.Thread(target=_pump, args=(b, a), daemon=True)
            back.start()
            _pump(a, b)
            back.join()
            a.close()
            b.close()

        threading.Thread(target=_run, daemon=True).start()


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-dir", help="fresh directory for config, logs and data")
    parser.add_argument("--port", type=int, help="gRPC port on 127.0.0.1 (what pymilvus connects to)")
    parser.add_argument("--metrics-port", type=int, help="port on 127.0.0.1 for /metrics and /healthz")
    parser.add_argument("--bin-cache", help="shared dir for the unpacked milvus binaries (saves 5 s and 250 MB a run)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for /healthz")
    parser.add_argument("--no-isolate", action="store_true", help="run milvus on the host network")
    parser.add_argument("--prepare-only", action="store_true", help="only fill --bin-cache, then exit")
    parser.add_argument("--authorization", action="store_true", help="common.security.authorizationEnabled: true")
    parser.add_argument("--tls-cert", help="server certificate (PEM): turns on TLS (tlsMode 1) on the gRPC port")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--tls-ca", help="CA certificate (PEM) for tls.caPemPath")
    parser.add_argument("--tls-mode", type=int, choices=(1, 2), default=1, help="1: server TLS, 2: mutual TLS")
    args = parser.parse_args()

    if args.prepare_only:
        if not args.bin_cache:
            parser.error("--prepare-only needs --bin-cache")
        cache = Path(args.bin_cache).resolve()
        cache.parent.mkdir(parents=True, exist_ok=True)
        _fill_bin_cache(cache)
        return 0
    if not (args.base_dir and args.port and args.metrics_port):
        parser.error("--base-dir, --port and --metrics-port are required")

    base = Path(args.base_dir).resolve()
    if base.exists() and any(base.iterdir()):
        print(f"--base-dir {base} is not empty; Milvus needs a fresh one", file=sys.stderr)
        return 2
    base.mkdir(parents=True, exist_ok=True)
    if args.bin_cache:
        cache = Path(args.bin_cache).resolve()
        cache.parent.mkdir(parents=True, exist_ok=True)
        _fill_bin_cache(cache)
        (base / "bin").symlink_to(cache, target_is_directory=True)

    # Bound before entering the namespace, so they stay on the host's loopback.
    listeners: list[tuple[socket.socket, int]] = []
    isolated = False
    if not args.no_isolate:
        try:
            listeners = [(_listen(args.port), INNER_PROXY_PORT), (_listen(args.metrics_port), INNER_METRICS_PORT)]
        except OSError as exc:
            print(f"cannot bind 127.0.0.1:{args.port} or :{args.metrics_port}: {exc}", file=sys.stderr)
            return 2
        isolated = _enter_private_netns()
        if not isolated:
            for sock, _ in listeners:
                sock.close()
            listeners = []

    milvus.subprocess = types.SimpleNamespace(Popen=_PopenDyingWithUs, TimeoutExpired=subprocess.TimeoutExpired)
    config = milvus.MilvusServerConfig()
    server = milvus.MilvusServer(config, wait_for_started=False)
    server.set_base_dir(str(base))
    # Through update(), not set(): then the package fails when the port is
    # taken instead of quietly moving to the next one.
    config.update(proxy_port=INNER_PROXY_PORT if isolated else args.port)
    for component in COMPONENTS_WITH_IP:
        config.set(f"{component}.ip", "127.0.0.1")
    if args.authorization:
        config.set("authorization_enabled", True)
    if args.tls_cert:
        if not args.tls_key:
            parser.error("--tls-cert needs --tls-key")
        config.set("tls_mode", args.tls_mode)
        config.set("server_pem_path", str(Path(args.tls_cert).resolve()))
        config.set("server_key_path", str(Path(args.tls_key).resolve()))
        config.set("ca_pem_path", str(Path(args.tls_ca or args.tls_cert).resolve()))
    server.webservice_port = INNER_METRICS_PORT if isolated else args.metrics_port

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    started = time.monotonic()
    server.start()
    try:
        server.wait_started(timeout=int(args.timeout * 1000))
    except (TimeoutError, RuntimeError) as exc:
        print(f"milvus did not become healthy: {exc}; logs in {base / 'logs'}", file=sys.stderr)
        server.stop()
        return 1
    if not isolated and server.webservice_port != args.metrics_port:
        # The package moves to the next free port by itself; callers must know.
        print(f"metrics port {args.metrics_port} was taken, milvus uses {server.webservice_port}", file=sys.stderr)
    for sock, inner_port in listeners:
        threading.Thread(target=_serve_forward, args=(sock, inner_port), daemon=True).start()

    ready = {
        "proxy_port": args.port,
        "metrics_port": args.metrics_port if isolated else server.webservice_port,
        "pid": server.server_proc.pid,
        "isolated": isolated,
        "base_dir": str(base),
        "logs": str(base / "logs"),
        "startup_seconds": round(time.monotonic() - started, 2),
    }
    print("READY " + json.dumps(ready), flush=True)

    proc = server.server_proc
    code = 0
    while not stopping.wait(0.2):
        if proc.poll() is not None:
            print(f"milvus exited on its own with {proc.returncode}; logs in {base / 'logs'}", file=sys.stderr)
            code = 1
            break
    server.stop()
    for sock, _ in listeners:
        sock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
