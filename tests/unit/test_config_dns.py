"""IVOZ_DNS_SERVERS: the nameservers of RFC 3263 resolution (docs/dns.md)."""

from __future__ import annotations

import pytest

from ivoz.config import Config
from ivoz.transport.dns import Nameserver, parse_servers


def test_default_is_the_system_resolver() -> None:
    assert Config.from_env({}).dns_servers == ()


def test_servers_from_the_environment() -> None:
    config = Config.from_env({"IVOZ_DNS_SERVERS": "127.0.0.1:5353, [::1]:53,192.0.2.53"})
    assert config.dns_servers == ("127.0.0.1:5353", "[::1]:53", "192.0.2.53")
    assert parse_servers(config.dns_servers) == (
        Nameserver("127.0.0.1", 5353),
        Nameserver("::1", 53),
        Nameserver("192.0.2.53", 53),
    )


@pytest.mark.parametrize(
    "raw", ["ns.example.com", "127.0.0.1:0", "127.0.0.1:dns", "[::1]x", "[::1"]
)
def test_bad_servers_name_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match=r"IVOZ_DNS_SERVERS: .* is not valid"):
        Config.from_env({"IVOZ_DNS_SERVERS": raw})
