"""Transport kinds, addresses and the origin of a received message."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """A SIP transport, spelled as in the Via header (RFC 3261 20.42, RFC 7118 5.2)."""

    UDP = "UDP"
    TCP = "TCP"
    TLS = "TLS"
    WS = "WS"
    WSS = "WSS"

    @property
    def reliable(self) -> bool:
        """Stream-based, connection-oriented (RFC 3261 18: everything but UDP here)."""
        return self is not Kind.UDP

    @property
    def framed_by_length(self) -> bool:
        """Messages are cut out of a byte stream by Content-Length (TCP, TLS)."""
        return self is Kind.TCP or self is Kind.TLS

    @property
    def secure(self) -> bool:
        return self is Kind.TLS or self is Kind.WSS

    @property
    def default_port(self) -> int:
        # RFC 3261 19.1.2: 5060 for UDP/TCP, 5061 for TLS; RFC 7118 has none: HTTP's.
        return _DEFAULT_PORTS[self]

    @classmethod
    def from_via(cls, name: str) -> Kind | None:
        """The kind named by a Via transport token, or None for one we do not speak."""
        try:
            return cls(name.upper())
        except ValueError:
            return None


_DEFAULT_PORTS = {Kind.UDP: 5060, Kind.TCP: 5060, Kind.TLS: 5061, Kind.WS: 80, Kind.WSS: 443}


@dataclass(frozen=True, slots=True)
class Address:
    """Where to send: a transport, a host (IP address or name) and a port."""

    transport: Kind
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.value.lower()}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from: the peer, our socket, and the connection if any.

    ``connection`` is None for UDP; for stream and WebSocket transports it is the id to
    pass to :meth:`ivoz.transport.Layer.send` so that the answer and later requests to
    this peer go back over the same connection (RFC 3261 18.2.2, RFC 5923, RFC 7118).
    """

    transport: Kind
    remote: Address
    local: Address
    connection: int | None = None
