"""TLS on a TCP port: the handshake, the protocol version, the chain and the certificate's dates.

Two handshakes: one that accepts any certificate (so an expired or self-signed one can still be
read and reported), then one that verifies the chain against the given CA bundle (or the system's)
and the host name. Every socket has a timeout; failures become ``IntegrationError`` or a plain
"no TLS here" answer, never a library exception.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.errors import IntegrationError


@dataclass(frozen=True)
class TlsProbe:
    host: str
    port: int
    tls: bool  # False: the port answered, but not with TLS
    protocol: str | None = None  # TLSv1.3
    cipher: str | None = None
    subject: str | None = None
    issuer: str | None = None
    not_after: dt.datetime | None = None
    fingerprint: str | None = None  # sha256 of the certificate, to tell a renewed one apart
    verified: bool = False
    verify_error: str | None = None
    error: str | None = None  # why the handshake failed when tls is False

    def days_left(self, now: dt.datetime) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - now).total_seconds() / 86400

    def to_data(self) -> dict[str, Any]:
        return {
            "host": self.host, "port": self.port, "tls": self.tls, "protocol": self.protocol,
            "cipher": self.cipher, "subject": self.subject, "issuer": self.issuer,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "fingerprint": self.fingerprint, "verified": self.verified, "verify_error": self.verify_error,
        }


def endpoint(uri: str, default_port: int = 19530) -> tuple[str, int]:
    """``https://milvus.example:19530`` -> (host, port)."""
    parts = urlsplit(uri if "://" in uri else f"tcp://{uri}")
    if not parts.hostname:
        raise IntegrationError(f"`{uri}` names no host to probe for TLS.", system="tls")
    return parts.hostname, parts.port or default_port


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        raise IntegrationError(f"Cannot reach {host}:{port}: {exc.strerror or type(exc).__name__}",
                               system="tls") from None


def _name(cert: Any) -> str:
    from cryptography.x509.oid import NameOID

    names = cert.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.rfc4514_string()


def probe(host: str, port: int, *, ca_file: str | None = None, server_name: str | None = None,
          client_cert: tuple[str, str] | None = None, timeout_s: float = 5.0) -> TlsProbe:
    """``client_cert``: (certificate, key) to present to a server that wants mutual TLS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    name = server_name or host
    loose = ssl.create_default_context()
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    # gRPC servers only speak HTTP/2; offering it keeps a strict server from closing the handshake.
    loose.set_alpn_protocols(["h2"])
    if client_cert:
        loose.load_cert_chain(*client_cert)
    with _connect(host, port, timeout_s) as raw:
        try:
            with loose.wrap_socket(raw, server_hostname=name) as tls_sock:
                der = tls_sock.getpeercert(binary_form=True)
                protocol = tls_sock.version()
                cipher = (tls_sock.cipher() or (None,))[0]
        except (ssl.SSLError, OSError) as exc:
            return TlsProbe(host, port, tls=False, error=_reason(exc))
    if not der:
        return TlsProbe(host, port, tls=True, protocol=protocol, cipher=cipher, error="no certificate presented")
    cert = x509.load_der_x509_certificate(der)
    verified, verify_error = _verify(host, port, name, ca_file, client_cert, timeout_s)
    return TlsProbe(
        host, port, tls=True, protocol=protocol, cipher=cipher, subject=_name(cert.subject),
        issuer=_name(cert.issuer), not_after=cert.not_valid_after_utc,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(), verified=verified, verify_error=verify_error,
    )


def _verify(host: str, port: int, name: str, ca_file: str | None, client_cert: tuple[str, str] | None,
            timeout_s: float) -> tuple[bool, str | None]:
    try:
        strict = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        if client_cert:
            strict.load_cert_chain(*client_cert)
    except (OSError, ssl.SSLError) as exc:
        return False, f"cannot read the CA bundle or client certificate: {_reason(exc)}"
    strict.set_alpn_protocols(["h2"])
    with _connect(host, port, timeout_s) as raw:
        try:
            with strict.wrap_socket(raw, server_hostname=name):
                return True, None
        except ssl.SSLCertVerificationError as exc:
            return False, exc.verify_message or _reason(exc)
        except (ssl.SSLError, OSError) as exc:
            return False, _reason(exc)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc) or type(exc).__name__
