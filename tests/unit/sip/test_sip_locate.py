"""RFC 3263 section 4 (ivoz.sip.locate) over a dictionary of DNS answers: no sockets."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivoz.sip import URI
from ivoz.sip.errors import LocalError
from ivoz.sip.locate import (
    MAX_QUERIES,
    AddressRecord,
    Answer,
    Located,
    LocateError,
    NAPTRRecord,
    Query,
    SRVRecord,
    Target,
    locate,
    order_srv,
    resolve,
)

Zone = dict[tuple[str, str], Answer]


class Lookup:
    """A zone as a dict; unknown questions are NXDOMAIN with a 60 s negative TTL."""

    def __init__(self, zone: Zone, negative_ttl: int | None = 60) -> None:
        self.zone = zone
        self.asked: list[tuple[str, str]] = []
        self.negative_ttl = negative_ttl

    def __call__(self, query: Query) -> Answer:
        self.asked.append((query.rdtype, query.name))
        return self.zone.get((query.name, query.rdtype), Answer((), self.negative_ttl))


def a(*addresses: str, ttl: int = 300) -> Answer:
    return Answer(tuple(AddressRecord(x) for x in addresses), ttl)


def naptr(*records: tuple[int, int, str, str, str, str], ttl: int = 300) -> Answer:
    return Answer(tuple(NAPTRRecord(*r) for r in records), ttl)


def srv(*records: tuple[int, int, int, str], ttl: int = 300) -> Answer:
    return Answer(tuple(SRVRecord(*r) for r in records), ttl)


def run(uri: str, zone: Zone, **kwargs: object) -> tuple[Located, Lookup]:
    lookup = Lookup(zone)
    located = resolve(URI.parse(uri), lookup, rng=random.Random(1), **kwargs)  # type: ignore[arg-type]
    return located, lookup


def hops(located: Located) -> list[tuple[str, str, int]]:
    return [(t.transport, t.host, t.port) for t in located.targets]


# RFC 3263 4.1's own example: TLS over TCP, then TCP, then UDP
RFC_NAPTR = naptr(
    (50, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.com."),
    (90, 50, "s", "SIP+D2T", "", "_sip._tcp.example.com"),
    (100, 50, "s", "SIP+D2U", "", "_sip._udp.example.com."),
)
RFC_ZONE: Zone = {
    ("example.com", "NAPTR"): RFC_NAPTR,
    ("_sips._tcp.example.com", "SRV"): srv((0, 0, 5061, "tls.example.com.")),
    ("_sip._tcp.example.com", "SRV"): srv((0, 0, 5060, "tcp.example.com.")),
    ("_sip._udp.example.com", "SRV"): srv((0, 0, 5060, "udp.example.com.")),
    ("tls.example.com", "A"): a("192.0.2.1"),
    ("tcp.example.com", "A"): a("192.0.2.2"),
    ("udp.example.com", "A"): a("192.0.2.3", ttl=30),
}


# -- 4.1 / 4.2 without DNS -------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:192.0.2.1", ("UDP", "192.0.2.1", 5060)),
        ("sip:192.0.2.1:5070", ("UDP", "192.0.2.1", 5070)),
        ("sips:192.0.2.1", ("TLS", "192.0.2.1", 5061)),
        ("sip:192.0.2.1;transport=tcp", ("TCP", "192.0.2.1", 5060)),
        ("sip:192.0.2.1;transport=tls", ("TLS", "192.0.2.1", 5061)),
        ("sips:192.0.2.1;transport=tcp", ("TLS", "192.0.2.1", 5061)),
        ("sip:[2001:db8::1]:5080", ("UDP", "2001:db8::1", 5080)),
        ("sip:alice@example.com;maddr=192.0.2.9", ("UDP", "192.0.2.9", 5060)),
    ],
)
def test_numeric_target_needs_no_dns(uri: str, expected: tuple[str, str, int]) -> None:
    located, lookup = run(uri, {})
    assert hops(located) == [expected]
    assert located.ttl is None
    assert lookup.asked == []


def test_numeric_target_returns_at_once_from_the_generator() -> None:
    procedure = locate(URI.parse("sip:192.0.2.1:5999"))
    with pytest.raises(StopIteration) as done:
        next(procedure)
    assert done.value.value == Located((Target("UDP", "192.0.2.1", 5999, "192.0.2.1"),), None)


def test_explicit_port_uses_a_records_not_naptr_or_srv() -> None:
    zone: Zone = {("pbx.example.com", "A"): a("192.0.2.5", ttl=120)}
    located, lookup = run("sip:pbx.example.com:5070", zone)
    assert hops(located) == [("UDP", "192.0.2.5", 5070)]
    assert lookup.asked == [("A", "pbx.example.com"), ("AAAA", "pbx.example.com")]
    assert located.ttl == 60  # the AAAA NXDOMAIN's negative TTL is the smallest


def test_explicit_port_sips_is_tls() -> None:
    located, _ = run("sips:pbx.example.com:5071", {("pbx.example.com", "A"): a("192.0.2.5")})
    assert hops(located) == [("TLS", "192.0.2.5", 5071)]


def test_explicit_transport_queries_that_srv_only() -> None:
    located, lookup = run("sip:example.com;transport=tcp", RFC_ZONE)
    assert hops(located) == [("TCP", "192.0.2.2", 5060)]
    assert lookup.asked[0] == ("SRV", "_sip._tcp.example.com")
    assert ("NAPTR", "example.com") not in lookup.asked


def test_explicit_tls_transport_queries_sips_srv() -> None:
    located, lookup = run("sip:example.com;transport=tls", RFC_ZONE)
    assert hops(located) == [("TLS", "192.0.2.1", 5061)]
    assert lookup.asked[0] == ("SRV", "_sips._tcp.example.com")


def test_explicit_transport_without_srv_falls_back_to_a() -> None:
    zone: Zone = {("example.com", "A"): a("192.0.2.7")}
    located, _ = run("sip:example.com;transport=tcp", zone)
    assert hops(located) == [("TCP", "192.0.2.7", 5060)]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sip:example.com;transport=sctp", "unknown transport"),
        ("sips:example.com;transport=udp", "insecure transport"),
        ("sip:example.com;transport=ws", "not supported"),
    ],
)
def test_transport_parameter_errors(uri: str, message: str) -> None:
    with pytest.raises(LocateError, match=message):
        run(uri, RFC_ZONE)


# -- 4.1 NAPTR ---------------------------------------------------------------------------


def test_rfc_example_naptr_order_gives_tls_tcp_udp() -> None:
    located, lookup = run("sip:example.com", RFC_ZONE)
    assert hops(located) == [
        ("TLS", "192.0.2.1", 5061),
        ("TCP", "192.0.2.2", 5060),
        ("UDP", "192.0.2.3", 5060),
    ]
    assert lookup.asked[:2] == [("NAPTR", "example.com"), ("SRV", "_sips._tcp.example.com")]
    assert located.ttl == 30  # the smallest TTL seen (udp.example.com's A record)
    assert all(t.name == "example.com" for t in located.targets)


def test_rfc_example_for_a_udp_only_client() -> None:
    located, lookup = run("sip:example.com", RFC_ZONE, supported={"UDP"})
    assert hops(located) == [("UDP", "192.0.2.3", 5060)]
    assert ("SRV", "_sips._tcp.example.com") not in lookup.asked


def test_sips_keeps_only_sips_services() -> None:
    located, lookup = run("sips:example.com", RFC_ZONE)
    assert hops(located) == [("TLS", "192.0.2.1", 5061)]
    assert ("SRV", "_sip._tcp.example.com") not in lookup.asked


def test_naptr_preference_breaks_order_ties() -> None:
    zone = dict(RFC_ZONE)
    zone["example.com", "NAPTR"] = naptr(
        (10, 20, "s", "SIP+D2U", "", "_sip._udp.example.com"),
        (10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com"),
    )
    located, _ = run("sip:example.com", zone)
    assert [t.transport for t in located.targets] == ["TCP", "UDP"]


def test_websocket_services() -> None:
    zone: Zone = {
        ("example.com", "NAPTR"): naptr(
            (10, 10, "s", "SIPS+D2W", "", "_sips._ws.example.com"),
            (20, 10, "s", "SIP+D2W", "", "_sip._ws.example.com"),
        ),
        ("_sips._ws.example.com", "SRV"): srv((0, 0, 443, "ws.example.com")),
        ("_sip._ws.example.com", "SRV"): srv((0, 0, 80, "ws.example.com")),
        ("ws.example.com", "A"): a("192.0.2.8"),
    }
    located, _ = run("sip:example.com", zone, supported={"WS", "WSS"})
    assert hops(located) == [("WSS", "192.0.2.8", 443), ("WS", "192.0.2.8", 80)]
    located, _ = run("sips:example.com", zone, supported={"WS", "WSS"})
    assert hops(located) == [("WSS", "192.0.2.8", 443)]
    # a client without WebSocket ignores them, finds no SRV and falls to A records
    zone["example.com", "A"] = a("192.0.2.9")
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.9", 5060)]


@pytest.mark.parametrize(
    "bad",
    [
        (10, 10, "a", "SIP+D2T", "", "_sip._tcp.example.com"),  # flag for A records
        (10, 10, "", "SIP+D2T", "", "_sip._tcp.example.com"),  # non-terminal
        (10, 10, "u", "SIP+D2T", "!^.*$!sip:x@example.com!", "."),  # a URI rewrite
        (10, 10, "s", "SIP+D2T", "!^.*$!_sip._tcp.example.com!", "_x.example.com"),  # both
        (10, 10, "s", "SIP+D2T", "", "."),  # no replacement
        (10, 10, "s", "E2U+sip", "", "_sip._tcp.example.com"),  # ENUM, not RFC 3263
        (10, 10, "s", "SIP+D2S", "", "_sip._sctp.example.com"),  # SCTP: not ours
    ],
)
def test_malformed_or_foreign_naptr_is_skipped(bad: tuple[int, int, str, str, str, str]) -> None:
    zone = dict(RFC_ZONE)
    zone["example.com", "NAPTR"] = naptr(bad, (20, 10, "s", "SIP+D2U", "", "_sip._udp.example.com"))
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.3", 5060)]


def test_only_unusable_naptr_falls_back_to_srv() -> None:
    zone = dict(RFC_ZONE)
    zone["example.com", "NAPTR"] = naptr((10, 10, "u", "E2U+sip", "!^.*$!sip:a@b!", ""))
    located, lookup = run("sip:example.com", zone)
    assert [t.transport for t in located.targets] == ["TLS", "TCP", "UDP"]
    assert lookup.asked[1] == ("SRV", "_sips._tcp.example.com")


def test_naptr_whose_srv_is_empty_uses_a_records_with_its_transport() -> None:
    zone: Zone = {
        ("example.com", "NAPTR"): naptr((10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com")),
        ("example.com", "A"): a("192.0.2.4"),
    }
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("TCP", "192.0.2.4", 5060)]


def test_naptr_case_insensitive_service_and_flags() -> None:
    zone = dict(RFC_ZONE)
    zone["example.com", "NAPTR"] = naptr((10, 10, "S", "sip+d2u", "", "_sip._udp.example.com"))
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.3", 5060)]


# -- 4.1 SRV without NAPTR, and A only -----------------------------------------------------


def test_no_naptr_srv_in_tls_tcp_udp_order() -> None:
    zone = {k: v for k, v in RFC_ZONE.items() if k[1] != "NAPTR"}
    located, lookup = run("sip:example.com", zone)
    assert [t.transport for t in located.targets] == ["TLS", "TCP", "UDP"]
    assert [q for q in lookup.asked if q[0] == "SRV"] == [
        ("SRV", "_sips._tcp.example.com"),
        ("SRV", "_sip._tcp.example.com"),
        ("SRV", "_sip._udp.example.com"),
    ]


def test_no_naptr_sips_asks_sips_tcp_only() -> None:
    zone = {k: v for k, v in RFC_ZONE.items() if k[1] != "NAPTR"}
    located, lookup = run("sips:example.com", zone)
    assert hops(located) == [("TLS", "192.0.2.1", 5061)]
    assert [q for q in lookup.asked if q[0] == "SRV"] == [("SRV", "_sips._tcp.example.com")]


def test_only_udp_srv() -> None:
    zone: Zone = {
        ("_sip._udp.example.com", "SRV"): srv((0, 0, 5080, "udp.example.com")),
        ("udp.example.com", "A"): a("192.0.2.3"),
        ("udp.example.com", "AAAA"): a("2001:db8::3"),
    }
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.3", 5080), ("UDP", "2001:db8::3", 5080)]
    located, _ = run("sip:example.com", zone, ipv6=False)
    assert hops(located) == [("UDP", "192.0.2.3", 5080)]


def test_a_only_is_udp_for_sip_and_tls_for_sips() -> None:
    zone: Zone = {("example.com", "A"): a("192.0.2.1", "192.0.2.2")}
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.1", 5060), ("UDP", "192.0.2.2", 5060)]
    located, _ = run("sips:example.com", zone)
    assert hops(located) == [("TLS", "192.0.2.1", 5061), ("TLS", "192.0.2.2", 5061)]


def test_nothing_at_all_is_a_locate_error() -> None:
    with pytest.raises(LocateError, match=r"no target for sip:nowhere\.example"):
        run("sip:nowhere.example", {})


def test_failures_are_named_in_the_error() -> None:
    def failing(query: Query) -> Answer:
        return Answer((), None, "timeout")

    with pytest.raises(LocateError, match=r"NAPTR example\.com: timeout"):
        resolve(URI.parse("sip:example.com"), failing)


def test_srv_target_dot_means_not_available_and_no_a_fallback() -> None:
    zone: Zone = {
        ("_sips._tcp.example.com", "SRV"): srv((0, 0, 0, ".")),
        ("_sip._tcp.example.com", "SRV"): srv((0, 0, 0, ".")),
        ("_sip._udp.example.com", "SRV"): srv((0, 0, 0, ".")),
        ("example.com", "A"): a("192.0.2.1"),
    }
    with pytest.raises(LocateError):
        run("sip:example.com", zone)
    # one service decidedly absent, another present: the present one is used
    zone["_sip._udp.example.com", "SRV"] = srv((0, 0, 5060, "udp.example.com"))
    zone["udp.example.com", "A"] = a("192.0.2.3")
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.3", 5060)]


def test_srv_dot_beside_real_records_is_ignored() -> None:
    zone: Zone = {
        ("_sip._udp.example.com", "SRV"): srv((0, 0, 0, "."), (1, 0, 5060, "udp.example.com")),
        ("udp.example.com", "A"): a("192.0.2.3"),
    }
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.3", 5060)]


def test_srv_target_that_is_an_address_literal() -> None:
    zone: Zone = {("_sip._udp.example.com", "SRV"): srv((0, 0, 5090, "192.0.2.77"))}
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.77", 5090)]


def test_garbage_address_records_and_wrong_types_are_skipped() -> None:
    zone: Zone = {
        ("example.com", "A"): Answer(
            (AddressRecord("not-an-ip"), AddressRecord("2001:db8::1"), AddressRecord("192.0.2.1")),
            300,
        ),
        ("example.com", "AAAA"): Answer((SRVRecord(0, 0, 1, "x"), AddressRecord("192.0.2.2")), 300),
    }
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.1", 5060)]


def test_duplicate_targets_keep_their_first_rank() -> None:
    zone: Zone = {
        ("_sip._udp.example.com", "SRV"): srv(
            (0, 0, 5060, "a.example.com"), (1, 0, 5060, "b.example.com")
        ),
        ("a.example.com", "A"): a("192.0.2.1"),
        ("b.example.com", "A"): a("192.0.2.1", "192.0.2.2"),
    }
    located, _ = run("sip:example.com", zone)
    assert hops(located) == [("UDP", "192.0.2.1", 5060), ("UDP", "192.0.2.2", 5060)]


def test_query_budget_bounds_a_hostile_zone() -> None:
    records = tuple((0, 1, 5060, f"h{i}.example.com") for i in range(200))
    zone: Zone = {("_sip._udp.example.com", "SRV"): srv(*records)}
    zone.update(
        {(f"h{i}.example.com", "A"): a(f"10.0.{i // 250}.{i % 250 + 1}") for i in range(200)}
    )
    located, lookup = run("sip:example.com", zone)
    assert len(lookup.asked) == MAX_QUERIES
    assert 0 < len(located.targets) < 20


def test_ttl_is_the_smallest_including_negative_answers() -> None:
    zone: Zone = {
        ("_sip._udp.example.com", "SRV"): srv((0, 0, 5060, "udp.example.com"), ttl=3600),
        ("udp.example.com", "A"): a("192.0.2.3", ttl=600),
        ("udp.example.com", "AAAA"): Answer((), 45),
    }
    located, _ = run("sip:example.com", zone)
    assert located.ttl == 45


def test_ttl_ignores_failed_queries() -> None:
    zone: Zone = {("example.com", "A"): a("192.0.2.3", ttl=600)}

    def lookup(query: Query) -> Answer:
        return zone.get((query.name, query.rdtype), Answer((), None, "SERVFAIL"))

    located = resolve(URI.parse("sip:example.com"), lookup)
    assert located.ttl == 600


def test_names_are_case_and_dot_insensitive() -> None:
    zone: Zone = {
        ("_sip._udp.example.com", "SRV"): srv((0, 0, 5060, "UDP.Example.COM.")),
        ("udp.example.com", "A"): a("192.0.2.3"),
    }
    located, _ = run("sip:EXAMPLE.com.", zone)
    assert hops(located) == [("UDP", "192.0.2.3", 5060)]


def test_misuse_is_a_local_error() -> None:
    procedure = locate(URI.parse("sip:example.com"))
    next(procedure)
    with pytest.raises(LocalError):
        procedure.send("not an answer")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SRVRecord(0, 0, 70000, "x")
    with pytest.raises(ValueError):
        Query("example.com", "MX")


# -- 4.2 / RFC 2782 ordering ---------------------------------------------------------------


def test_priority_first() -> None:
    records = [SRVRecord(20, 100, 1, "c"), SRVRecord(10, 0, 1, "a"), SRVRecord(10, 0, 1, "b")]
    ordered = order_srv(records, random.Random(7))
    assert {r.target for r in ordered[:2]} == {"a", "b"}
    assert ordered[2].target == "c"


def test_weighted_selection_statistics() -> None:
    rng = random.Random(2026)
    records = [SRVRecord(0, 60, 1, "a"), SRVRecord(0, 30, 1, "b"), SRVRecord(0, 10, 1, "c")]
    first = Counter(order_srv(records, rng)[0].target for _ in range(20000))
    # RFC 2782: chosen with probability weight / sum (+1 for the inclusive upper bound)
    assert first["a"] / 20000 == pytest.approx(60 / 101, abs=0.015)
    assert first["b"] / 20000 == pytest.approx(30 / 101, abs=0.015)
    assert first["c"] / 20000 == pytest.approx(11 / 101, abs=0.015)  # picks 90..100


def test_weight_zero_has_a_small_chance_beside_weighted_records() -> None:
    rng = random.Random(5)
    records = [SRVRecord(0, 0, 1, "zero"), SRVRecord(0, 99, 1, "heavy")]
    first = Counter(order_srv(records, rng)[0].target for _ in range(20000))
    assert first["zero"] / 20000 == pytest.approx(1 / 100, abs=0.004)


def test_all_weights_zero_are_uniform() -> None:
    rng = random.Random(9)
    records = [SRVRecord(0, 0, 1, t) for t in "abc"]
    first = Counter(order_srv(records, rng)[0].target for _ in range(30000))
    for target in "abc":
        assert first[target] / 30000 == pytest.approx(1 / 3, abs=0.015)


def test_seeded_order_is_reproducible_and_complete() -> None:
    records = [SRVRecord(p, w, 1, f"t{p}{w}") for p in (0, 1) for w in (0, 5, 10)]
    one = order_srv(records, random.Random(3))
    two = order_srv(records, random.Random(3))
    assert one == two
    assert sorted(one, key=lambda r: r.target) == sorted(records, key=lambda r: r.target)
    assert [r.priority for r in one] == [0, 0, 0, 1, 1, 1]


# -- whatever the DNS says ------------------------------------------------------------------

_names = st.sampled_from(
    [
        "example.com",
        "udp.example.com",
        "_sip._udp.example.com",
        "_sip._tcp.example.com",
        "_sips._tcp.example.com",
        ".",
        "",
        "x.example.com",
        "192.0.2.1",
        "EXAMPLE.COM.",
    ]
)
_u16 = st.integers(0, 0xFFFF)
_records = st.one_of(
    st.builds(
        NAPTRRecord,
        _u16,
        _u16,
        st.sampled_from(["s", "S", "a", "u", "", "sa"]) | st.text(max_size=3),
        st.sampled_from(["SIP+D2U", "SIP+D2T", "SIPS+D2T", "SIP+D2W", "SIPS+D2W", "E2U+sip"])
        | st.text(max_size=10),
        st.sampled_from(["", "!^.*$!sip:x@y!"]) | st.text(max_size=8),
        _names | st.text(max_size=12),
    ),
    st.builds(SRVRecord, _u16, _u16, _u16, _names | st.text(max_size=12)),
    st.builds(
        AddressRecord,
        st.sampled_from(["192.0.2.1", "2001:db8::1", "::ffff:1.2.3.4", "999.1.1.1"])
        | st.text(max_size=12),
    ),
)
_answers = st.builds(
    Answer,
    st.lists(_records, max_size=6).map(tuple),
    st.none() | st.integers(0, 2**31 - 1),
    st.none() | st.sampled_from(["timeout", "SERVFAIL"]),
)
_uris = st.sampled_from(
    [
        "sip:example.com",
        "sips:example.com",
        "sip:example.com:5070",
        "sip:example.com;transport=tcp",
        "sips:example.com;transport=tls",
        "sip:x.example.com;transport=udp",
        "sip:EXAMPLE.COM.",
    ]
)


@given(
    uri=_uris,
    zone=st.dictionaries(
        st.tuples(_names, st.sampled_from(["NAPTR", "SRV", "A", "AAAA"])), _answers, max_size=12
    ),
    supported=st.sets(st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS"])),
    seed=st.integers(0, 1000),
)
def test_any_answers_give_targets_or_a_locate_error(
    uri: str, zone: Zone, supported: set[str], seed: int
) -> None:
    lookup = Lookup(zone)
    try:
        located = resolve(URI.parse(uri), lookup, supported=supported, rng=random.Random(seed))
    except LocateError:
        return
    assert located.targets
    assert len(lookup.asked) <= MAX_QUERIES
    for target in located.targets:
        assert target.transport in supported
        assert 0 <= target.port <= 0xFFFF
        assert target.name == "example.com" or target.name == "x.example.com"
        if uri.startswith("sips:"):
            assert target.transport in ("TLS", "WSS")
    assert len(set(located.targets)) == len(located.targets)
