"""The TLS certificate of a node: SIP over TLS/WSS and the portal's HTTPS share it.

The certificate and key come from configuration (``tls_cert``/``tls_key``). When both
are unset, a self-signed pair is made on first start in ``<data_dir>/tls/`` (an ECDSA
P-256 key, subjectAltName ``localhost``, 127.0.0.1 and the listen address) and reused
on every later start, so that clients can pin it (``sipsak --tls-ca-cert``). No I/O
beyond those files: both the transport and the portal import it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_FILE = "sip-cert.pem"
KEY_FILE = "sip-key.pem"
# Validity of a generated certificate, in days.
SELF_SIGNED_DAYS = 3650


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """A PEM certificate (chain) and its private key."""

    cert: Path
    key: Path


def certificate_files(
    data_dir: Path, host: str, cert: Path | None = None, key: Path | None = None
) -> CertificateFiles:
    """The configured pair, or the self-signed one in ``data_dir`` (made when missing)."""
    if cert is not None or key is not None:
        if cert is None or key is None:
            raise ValueError("tls_cert and tls_key must be given together")
        return CertificateFiles(cert, key)
    directory = data_dir / "tls"
    files = CertificateFiles(directory / CERT_FILE, directory / KEY_FILE)
    if not (files.cert.exists() and files.key.exists()):
        make_self_signed(files, hosts=["localhost", "127.0.0.1", host])
    return files


def make_self_signed(files: CertificateFiles, hosts: list[str]) -> None:
    """Write a self-signed certificate valid for ``hosts`` (names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # unique, in order
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # Its own trust anchor: clients load this very file as their CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    files.cert.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key_pem)
    files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
