"""RFC 5118 (SIP torture tests for IPv6): the cases that concern message parsing.

Messages are written here after the RFC's descriptions (section 4), not copied byte for
byte: an IPv6 reference in the Request-URI, To and Contact; one without brackets
(invalid); the port ambiguity inside brackets; IPv6 in Via sent-by and received (with
and without brackets); several address families in one message; IPv4-mapped addresses.
"""

from __future__ import annotations

import pytest

from ivoz import sip

# Every test runs with the compiled sip hot path and in Python only.
pytestmark = pytest.mark.usefixtures("sip_core")


def request(uri: str, via: str, contact: str = "<sip:caller@[2001:db8::1]>") -> bytes:
    return (
        f"REGISTER {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:user@[2001:db8::10]>\r\n"
        "From: <sip:user@[2001:db8::10]>;tag=81x2\r\n"
        "Call-ID: SSG9559905523997077@hlau_4100\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: {contact}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


GOOD_VIA = "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111"


def test_4_1_valid_ipv6_reference() -> None:
    msg = sip.parse_message(request("sip:[2001:db8::10]", GOOD_VIA))
    assert isinstance(msg, sip.Request)
    msg.check()
    assert msg.uri.host == "[2001:db8::10]" and msg.uri.port is None
    assert msg.to.uri.host == "[2001:db8::10]"
    assert msg.via.host == "[2001:db8::9:1]"
    assert msg.contacts[0].uri == sip.URI("sip", "caller", host="[2001:db8::1]")


def test_4_2_ipv6_without_brackets_is_400() -> None:
    msg = sip.parse_message(request("sip:user@2001:db8::10", GOOD_VIA))
    with pytest.raises(sip.RemoteError) as err:
        msg.check()
    assert err.value.status == 400 and err.value.respondable


def test_4_3_port_inside_brackets_is_part_of_the_address() -> None:
    # RFC 5118 4.3: [2001:db8::10:5070] is an address with no port.
    msg = sip.parse_message(request("sip:[2001:db8::10:5070]", GOOD_VIA))
    assert isinstance(msg, sip.Request)
    assert msg.uri.host == "[2001:db8::10:5070]" and msg.uri.port is None


def test_4_4_port_after_brackets() -> None:
    msg = sip.parse_message(request("sip:[2001:db8::10]:5070", GOOD_VIA))
    assert isinstance(msg, sip.Request)
    assert msg.uri.host == "[2001:db8::10]" and msg.uri.port == 5070


@pytest.mark.parametrize(
    "received", ["2001:db8::9:255", "[2001:db8::9:255]"], ids=["bare", "bracketed"]
)
def test_4_5_via_received_with_and_without_brackets(received: str) -> None:
    via = f"SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received={received}"
    msg = sip.parse_message(request("sip:[2001:db8::10]", via))
    msg.check()
    assert msg.via.port == 6050 and msg.via.received == received
    assert sip.parse_message(msg.to_bytes()).via == msg.via


def test_4_7_several_address_families() -> None:
    vias = (
        "SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111, "
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144;received=2001:db8::9:255"
    )
    contacts = '"Caller" <sip:caller@[2001:db8::9:1]>, "Caller" <sip:caller@192.0.2.1>'
    msg = sip.parse_message(request("sip:[2001:db8::10]", vias, contacts))
    msg.check()
    assert [v.host for v in msg.vias] == ["[2001:db8::9:1]", "192.0.2.1"]
    assert [c.uri.host for c in msg.contacts if c.uri] == ["[2001:db8::9:1]", "192.0.2.1"]


def test_4_9_ipv4_mapped_and_4_10_mixed_notation() -> None:
    for host in ("[::ffff:192.0.2.10]", "[2001:db8::192.0.2.1]", "[::1]"):
        msg = sip.parse_message(request(f"sip:user@{host}", f"SIP/2.0/TCP {host}:5061"))
        msg.check()
        assert isinstance(msg, sip.Request)
        assert msg.uri.host == host and msg.via.host == host and msg.via.port == 5061
