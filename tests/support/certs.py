"""Self-signed test certificates made with ``cryptography``: a CA and a server certificate it signs,
for 127.0.0.1 and localhost, valid for as long as a test needs (short, to exercise expiry)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SelfSignedCertificate:
    ca: Path
    cert: Path
    key: Path
    not_after: dt.datetime
    # A client certificate from the same CA, for mutual TLS.
    client_cert: Path
    client_key: Path


def make_certificate(directory: Path, *, valid_for: dt.timedelta, name: str = "milvus-test") -> SelfSignedCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_after = now + valid_for
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    def leaf(common_name: str, until: dt.datetime) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(until)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    def write(path: Path, cert: Any, key_path: Path, key: Any) -> None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))

    paths = SelfSignedCertificate(directory / "ca.pem", directory / "server.pem", directory / "server.key", not_after,
                                  directory / "client.pem", directory / "client.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = leaf(name, not_after)
    write(paths.cert, server_cert, paths.key, server_key)
    client_cert, client_key = leaf(f"{name}-client", now + dt.timedelta(days=365))
    write(paths.client_cert, client_cert, paths.client_key, client_key)
    return paths
