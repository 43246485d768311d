"""TLS for the SIP listeners (TLS and WSS): SSL contexts over the node's certificate.

The certificate files themselves (configured, or self-signed on first start) are
``ivoz.certificates``; the names are re-exported here for the transport's users.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from ivoz.certificates import (
    CERT_FILE,
    KEY_FILE,
    SELF_SIGNED_DAYS,
    CertificateFiles,
    certificate_files,
    make_self_signed,
)

__all__ = [
    "CERT_FILE",
    "KEY_FILE",
    "SELF_SIGNED_DAYS",
    "CertificateFiles",
    "certificate_files",
    "client_context",
    "make_self_signed",
    "server_context",
]


def server_context(files: CertificateFiles) -> ssl.SSLContext:
    """A server-side context for the TLS and WSS listeners (TLS 1.2 or newer)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key)
    return context


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """A client-side context for outgoing TLS connections (system CAs unless given)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
