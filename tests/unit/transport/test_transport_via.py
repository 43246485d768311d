"""Server-side Via handling: received and rport (RFC 3261 18.2.1/18.2.2, RFC 3581 4)."""

from __future__ import annotations

import pytest

from ivoz.sip.errors import RemoteError
from ivoz.sip.headers import Headers
from ivoz.sip.values import Via
from ivoz.transport import Address, Kind, Origin
from ivoz.transport.via import alias_address, response_destination, stamp_via, stamped


def origin(kind: Kind = Kind.UDP, host: str = "192.0.2.7", port: int = 40000) -> Origin:
    connection = None if kind is Kind.UDP else 3
    return Origin(kind, Address(kind, host, port), Address(kind, "127.0.0.1", 5060), connection)


def test_same_host_without_rport_is_left_alone() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1")
    assert stamped(via, origin()) is None


def test_different_host_gets_received() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1")
    new = stamped(via, origin())
    assert new is not None
    assert new.received == "192.0.2.7"
    assert new.rport is None


def test_host_name_gets_received() -> None:
    via = Via.parse("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1")
    new = stamped(via, origin())
    assert new is not None and new.received == "192.0.2.7"


def test_bare_rport_gets_port_and_received_even_when_host_matches() -> None:
    # RFC 3581 4: received MUST be added even if identical to sent-by.
    via = Via.parse("SIP/2.0/UDP 192.0.2.7:5060;rport;branch=z9hG4bK1")
    new = stamped(via, origin())
    assert new is not None
    assert new.rport == 40000
    assert new.received == "192.0.2.7"
    assert new.branch == "z9hG4bK1"


def test_ipv6_sent_by_matches_bare_source() -> None:
    via = Via.parse("SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK1")
    assert stamped(via, origin(host="2001:db8::9")) is None


def test_malformed_rport_is_a_remote_error() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1;rport=abc;branch=z9hG4bK1")
    with pytest.raises(RemoteError):
        stamped(via, origin())


def test_stamp_via_rewrites_only_the_topmost_value() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=b2"),
            ("Via", "SIP/2.0/UDP 10.0.0.3;branch=b3"),
            ("Call-ID", "x"),
        ]
    )
    top = Via.parse(headers.get_all("Via")[0])
    new = stamp_via(headers, top, origin())
    vias = [Via.parse(v) for v in headers.get_all("Via")]
    assert vias[0] == new
    assert (vias[0].received, vias[0].rport) == ("192.0.2.7", 40000)
    assert [v.host for v in vias] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_udp_response_with_rport_goes_to_source() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5060;rport=40000;received=192.0.2.7;branch=z9hG4bK1")
    dest = response_destination(via, origin())
    assert dest.connection is None
    assert dest.address == Address(Kind.UDP, "192.0.2.7", 40000)


def test_udp_response_without_rport_goes_to_received_and_sent_by_port() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5070;received=192.0.2.7;branch=z9hG4bK1")
    assert response_destination(via, origin()).address == Address(Kind.UDP, "192.0.2.7", 5070)
    bare = Via.parse("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1")
    assert response_destination(bare, origin()).address == Address(Kind.UDP, "192.0.2.7", 5060)


def test_udp_response_with_maddr() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5070;maddr=239.1.1.1;branch=z9hG4bK1")
    assert response_destination(via, origin()).address == Address(Kind.UDP, "239.1.1.1", 5070)


def test_stream_response_goes_over_the_connection_with_a_fallback() -> None:
    via = Via.parse("SIP/2.0/TCP 10.0.0.1:5070;received=192.0.2.7;branch=z9hG4bK1")
    dest = response_destination(via, origin(Kind.TCP))
    assert dest.connection == 3
    assert dest.address == Address(Kind.TCP, "192.0.2.7", 5070)
    tls = Via.parse("SIP/2.0/TLS 192.0.2.7;branch=z9hG4bK1")
    assert response_destination(tls, origin(Kind.TLS)).address.port == 5061


def test_websocket_response_only_over_its_connection() -> None:
    via = Via.parse("SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK1")
    dest = response_destination(via, origin(Kind.WS))
    assert dest.connection == 3
    assert dest.address == origin(Kind.WS).remote


def test_alias_reuses_the_connection_for_sent_by_port() -> None:
    via = Via.parse("SIP/2.0/TLS 192.0.2.7:5061;alias;branch=z9hG4bK1")
    assert alias_address(via, origin(Kind.TLS)) == Address(Kind.TLS, "192.0.2.7", 5061)
    assert alias_address(via, origin(Kind.UDP)) is None
    no_alias = Via.parse("SIP/2.0/TLS 192.0.2.7:5061;branch=z9hG4bK1")
    assert alias_address(no_alias, origin(Kind.TLS)) is None


def test_ipv6_source_is_written_as_a_reference_and_routed_bare() -> None:
    via = Via.parse("SIP/2.0/UDP [2001:db8::9]:5060;rport;branch=z9hG4bK1")
    new = stamped(via, origin(host="2001:db8::1"))
    assert new is not None
    assert new.received == "[2001:db8::1]"
    again = Via.parse(str(new))  # what a response carries parses back
    dest = response_destination(again, origin(host="2001:db8::1"))
    assert dest.address == Address(Kind.UDP, "2001:db8::1", 40000)
