"""The users proxy's next hop by RFC 3263 (docs/dns.md): a Route or Request-URI naming a
host is located through ``ivoz.transport.dns`` (here on a dictionary backend), the
targets tried in order on 503 and timeouts; numeric hops never ask DNS."""

from __future__ import annotations

import asyncio

from test_proxy_core_role import AS, BOB1, BOB2, DOMAIN, PROXY, Harness

from ivoz.config import Config
from ivoz.proxy.role import UsersProxy
from ivoz.sip import Request, Response, make_response
from ivoz.sip.locate import AddressRecord, Answer, Query, SRVRecord
from ivoz.transport import Address, Kind
from ivoz.transport.dns import Resolver

ZONE = {
    ("_sip._udp.bob.ivoz.test", "SRV"): Answer(
        (SRVRecord(10, 0, 5060, "one.ivoz.test"), SRVRecord(20, 0, 5070, "two.ivoz.test")), 60
    ),
    ("one.ivoz.test", "A"): Answer((AddressRecord(BOB1.host),), 60),
    ("two.ivoz.test", "A"): Answer((AddressRecord(BOB2.host),), 60),
}


class Backend:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, query: Query) -> Answer:
        self.asked.append((query.rdtype, query.name))
        return ZONE.get((query.name, query.rdtype), Answer((), 30))


class DnsHarness(Harness):
    def __init__(self) -> None:
        super().__init__()
        self.backend = Backend()
        self.proxy = UsersProxy(
            Config(),
            self.services,
            secret=b"secret",
            node=self.node,
            wall_clock=lambda: 1000.0,
            relay_sets=lambda _: self.relays,
            resolver=Resolver(self.backend, clock=lambda: 0.0),
        )
        self.node.handler = self.proxy

    async def receive(self, message: Request | Response, source: Address) -> None:
        await super().receive(message, source)
        for _ in range(100):  # each DNS question is a task of its own: let them all run
            await asyncio.sleep(0)


def in_dialog(method: str, ruri: str, branch: str = "z9hG4bK-d1", seq: int = 2) -> Request:
    return Request(
        method,
        ruri,
        [
            ("Via", f"SIP/2.0/UDP {AS.host}:{AS.port};branch={branch}"),
            ("Route", f"<sip:{PROXY.host}:{PROXY.port};lr>"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:1001@{DOMAIN}>;tag=x"),
            ("To", f"<sip:bob@{DOMAIN}>;tag=bob"),
            ("Call-ID", "call-dns"),
            ("CSeq", f"{seq} {method}"),
        ],
    )


def forwarded(h: Harness) -> list[tuple[Request, Address | int]]:
    return [(m, w) for m, w in h.take() if isinstance(m, Request)]


async def test_named_next_hop_is_located_by_srv() -> None:
    h = DnsHarness()
    await h.receive(in_dialog("BYE", "sip:bob@bob.ivoz.test"), AS)
    ((request, where),) = forwarded(h)
    assert where == Address(Kind.UDP, BOB1.host, 5060)
    assert request.request_uri == "sip:bob@bob.ivoz.test"  # the URI is not rewritten
    assert ("SRV", "_sip._udp.bob.ivoz.test") in h.backend.asked


async def test_numeric_next_hop_asks_no_dns() -> None:
    h = DnsHarness()
    await h.receive(in_dialog("BYE", f"sip:bob@{BOB2.host}:{BOB2.port}"), AS)
    ((_, where),) = forwarded(h)
    assert where == BOB2
    assert h.backend.asked == []


async def test_503_moves_to_the_next_target() -> None:
    h = DnsHarness()
    await h.receive(in_dialog("BYE", "sip:bob@bob.ivoz.test"), AS)
    ((first, where),) = forwarded(h)
    assert where == BOB1
    await h.receive(make_response(first, 503, "Service Unavailable"), BOB1)
    out = h.take()
    (retry,) = [(m, w) for m, w in out if isinstance(m, Request) and m.method == "BYE"]
    assert retry[1] == Address(Kind.UDP, BOB2.host, 5070)
    assert not [m for m, _ in out if isinstance(m, Response) and m.status >= 200]
    await h.receive(make_response(retry[0], 200), retry[1])  # type: ignore[arg-type]
    assert h.responses() == [200]


async def test_timeout_moves_to_the_next_target() -> None:
    h = DnsHarness()
    await h.receive(in_dialog("BYE", "sip:bob@bob.ivoz.test"), AS)
    assert [w for _, w in forwarded(h)] == [BOB1]
    h.proxy.proxy.on_timer(1000.0)  # the branch's no-response time is long past
    assert [w for _, w in forwarded(h)] == [Address(Kind.UDP, BOB2.host, 5070)]


async def test_unresolvable_next_hop_gets_503() -> None:
    h = DnsHarness()
    await h.receive(in_dialog("BYE", "sip:bob@nowhere.ivoz.test"), AS)
    out = h.take()
    assert [m.status for m, _ in out if isinstance(m, Response)] == [503]
    assert not [m for m, _ in out if isinstance(m, Request)]


async def test_ack_to_a_named_hop_goes_to_the_first_target() -> None:
    h = DnsHarness()
    ack = in_dialog("ACK", "sip:bob@bob.ivoz.test", branch="z9hG4bK-ack")
    ack.headers.set("CSeq", "1 ACK")
    await h.receive(ack, AS)
    ((request, where),) = forwarded(h)
    assert request.method == "ACK" and where == BOB1
