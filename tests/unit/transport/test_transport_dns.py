"""ivoz.transport.dns: the cache, TTLs, negative caching, bounds and timeouts over a fake
backend and a fake clock (the real DNS server is in tests/integration/transport)."""

from __future__ import annotations

import asyncio

import dns.message
import dns.rcode
import dns.rrset
import pytest

from ivoz.sip import URI
from ivoz.sip.locate import AddressRecord, Answer, LocateError, Query, SRVRecord
from ivoz.transport.dns import (
    DnspythonBackend,
    Nameserver,
    Resolver,
    negative_ttl,
    parse_servers,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Answers from a dict; counts the questions asked."""

    def __init__(self, zone: dict[tuple[str, str], Answer]) -> None:
        self.zone = zone
        self.asked: list[tuple[str, str]] = []
        self.delay = 0.0

    async def __call__(self, query: Query) -> Answer:
        self.asked.append((query.rdtype, query.name))
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.zone.get((query.name, query.rdtype), Answer((), 30))


def a(address: str, ttl: int) -> Answer:
    return Answer((AddressRecord(address),), ttl)


ZONE = {
    ("_sip._udp.example.com", "SRV"): Answer((SRVRecord(0, 0, 5070, "pbx.example.com"),), 600),
    ("pbx.example.com", "A"): a("192.0.2.1", 60),
}


def make(
    zone: dict[tuple[str, str], Answer] | None = None, **kwargs: object
) -> tuple[Resolver, Backend, Clock]:
    backend = Backend(dict(ZONE if zone is None else zone))
    clock = Clock()
    resolver = Resolver(backend, clock=clock, **kwargs)  # type: ignore[arg-type]
    return resolver, backend, clock


async def test_locate_through_the_cache() -> None:
    resolver, backend, clock = make()
    located = await resolver.locate(URI.parse("sip:example.com"))
    assert [(t.transport, t.host, t.port) for t in located.targets] == [("UDP", "192.0.2.1", 5070)]
    assert located.ttl == 30  # the negative NAPTR (30 s) is the smallest
    first = len(backend.asked)
    clock.now += 10
    again = await resolver.locate(URI.parse("sip:example.com"))
    assert again.targets == located.targets
    assert len(backend.asked) == first  # all from the cache
    assert again.ttl == 20  # what is left of the 30 s
    assert resolver.stats.hits + resolver.stats.negative_hits == first


async def test_numeric_uri_asks_nothing() -> None:
    resolver, backend, _ = make()
    located = await resolver.locate(URI.parse("sip:192.0.2.4:5080;transport=tcp"))
    assert [(t.transport, t.host, t.port) for t in located.targets] == [("TCP", "192.0.2.4", 5080)]
    assert backend.asked == []


async def test_entry_expires_with_its_ttl() -> None:
    resolver, backend, clock = make()
    query = Query("pbx.example.com", "A")
    assert (await resolver.query(query)).ttl == 60
    clock.now += 59.5
    assert (await resolver.query(query)).ttl == 0
    assert backend.asked == [("A", "pbx.example.com")]
    clock.now += 0.5
    assert (await resolver.query(query)).ttl == 60
    assert backend.asked == [("A", "pbx.example.com")] * 2


async def test_ttl_zero_is_not_cached() -> None:
    resolver, backend, _ = make({("x.example.com", "A"): a("192.0.2.1", 0)})
    for _ in range(2):
        await resolver.query(Query("x.example.com", "A"))
    assert len(backend.asked) == 2


async def test_long_ttl_is_capped() -> None:
    resolver, _, _ = make({("x.example.com", "A"): a("192.0.2.1", 10**6)}, max_ttl=3600)
    assert (await resolver.query(Query("x.example.com", "A"))).ttl == 3600


async def test_negative_answers_are_cached_for_their_ttl_and_capped() -> None:
    zone = {
        ("long.example.com", "A"): Answer((), 7200),
        ("soa-less.example.com", "A"): Answer((), None),
    }
    resolver, backend, clock = make(zone, max_negative_ttl=300, negative_ttl_without_soa=5)
    assert (await resolver.query(Query("nope.example.com", "A"))).ttl == 30
    assert (await resolver.query(Query("long.example.com", "A"))).ttl == 300  # capped
    assert (await resolver.query(Query("soa-less.example.com", "A"))).ttl == 5
    clock.now += 4
    for name in ("nope", "long", "soa-less"):
        await resolver.query(Query(f"{name}.example.com", "A"))
    assert len(backend.asked) == 3
    assert resolver.stats.negative_hits == 3
    clock.now += 1  # soa-less is gone after 5 s, the others stay
    for name in ("nope", "long", "soa-less"):
        await resolver.query(Query(f"{name}.example.com", "A"))
    assert backend.asked[3:] == [("A", "soa-less.example.com")]


async def test_cache_bounds_evict_least_recently_used() -> None:
    zone = {(f"h{i}.example.com", "A"): a(f"192.0.2.{i + 1}", 600) for i in range(10)}
    resolver, backend, _ = make(zone, max_entries=3, max_negative_entries=2)
    for i in range(3):
        await resolver.query(Query(f"h{i}.example.com", "A"))
    await resolver.query(Query("h0.example.com", "A"))  # h0 used again: h1 is now oldest
    await resolver.query(Query("h3.example.com", "A"))
    assert len(resolver._positive) == 3
    await resolver.query(Query("h0.example.com", "A"))
    await resolver.query(Query("h1.example.com", "A"))  # evicted: asked again
    assert backend.asked.count(("A", "h0.example.com")) == 1
    assert backend.asked.count(("A", "h1.example.com")) == 2
    # a flood of made-up names fills only the negative table
    for i in range(50):
        await resolver.query(Query(f"junk{i}.example.com", "A"))
    assert len(resolver._negative) == 2
    assert len(resolver._positive) == 3
    assert len(resolver) == 5


async def test_failures_are_not_cached_and_named() -> None:
    async def failing(query: Query) -> Answer:
        return Answer((), None, "SERVFAIL")

    resolver = Resolver(failing, clock=Clock())
    with pytest.raises(LocateError, match="SERVFAIL"):
        await resolver.locate(URI.parse("sip:example.com"))
    assert resolver.stats.failures == resolver.stats.sent > 0
    assert len(resolver) == 0


async def test_query_timeout() -> None:
    resolver, backend, _ = make(timeout=0.05)
    backend.delay = 1.0
    answer = await resolver.query(Query("pbx.example.com", "A"))
    assert answer == Answer((), None, "timeout")
    assert len(resolver) == 0


async def test_concurrent_questions_share_one_query() -> None:
    resolver, backend, _ = make()
    backend.delay = 0.01
    answers = await asyncio.gather(
        *(resolver.query(Query("pbx.example.com", "A")) for _ in range(20))
    )
    assert backend.asked == [("A", "pbx.example.com")]
    assert {x.records for x in answers} == {(AddressRecord("192.0.2.1"),)}


async def test_a_cancelled_waiter_does_not_cancel_the_others() -> None:
    resolver, backend, _ = make()
    backend.delay = 0.05
    first = asyncio.ensure_future(resolver.query(Query("pbx.example.com", "A")))
    second = asyncio.ensure_future(resolver.query(Query("pbx.example.com", "A")))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second).records == (AddressRecord("192.0.2.1"),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.2", (Nameserver("10.0.0.2", 53),)),
        ("10.0.0.2:5353, 10.0.0.3", (Nameserver("10.0.0.2", 5353), Nameserver("10.0.0.3", 53))),
        ("[2001:db8::53]:5300,::1", (Nameserver("2001:db8::53", 5300), Nameserver("::1", 53))),
        ("", ()),
    ],
)
def test_parse_servers(text: str, expected: tuple[Nameserver, ...]) -> None:
    assert parse_servers(text) == expected


@pytest.mark.parametrize(
    "text", ["10.0.0.2:0", "10.0.0.2:x", "[::1", "[::1]x", ":53", "1.2.3.4:70000", "ns.example.com"]
)
def test_parse_servers_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_servers(text)


def test_negative_ttl_is_the_smaller_of_soa_ttl_and_minimum() -> None:
    query = dns.message.make_query("nope.example.com", "A")
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NXDOMAIN)
    response.authority.append(
        dns.rrset.from_text("example.com.", 900, "IN", "SOA", "ns. host. 1 7200 900 1209600 120")
    )
    assert negative_ttl(response) == 120
    response.authority[0].ttl = 60
    assert negative_ttl(response) == 60
    assert negative_ttl(dns.message.make_response(query)) is None


def test_backend_takes_configured_servers() -> None:
    backend = DnspythonBackend([Nameserver("127.0.0.1", 5353)], timeout=1.5)
    assert [(n.address, n.port) for n in backend.resolver.nameservers] == [("127.0.0.1", 5353)]  # type: ignore[union-attr]
    assert backend.resolver.lifetime == 1.5
