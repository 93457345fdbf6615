"""integrations/tls.py against real sockets: a TLS server in this process (Python's ssl with a
certificate from a test CA), a plain TCP server, and a closed port."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.errors import IntegrationError
from integrations.tls import endpoint, probe
from tests.support.certs import SelfSignedCertificate, make_certificate
from tests.support.servers import free_port


def _serve(listener: socket.socket, context: ssl.SSLContext | None, stop: threading.Event) -> None:
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        try:
            if context is not None:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            else:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        except (ssl.SSLError, OSError):
            pass
        finally:
            conn.close()


Serve = Callable[..., int]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    stops: list[tuple[threading.Event, socket.socket]] = []

    def start(cert: SelfSignedCertificate | None, *, minimum: ssl.TLSVersion | None = None) -> int:
        context = None
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert.cert, cert.key)
            if minimum:
                context.minimum_version = minimum
        listener = socket.create_server(("127.0.0.1", 0))
        stop = threading.Event()
        threading.Thread(target=_serve, args=(listener, context, stop), daemon=True).start()
        stops.append((stop, listener))
        return int(listener.getsockname()[1])

    yield start
    for stop, listener in stops:
        stop.set()
        listener.close()


def test_a_valid_certificate_verifies_against_its_ca_only(tmp_path: Path, serve: Serve) -> None:
    cert = make_certificate(tmp_path, valid_for=dt.timedelta(days=10))
    port = serve(cert)
    found = probe("127.0.0.1", port, ca_file=str(cert.ca), timeout_s=5)
    assert found.tls and found.verified and found.verify_error is None
    assert found.protocol in ("TLSv1.2", "TLSv1.3") and found.subject == "milvus-test"
    assert found.issuer == "milvus-test CA" and found.not_after == cert.not_after
    days = found.days_left(dt.datetime.now(dt.UTC))
    assert days is not None and 9.9 < days <= 10
    untrusted = probe("127.0.0.1", port, timeout_s=5)
    assert untrusted.tls and not untrusted.verified
    assert untrusted.verify_error == "unable to get local issuer certificate"
    assert untrusted.fingerprint == found.fingerprint


def test_an_expired_certificate_is_still_read_and_reported(tmp_path: Path, serve: Serve) -> None:
    cert = make_certificate(tmp_path, valid_for=dt.timedelta(minutes=-30))
    found = probe("127.0.0.1", serve(cert), ca_file=str(cert.ca), timeout_s=5)
    assert found.tls and not found.verified and found.verify_error == "certificate has expired"
    days = found.days_left(dt.datetime.now(dt.UTC))
    assert days is not None and days < 0


def test_a_plain_port_is_not_tls_and_a_closed_one_is_an_error(serve: Serve) -> None:
    plain = probe("127.0.0.1", serve(None), timeout_s=5)
    assert not plain.tls and plain.error
    with pytest.raises(IntegrationError, match=r"Cannot reach 127\.0\.0\.1"):
        probe("127.0.0.1", free_port(), timeout_s=2)


def test_endpoint_reads_host_and_port_from_the_milvus_uri() -> None:
    assert endpoint("https://milvus.prod.internal:19530") == ("milvus.prod.internal", 19530)
    assert endpoint("https://milvus.prod.internal") == ("milvus.prod.internal", 19530)
    assert endpoint("tcp://10.0.0.5:29530") == ("10.0.0.5", 29530)
    with pytest.raises(IntegrationError):
        endpoint("https://:19530")
