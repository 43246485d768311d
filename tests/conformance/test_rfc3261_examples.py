"""RFC 3261 section 24 example messages, transcribed from the RFC's text.

The RFC leaves the SDP bodies out ("Alice's SDP not shown"); a small SDP stands in and
Content-Length is computed from it. Each message must parse, pass `check()`, expose the
values the flow relies on, and round-trip.
"""

from __future__ import annotations

import pytest

from ivoz import sip

# Every test runs with the compiled sip hot path and in Python only.
pytestmark = pytest.mark.usefixtures("sip_core")

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\ns=-\r\n"
    b"c=IN IP4 pc33.atlanta.com\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)


def wire(lines: list[str], body: bytes = b"") -> bytes:
    head = "\r\n".join([*lines, f"Content-Length: {len(body)}"])
    return head.encode() + b"\r\n\r\n" + body


# 24.1 Registration, F1 and F2.
REGISTER_F1 = wire(
    [
        "REGISTER sip:registrar.biloxi.com SIP/2.0",
        "Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@biloxi.com>",
        "From: Bob <sip:bob@biloxi.com>;tag=456248",
        "Call-ID: 843817637684230@998sdasdh09",
        "CSeq: 1826 REGISTER",
        "Contact: <sip:bob@192.0.2.4>",
        "Expires: 7200",
    ]
)
REGISTER_F2 = wire(
    [
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7;received=192.0.2.4",
        "To: Bob <sip:bob@biloxi.com>;tag=2493k59kd",
        "From: Bob <sip:bob@biloxi.com>;tag=456248",
        "Call-ID: 843817637684230@998sdasdh09",
        "CSeq: 1826 REGISTER",
        "Contact: <sip:bob@192.0.2.4>",
        "Expires: 7200",
    ]
)
# 24.2 Session setup: F1 (Alice to atlanta.com), F3 (atlanta.com to biloxi.com),
# F8 (180 Ringing back to atlanta.com), F11 (ACK), F13 (BYE from Bob).
INVITE_F1 = wire(
    [
        "INVITE sip:bob@biloxi.com SIP/2.0",
        "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@biloxi.com>",
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710",
        "CSeq: 314159 INVITE",
        "Contact: <sip:alice@pc33.atlanta.com>",
        "Content-Type: application/sdp",
    ],
    SDP,
)
INVITE_F3 = wire(
    [
        "INVITE sip:bob@biloxi.com SIP/2.0",
        "Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1",
        "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.1",
        "Max-Forwards: 69",
        "Record-Route: <sip:bigbox3.site3.atlanta.com;lr>",
        "To: Bob <sip:bob@biloxi.com>",
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710",
        "CSeq: 314159 INVITE",
        "Contact: <sip:alice@pc33.atlanta.com>",
        "Content-Type: application/sdp",
    ],
    SDP,
)
RINGING_F8 = wire(
    [
        "SIP/2.0 180 Ringing",
        "Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1"
        ";received=192.0.2.2",
        "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.1",
        "Record-Route: <sip:server10.biloxi.com;lr>, <sip:bigbox3.site3.atlanta.com;lr>",
        "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf",
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710",
        "Contact: <sip:bob@192.0.2.4>",
        "CSeq: 314159 INVITE",
    ]
)
ACK_F11 = wire(
    [
        "ACK sip:bob@192.0.2.4 SIP/2.0",
        "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds9",
        "Route: <sip:bigbox3.site3.atlanta.com;lr>, <sip:server10.biloxi.com;lr>",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf",
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710",
        "CSeq: 314159 ACK",
    ]
)
BYE_F13 = wire(
    [
        "BYE sip:alice@pc33.atlanta.com SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10",
        "Max-Forwards: 70",
        "Route: <sip:server10.biloxi.com;lr>, <sip:bigbox3.site3.atlanta.com;lr>",
        "From: Bob <sip:bob@biloxi.com>;tag=a6c85cf",
        "To: Alice <sip:alice@atlanta.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710",
        "CSeq: 231 BYE",
    ]
)

ALL = {
    "24.1-F1": REGISTER_F1,
    "24.1-F2": REGISTER_F2,
    "24.2-F1": INVITE_F1,
    "24.2-F3": INVITE_F3,
    "24.2-F8": RINGING_F8,
    "24.2-F11": ACK_F11,
    "24.2-F13": BYE_F13,
}


@pytest.mark.parametrize("name", list(ALL))
def test_example_parses_and_round_trips(name: str) -> None:
    msg = sip.parse_message(ALL[name])
    msg.check()
    again = sip.parse_message(msg.to_bytes(), datagram=False)
    assert list(again.headers.items()) == list(msg.headers.items())
    assert again.body == msg.body
    assert again.vias == msg.vias and again.cseq == msg.cseq and again.to == msg.to
    assert again.to_bytes() == ALL[name]


def test_registration_values() -> None:
    req = sip.parse_message(REGISTER_F1)
    assert isinstance(req, sip.Request) and req.method == "REGISTER"
    assert req.uri == sip.URI("sip", host="registrar.biloxi.com")
    assert req.expires == 7200
    assert req.contacts[0].uri == sip.URI("sip", "bob", host="192.0.2.4")
    assert req.to.uri == req.from_.uri == sip.URI("sip", "bob", host="biloxi.com")
    # The registrar's answer (F2) is make_response plus received, Contact and Expires.
    ok = sip.make_response(req, 200, to_tag="2493k59kd")
    assert ok.to == sip.parse_message(REGISTER_F2).to
    assert ok.via.with_params(received="192.0.2.4") == sip.parse_message(REGISTER_F2).via


def test_session_values() -> None:
    f3 = sip.parse_message(INVITE_F3)
    assert f3.max_forwards == 69
    assert [v.host for v in f3.vias] == ["bigbox3.site3.atlanta.com", "pc33.atlanta.com"]
    assert f3.vias[1].received == "192.0.2.1"
    assert f3.record_routes[0].uri.params == {"lr": None}
    assert f3.body == SDP and f3.content_type == "application/sdp"
    f8 = sip.parse_message(RINGING_F8)
    assert isinstance(f8, sip.Response) and f8.status == 180
    assert [r.uri.host for r in f8.record_routes] == [
        "server10.biloxi.com",
        "bigbox3.site3.atlanta.com",
    ]
    assert f8.to_tag == "a6c85cf" and f8.from_tag == "1928301774"
    ack = sip.parse_message(ACK_F11)
    assert ack.cseq == sip.CSeq(314159, "ACK") and len(ack.routes) == 2
    bye = sip.parse_message(BYE_F13)
    assert isinstance(bye, sip.Request) and bye.uri.host == "pc33.atlanta.com"
    assert bye.from_tag == "a6c85cf" and bye.to_tag == "1928301774"
