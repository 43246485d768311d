"""Process configuration: where each role listens and where state lives.

Values come from defaults, then ``IVOZ_*`` environment variables, then command-line
flags (the CLI applies those with ``dataclasses.replace``). Everything listens on
127.0.0.1 unless told otherwise: a provider sets public addresses explicitly.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("proxy-users", "appserver", "relay", "portal")


@dataclass(frozen=True)
class Config:
    # Where generated files (SQLite database, self-signed certificate) live.
    data_dir: Path = Path("var")

    # SIP, users-facing (the reference platform's ports).
    sip_host: str = "127.0.0.1"
    sip_udp_port: int = 5060
    sip_tcp_port: int = 5060
    sip_tls_port: int = 5061
    sip_ws_port: int = 10080
    sip_wss_port: int = 10081
    # Advertised address in Via/Record-Route when it differs from sip_host (behind NAT).
    sip_advertised_host: str | None = None
    # TLS certificate and key (PEM); a self-signed pair is made in data_dir when unset.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Largest SIP message accepted on a stream transport, in bytes.
    sip_max_message_size: int = 65535
    # Connection limits of each role's SIP transport (TCP, TLS, WS and WSS together,
    # accepted and opened alike; docs/transports.md): at most this many open...
    sip_max_connections: int = 4096
    # ...and this many with one remote IP address (0: no limit per address, for many
    # phones behind one NAT address).
    sip_max_connections_per_ip: int = 64
    # Seconds a new connection has for its first bytes (TCP), its TLS handshake or its
    # WebSocket upgrade before it is closed.
    sip_handshake_timeout: float = 10.0
    sip_digest_algorithms: tuple[str, ...] = ("MD5",)  # registrar challenges; see docs/registrar.md
    # Run the C twins of the SIP parser's hot path when they were built (false: Python
    # only, the reference, to rule the C code out; docs/sip-messages.md).
    sip_compiled: bool = True
    # DNS servers for RFC 3263 next hops, "ip[:port]" each (docs/dns.md); empty: the
    # system's (/etc/resolv.conf).
    dns_servers: tuple[str, ...] = ()
    appserver_host: str = "127.0.0.1"  # application server SIP listener (UDP and TCP)
    appserver_port: int = 5062
    # "host:port" (UDP) of the users proxy for B-legs; default sip_host:sip_udp_port.
    appserver_proxy: str | None = None

    # Media relay: ng control socket (UDP) and the RTP port range.
    ng_host: str = "127.0.0.1"
    ng_port: int = 22222
    rtp_host: str = "127.0.0.1"
    rtp_port_min: int = 13000
    rtp_port_max: int = 19000
    relay_max_sessions: int = 0  # calls a relay accepts before answering "load limit"; 0: no limit

    # Configuration database: SQLite file in data_dir unless a URL is given.
    database_url: str | None = None

    # Portal / REST API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Secret for signing API tokens; generated into data_dir when unset.
    api_secret: str | None = None
    # Serve the API over HTTPS with the node's certificate (tls_cert/tls_key, or the
    # self-signed one in data_dir).
    api_tls: bool = False

    # Live state: in-process memory unless a Redis URL is given.
    redis_url: str | None = None

    # Demo platform secret (passwords of the demo users and administrators).
    demo_secret: str | None = None

    roles: tuple[str, ...] = field(default=ROLES)

    def __post_init__(self) -> None:
        # Checked when built, so that a flag (dataclasses.replace) is checked like a variable.
        if self.sip_max_connections < 1:
            _invalid("sip_max_connections", self.sip_max_connections, "at least 1")
        if self.sip_max_connections_per_ip < 0:
            _invalid("sip_max_connections_per_ip", self.sip_max_connections_per_ip, "0 or more")
        for server in self.dns_servers:
            if not _is_ip_port(server):
                _invalid("dns_servers", ",".join(self.dns_servers), "IP[:port] each")
        timeout = self.sip_handshake_timeout
        if not (math.isfinite(timeout) and timeout > 0):
            _invalid("sip_handshake_timeout", timeout, "a positive number of seconds")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ivoz.sqlite3').resolve()}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        """Defaults overridden by ``IVOZ_<FIELD>`` variables (``IVOZ_SIP_UDP_PORT=5070``)."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"IVOZ_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _convert(f.name, f.type, raw)
        return cls(**values)  # type: ignore[arg-type]


def _is_ip_port(text: str) -> bool:
    """``192.0.2.53``, ``192.0.2.53:5353``, ``2001:db8::53`` or ``[2001:db8::53]:5353``."""
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket:
            return False
        if rest:
            if not rest.startswith(":"):
                return False
            port = rest[1:]
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return port.isdigit() and 0 < int(port) < 65536


def _invalid(name: str, value: object, expected: str) -> None:
    raise ValueError(f"IVOZ_{name.upper()}: {value!r} is not valid (must be {expected})")


def _convert(name: str, type_: object, raw: str) -> object:
    text = str(type_)
    if text == "bool":
        if raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if raw.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"IVOZ_{name.upper()}: {raw!r} is not a boolean (true/false)")
    try:
        if "int" in text and "str" not in text:
            return int(raw)
        if text == "float":
            return float(raw)
        if "Path" in text:
            return Path(raw) if raw else None
        if "tuple" in text:
            return tuple(r.strip() for r in raw.split(",") if r.strip())
    except ValueError as exc:
        raise ValueError(f"IVOZ_{name.upper()}: {raw!r} is not valid ({exc})") from None
    return raw or None if "None" in text else raw
