"""RFC 3263 resolution (ivoz.transport.dns) against a real DNS server: dnsmasq on
127.0.0.1, records given on its command line, every query it receives counted from its
log. The cache runs on a fake clock, so TTL expiry needs no sleeping; the TTLs
themselves come from dnsmasq's answers (``--local-ttl``)."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import pytest

from ivoz.sip import URI
from ivoz.sip.locate import LocateError, Query
from ivoz.transport.dns import DnspythonBackend, Resolver, parse_servers
from support.dnsmasq import Dnsmasq, dnsmasq

pytestmark = pytest.mark.integration

RECORDS = [
    # NAPTR -> SRV -> A: TCP preferred over UDP (RFC 3263 4.1 example shape)
    "--naptr-record=naptr.ivoz.test,10,10,s,SIP+D2T,,_sip._tcp.naptr.ivoz.test",
    "--naptr-record=naptr.ivoz.test,20,10,s,SIP+D2U,,_sip._udp.naptr.ivoz.test",
    "--naptr-record=naptr.ivoz.test,5,10,s,SIPS+D2T,,_sips._tcp.naptr.ivoz.test",
    "--naptr-record=naptr.ivoz.test,1,10,u,E2U+sip,!^.*$!sip:info@ivoz.test!,",
    "--srv-host=_sip._tcp.naptr.ivoz.test,pbx1.ivoz.test,5070,0,10",
    "--srv-host=_sip._udp.naptr.ivoz.test,pbx2.ivoz.test,5080,0,10",
    "--srv-host=_sips._tcp.naptr.ivoz.test,pbx1.ivoz.test,5071,0,10",
    "--host-record=pbx1.ivoz.test,127.0.0.11",
    "--host-record=pbx2.ivoz.test,127.0.0.12,::1",
    # SRV only: two priorities
    "--srv-host=_sip._udp.srv.ivoz.test,backup.ivoz.test,5062,20,0",
    "--srv-host=_sip._udp.srv.ivoz.test,main.ivoz.test,5061,10,0",
    "--host-record=main.ivoz.test,127.0.0.21",
    "--host-record=backup.ivoz.test,127.0.0.22",
    # A only (and a TXT record, so that the name exists: NAPTR gets no data, not NXDOMAIN)
    "--host-record=plain.ivoz.test,127.0.0.31",
    "--txt-record=plain.ivoz.test,v=none",
    # a service decidedly not available (SRV target ".") beside an A record
    "--srv-host=_sip._udp.gone.ivoz.test",
    "--host-record=gone.ivoz.test,127.0.0.41",
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[Dnsmasq]:
    with dnsmasq(RECORDS, local_ttl=2) as running:
        yield running


def resolver_for(server: Dnsmasq, clock: Clock | None = None) -> Resolver:
    return Resolver(
        servers=parse_servers(server.server), clock=clock or Clock(), rng=random.Random(1)
    )


def hops(located: object) -> list[tuple[str, str, int]]:
    return [(t.transport, t.host, t.port) for t in located.targets]  # type: ignore[attr-defined]


async def test_naptr_srv_a(server: Dnsmasq) -> None:
    resolver = resolver_for(server)
    located = await resolver.locate(URI.parse("sip:naptr.ivoz.test"))
    assert hops(located) == [
        ("TLS", "127.0.0.11", 5071),
        ("TCP", "127.0.0.11", 5070),
        ("UDP", "127.0.0.12", 5080),
        ("UDP", "::1", 5080),
    ]
    assert located.ttl == 2  # dnsmasq's --local-ttl, the smallest TTL seen
    assert server.queries(name="naptr.ivoz.test") == [("NAPTR", "naptr.ivoz.test")]
    assert ("SRV", "_sip._tcp.naptr.ivoz.test") in server.queries()


async def test_naptr_sips_keeps_sips_services(server: Dnsmasq) -> None:
    located = await resolver_for(server).locate(URI.parse("sips:naptr.ivoz.test"))
    assert hops(located) == [("TLS", "127.0.0.11", 5071)]


async def test_naptr_udp_only_client(server: Dnsmasq) -> None:
    located = await resolver_for(server).locate(URI.parse("sip:naptr.ivoz.test"), supported={"UDP"})
    assert hops(located) == [("UDP", "127.0.0.12", 5080), ("UDP", "::1", 5080)]


async def test_srv_only_by_priority(server: Dnsmasq) -> None:
    located = await resolver_for(server).locate(URI.parse("sip:srv.ivoz.test"))
    assert hops(located) == [("UDP", "127.0.0.21", 5061), ("UDP", "127.0.0.22", 5062)]
    asked = [q for q in server.queries() if q[1].endswith("srv.ivoz.test")]
    assert asked[:4] == [
        ("NAPTR", "srv.ivoz.test"),
        ("SRV", "_sips._tcp.srv.ivoz.test"),
        ("SRV", "_sip._tcp.srv.ivoz.test"),
        ("SRV", "_sip._udp.srv.ivoz.test"),
    ]


async def test_a_only(server: Dnsmasq) -> None:
    located = await resolver_for(server).locate(URI.parse("sip:bob@plain.ivoz.test"))
    assert hops(located) == [("UDP", "127.0.0.31", 5060)]
    located = await resolver_for(server).locate(URI.parse("sips:bob@plain.ivoz.test"))
    assert hops(located) == [("TLS", "127.0.0.31", 5061)]
    located = await resolver_for(server).locate(URI.parse("sip:plain.ivoz.test:5099;transport=tcp"))
    assert hops(located) == [("TCP", "127.0.0.31", 5099)]


async def test_srv_dot_means_not_available(server: Dnsmasq) -> None:
    with pytest.raises(LocateError):
        await resolver_for(server).locate(URI.parse("sip:gone.ivoz.test"))
    assert ("A", "gone.ivoz.test") not in server.queries()


async def test_ttl_expiry(server: Dnsmasq) -> None:
    clock = Clock()
    resolver = resolver_for(server, clock)
    uri = URI.parse("sip:srv.ivoz.test")
    before = len(server.queries())
    first = await resolver.locate(uri)
    sent = len(server.queries()) - before
    assert sent == resolver.stats.sent > 0
    clock.now += 1.5  # within dnsmasq's 2 s TTL: nothing reaches the server
    again = await resolver.locate(uri)
    assert again.targets == first.targets
    assert len(server.queries()) - before == sent
    assert again.ttl == 0  # 0.5 s left, rounded down
    clock.now += 1  # past the TTL: the positive answers are asked again
    await resolver.locate(uri)
    assert len(server.queries()) - before > sent
    asked_again = server.queries()[before + sent :]
    assert ("SRV", "_sip._udp.srv.ivoz.test") in asked_again
    assert ("A", "main.ivoz.test") in asked_again


async def test_nxdomain_negative_caching(server: Dnsmasq) -> None:
    clock = Clock()
    resolver = resolver_for(server, clock)
    uri = URI.parse("sip:nobody.ivoz.test")
    with pytest.raises(LocateError):
        await resolver.locate(uri)
    asked = server.queries(name="nobody.ivoz.test")
    assert asked == [
        ("NAPTR", "nobody.ivoz.test"),
        ("A", "nobody.ivoz.test"),
        ("AAAA", "nobody.ivoz.test"),
    ]
    with pytest.raises(LocateError):
        await resolver.locate(uri)
    assert server.queries(name="nobody.ivoz.test") == asked  # all NXDOMAINs from the cache
    assert resolver.stats.negative_hits >= 6
    # dnsmasq's NXDOMAIN has no SOA: kept negative_ttl_without_soa (5 s), then asked again
    clock.now += resolver.negative_ttl_without_soa
    with pytest.raises(LocateError):
        await resolver.locate(uri)
    assert server.queries(name="nobody.ivoz.test") == asked * 2


async def test_raw_answers(server: Dnsmasq) -> None:
    backend = DnspythonBackend(parse_servers(server.server), timeout=2)
    answer = await backend(Query("nobody.ivoz.test", "A"))
    assert answer.records == () and answer.failure is None
    refused = await backend(Query("example.org", "A"))  # not ours, no upstream: REFUSED
    assert refused.failure is not None


async def test_silent_server_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        resolver = Resolver(servers=parse_servers(f"127.0.0.1:{port}"), timeout=0.3)
        answer = await resolver.query(Query("x.ivoz.test", "A"))
        assert answer.failure == "timeout"
        with pytest.raises(LocateError, match="timeout"):
            await resolver.locate(URI.parse("sip:x.ivoz.test"))
