"""Parsing, serialising and building SIP messages: the contract other layers rely on."""

from __future__ import annotations

import pytest

from ivoz import sip

# Every test runs with the compiled sip hot path and in Python only.
pytestmark = pytest.mark.usefixtures("sip_core")

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP proxy.example.com:5070;branch=z9hG4bK1, SIP/2.0/UDP [2001:db8::1]"
    b";branch=z9hG4bK2;received=192.0.2.1\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice \\"A\\"" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b'Contact: <sip:alice@pc33.atlanta.example.com>;expires=60;+sip.instance="<urn:x>"\r\n'
    b"X-Custom:   kept  verbatim \r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_request_start_line_and_core_headers() -> None:
    msg = sip.parse_message(INVITE)
    assert isinstance(msg, sip.Request)
    assert msg.method == "INVITE"
    assert msg.request_uri == "sip:bob@biloxi.example.com"
    assert msg.uri.user == "bob" and msg.uri.host == "biloxi.example.com"
    assert msg.via.branch == "z9hG4bK776asdhds"
    assert msg.via.rport is True
    assert msg.via.transport == "UDP" and msg.via.port is None
    vias = msg.vias
    assert [v.branch for v in vias] == ["z9hG4bK776asdhds", "z9hG4bK1", "z9hG4bK2"]
    assert vias[1].port == 5070 and vias[2].host == "[2001:db8::1]"
    assert vias[2].received == "192.0.2.1"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq == sip.CSeq(314159, "INVITE")
    assert msg.from_tag == "1928301774"
    assert msg.from_.display == 'Alice "A"'
    assert msg.to_tag is None and msg.to.display == "Bob"
    assert msg.max_forwards == 70
    assert [str(r.uri) for r in msg.routes] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert msg.record_routes == []
    (contact,) = msg.contacts
    assert contact.expires == 60 and not contact.star
    assert contact.params["+sip.instance"] == '"<urn:x>"'
    assert msg.content_type == "application/sdp"
    assert msg.headers.get("x-custom") == "kept  verbatim"
    assert msg.body == b"v=0\n"


def test_serialise_round_trip() -> None:
    msg = sip.parse_message(INVITE)
    again = sip.parse_message(msg.to_bytes())
    assert isinstance(again, sip.Request)
    assert list(again.headers.items()) == list(msg.headers.items())
    assert again.body == msg.body
    assert again.to_bytes() == msg.to_bytes()


def test_content_length_is_rewritten() -> None:
    msg = sip.parse_message(INVITE)
    msg.body = b"v=0\r\no=x\r\n"
    data = msg.to_bytes()
    assert b"Content-Length: 10\r\n" in data
    assert sip.parse_message(data, datagram=False).body == b"v=0\r\no=x\r\n"


def test_datagram_body_truncated_to_content_length() -> None:
    # RFC 3261 18.3: octets after Content-Length in a datagram are discarded.
    msg = sip.parse_message(INVITE + b"garbage")
    assert msg.body == b"v=0\n"
    with pytest.raises(sip.RemoteError) as err:
        sip.parse_message(INVITE + b"garbage", datagram=False)
    assert err.value.status == 400


def test_content_length_larger_than_datagram() -> None:
    with pytest.raises(sip.RemoteError) as err:
        sip.parse_message(INVITE[:-2])
    assert err.value.status == 400 and err.value.respondable


def test_compact_forms_and_folding() -> None:
    data = (
        b"OPTIONS sip:x@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP host.example.com\r\n ;branch=z9hG4bKabc\r\n"
        b"f: <sip:a@example.com>;tag=1\r\n"
        b"t: sip:x@example.com\r\n"
        b"i: abc\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Subject: folded\r\n\tacross lines\r\n"
        b"l: 0\r\n\r\n"
    )
    msg = sip.parse_message(data)
    assert msg.via.branch == "z9hG4bKabc"
    assert msg.headers.get("Via") == msg.headers.get("v")
    assert msg.call_id == "abc"
    assert msg.to.uri.user == "x" and msg.to.display is None
    assert msg.headers.get("subject") == "folded across lines"
    assert msg.max_forwards is None


def test_response_parse_and_reason() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n"
        b"Call-ID: q\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    msg = sip.parse_message(data)
    assert isinstance(msg, sip.Response)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.to_tag == "2"
    assert sip.parse_message(msg.to_bytes()).to_bytes() == msg.to_bytes()


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"SIP/2.0 99 Low", 400),
        (b"SIP/2.0 700 High", 400),
        (b"SIP/2.0 2000 Long", 400),
        (b"SIP/3.0 200 OK", 505),
    ],
)
def test_bad_status_lines(line: bytes, status: int) -> None:
    with pytest.raises(sip.RemoteError) as err:
        sip.parse_message(line + b"\r\nCall-ID: x\r\n\r\n")
    assert err.value.status == status
    assert not err.value.respondable


def test_bad_version_request_is_505() -> None:
    data = INVITE.replace(b" SIP/2.0\r\n", b" SIP/7.0\r\n", 1)
    with pytest.raises(sip.RemoteError) as err:
        sip.parse_message(data)
    assert err.value.status == 505 and err.value.respondable


def test_laziness_garbage_contact() -> None:
    data = INVITE.replace(b"Contact: <sip:alice@", b'Contact: <<<garbage "@', 1)
    msg = sip.parse_message(data)
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq.seq == 314159
    assert msg.via.branch == "z9hG4bK776asdhds"
    assert msg.from_tag == "1928301774"
    assert msg.max_forwards == 70
    assert len(msg.routes) == 2
    with pytest.raises(sip.RemoteError) as err:
        _ = msg.contacts
    assert err.value.status == 400 and err.value.respondable
    # Untouched headers serialise verbatim.
    assert b'Contact: <<<garbage "@pc33' in msg.to_bytes()


def test_missing_via_is_not_respondable() -> None:
    data = b"OPTIONS sip:x@y SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n"
    msg = sip.parse_message(data)
    with pytest.raises(sip.RemoteError) as err:
        _ = msg.via
    assert err.value.status == 400 and not err.value.respondable


def test_headers_api() -> None:
    h = sip.Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")])
    h.add("v", "SIP/2.0/UDP c;branch=z9hG4bK3")
    h.add("Via", "SIP/2.0/UDP top;branch=z9hG4bK0", first=True)
    assert [v.split()[1].split(";")[0] for v in h.get_all("via")] == ["top", "a", "b", "c"]
    assert "VIA" in h and "route" not in h
    h.set("Allow", "INVITE, ACK")
    h.set("allow", "OPTIONS, BYE")
    assert h.get_all("Allow") == ["OPTIONS", "BYE"]
    assert h.remove_first("Via") == "SIP/2.0/UDP top;branch=z9hG4bK0"
    assert h.remove_first("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get("Via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    h.remove("via")
    assert h.get_all("via") == []
    with pytest.raises(sip.LocalError):
        h.set("X-Bad", "a\r\nInjected: 1")
    with pytest.raises(sip.LocalError):
        h.add("bad name", "x")
    assert list(h.items()) == [("allow", "OPTIONS, BYE")]


def test_cache_invalidated_on_change() -> None:
    msg = sip.parse_message(INVITE)
    assert msg.via.branch == "z9hG4bK776asdhds"
    msg.headers.add("Via", "SIP/2.0/UDP me.example.com;branch=z9hG4bKmine", first=True)
    assert msg.via.branch == "z9hG4bKmine"
    assert len(msg.vias) == 4


def test_make_response_copies_per_8_2_6() -> None:
    req = sip.parse_message(INVITE)
    assert isinstance(req, sip.Request)
    resp = sip.make_response(req, 180, to_tag="abc")
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert resp.headers.get_lines("Via") == req.headers.get_lines("Via")
    assert resp.to_tag == "abc" and resp.from_tag == "1928301774"
    assert resp.call_id == req.call_id and resp.cseq == req.cseq
    assert "Contact" not in resp.headers
    parsed = sip.parse_message(resp.to_bytes())
    assert isinstance(parsed, sip.Response) and parsed.vias == req.vias
    assert sip.make_response(req, 486, "Busy").reason == "Busy"
    with pytest.raises(sip.LocalError):
        sip.make_response(req, 42)


def test_build_request() -> None:
    uri = sip.URI("sip", user="bob", host="example.com")
    req = sip.Request(
        "OPTIONS",
        uri,
        [
            ("Via", str(sip.Via("UDP", "127.0.0.1", 5060, {"branch": sip.new_branch()}))),
            ("From", str(sip.NameAddr(sip.URI("sip", "alice", host="a.example")).with_tag("x"))),
            ("To", str(sip.NameAddr(uri))),
            ("Call-ID", sip.new_call_id()),
            ("CSeq", str(sip.CSeq(1, "OPTIONS"))),
            ("Max-Forwards", "70"),
        ],
    )
    parsed = sip.parse_message(req.to_bytes())
    assert isinstance(parsed, sip.Request)
    parsed.check()
    assert parsed.uri == uri
    assert parsed.via.is_rfc3261 and parsed.from_tag == "x"
    with pytest.raises(sip.LocalError):
        sip.Request("BAD METHOD", uri)


def test_random_identifiers() -> None:
    assert sip.new_branch().startswith("z9hG4bK")
    assert len({sip.new_tag() for _ in range(50)}) == 50
    assert sip.new_call_id("h.example").endswith("@h.example")


def test_make_response_to_malformed_request() -> None:
    data = INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: sip:bob @biloxi", 1)
    req = sip.parse_message(data)
    assert isinstance(req, sip.Request)
    with pytest.raises(sip.RemoteError) as err:
        req.check()
    assert err.value.respondable
    resp = sip.make_response(req, err.value.status, err.value.reason, to_tag="t1")
    assert resp.headers.get("To") == "sip:bob @biloxi;tag=t1"
    assert sip.parse_message(resp.to_bytes()).headers.get("Call-ID") == req.call_id


def test_leading_crlf_and_bare_lf() -> None:
    msg = sip.parse_message(b"\r\n\r\n" + INVITE)
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    lf = INVITE.replace(b"\r\n", b"\n")
    msg = sip.parse_message(lf)
    assert msg.cseq.seq == 314159 and msg.body == b"v=0\n"
    with pytest.raises(sip.RemoteError):
        sip.parse_message(b"\r\n\r\n")


@pytest.mark.parametrize(
    "bad",
    [
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\rX: 1\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\nX: 1\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nno colon here\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
    ],
)
def test_header_block_errors(bad: bytes) -> None:
    with pytest.raises(sip.RemoteError) as err:
        sip.parse_message(bad)
    assert err.value.status == 400


def test_max_size_is_513() -> None:
    assert sip.parse_message(INVITE, max_size=len(INVITE)).call_id
    with pytest.raises(sip.RemoteError) as err:
        sip.parse_message(INVITE, max_size=len(INVITE) - 1)
    assert err.value.status == 513 and err.value.respondable


def test_uri_and_version_errors_on_request() -> None:
    unknown = INVITE.replace(b"INVITE sip:bob@biloxi.example.com", b"INVITE urn:x:y", 1)
    req = sip.parse_message(unknown)
    assert isinstance(req, sip.Request)
    with pytest.raises(sip.RemoteError) as err:
        _ = req.uri
    assert err.value.status == 416
    bad = INVITE.replace(b" SIP/2.0\r\n", b" HTTP/1.1\r\n", 1)
    with pytest.raises(sip.RemoteError) as err:
        sip.parse_message(bad)
    assert err.value.status == 400


def test_parse_message_parses_no_header_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the start line and the line boundaries are read up front."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a header value was parsed eagerly")

    for cls in (sip.URI, sip.Via, sip.NameAddr, sip.CSeq, sip.Contact):
        monkeypatch.setattr(cls, "parse", classmethod(forbidden))
    msg = sip.parse_message(INVITE)
    assert isinstance(msg, sip.Request) and msg.method == "INVITE"
    assert msg.request_uri == "sip:bob@biloxi.example.com"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    with pytest.raises(AssertionError):
        _ = msg.via


def test_each_accessor_parses_only_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = sip.NameAddr.parse.__func__  # type: ignore[attr-defined]

    def spy(cls: type, text: str) -> sip.NameAddr:
        calls.append(text)
        return real(cls, text)  # type: ignore[no-any-return]

    monkeypatch.setattr(sip.NameAddr, "parse", classmethod(spy))
    plain = INVITE.replace(b'"Alice \\"A\\"" <', b'"Alice A" <', 1)
    assert plain != INVITE
    msg = sip.parse_message(plain)
    assert msg.from_tag == "1928301774" and msg.to_tag is None
    assert calls == []  # tags come without parsing From/To (escaped quotes would)
    assert len(msg.routes) == 2
    assert calls == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert len(msg.routes) == 2
    assert len(calls) == 2  # cached
