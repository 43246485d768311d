"""SDP model and relay rewriting (RFC 8866, RFC 3264, RFC 3605, RFC 5761)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivoz import sdp

OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"a=ice-ufrag:abcd\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=candidate:1 1 UDP 2130706431 192.0.2.10 49170 typ host\r\n"
    b"a=x-unknown:keep me  exactly\r\n"
    b"a=sendonly\r\n"
    b"m=video 0 RTP/AVP 31\r\n"
    b"c=IN IP4 192.0.2.11\r\n"
    b"m=audio 49180 RTP/AVP 96\r\n"
    b"c=IN IP4 192.0.2.12\r\n"
    b"a=rtpmap:96 opus/48000/2\r\n"
    b"a=rtcp-mux\r\n"
    b"a=rtcp:49181\r\n"
)


def test_parse_fields() -> None:
    session = sdp.parse(OFFER)
    assert session.origin.session_version == 2890844526
    assert session.connection == sdp.Connection("IN", "IP4", "192.0.2.10")
    assert [m.port for m in session.media] == [49170, 0, 49180]
    assert session.media[0].formats == ("0", "8", "101")
    assert session.media_direction(0) == "sendonly"
    assert session.media_direction(2) == "sendrecv"
    assert session.media[1].rejected
    assert session.media_connection(2) == sdp.Connection("IN", "IP4", "192.0.2.12")
    assert session.media[2].rtcp_mux and session.media[2].rtcp_port == 49181
    assert session.media[0].attributes("fmtp") == ["101 0-16"]


def test_round_trip_is_verbatim() -> None:
    assert sdp.parse(OFFER).serialise() == OFFER


def test_bare_lf_is_accepted() -> None:
    assert sdp.parse(OFFER.replace(b"\r\n", b"\n")).serialise() == OFFER


@pytest.mark.parametrize(
    "body", [b"", b"hello", b"o=x 1 1 IN IP4 a\r\n", b"v=0\r\ns=-\r\n", b"v=0\r\no=a b\r\n"]
)
def test_not_sdp(body: bytes) -> None:
    with pytest.raises(sdp.SDPError):
        sdp.parse(body)


@given(st.binary(max_size=300))
def test_garbage_never_escapes_as_other_errors(data: bytes) -> None:
    try:
        sdp.parse(data)
    except sdp.SDPError:
        pass


def relay_rewrite(**options: object) -> sdp.Session:
    session = sdp.parse(OFFER)
    endpoints = [
        sdp.MediaEndpoint("203.0.113.5", 20000, 20001),
        sdp.MediaEndpoint("203.0.113.5", 20002, 20003),
        sdp.MediaEndpoint("203.0.113.5", 20004, 20005),
    ]
    return sdp.rewrite(session, endpoints, sdp.RewriteOptions(**options))  # type: ignore[arg-type]


def test_rewrite_addresses_and_ports() -> None:
    out = relay_rewrite()
    text = out.serialise().decode()
    assert out.connection == sdp.Connection("IN", "IP4", "203.0.113.5")
    assert out.media[0].port == 20000
    assert out.media[0].rtcp_port == 20001  # RFC 3605
    assert out.media[1].port == 0  # rejected stays rejected
    assert out.media[1].connection == sdp.Connection("IN", "IP4", "192.0.2.11")
    assert out.media[2].port == 20004
    assert out.media[2].connection == sdp.Connection("IN", "IP4", "203.0.113.5")
    assert out.media[2].rtcp_port == 20004  # rtcp-mux: RTCP on the RTP port
    assert text.count("a=rtcp:") == 2
    # Kept verbatim: rtpmap, fmtp, unknown attributes, direction, origin.
    for line in (
        "a=rtpmap:0 PCMU/8000",
        "a=fmtp:101 0-16",
        "a=x-unknown:keep me  exactly",
        "a=sendonly",
        "a=candidate:1 1 UDP",
        "o=alice 2890844526 2890844526 IN IP4 192.0.2.10",
    ):
        assert line in text


def test_rewrite_origin_ice_protocol_version() -> None:
    out = relay_rewrite(
        replace_origin=True,
        remove_ice=True,
        transport_protocol="RTP/AVP",
        session_version=2890844527,
    )
    text = out.serialise().decode()
    assert out.origin == sdp.Origin("alice", "2890844526", 2890844527, "IN", "IP4", "203.0.113.5")
    assert "candidate" not in text and "ice-ufrag" not in text
    assert "a=x-unknown" in text


def test_media_without_any_connection_gets_one() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    out = sdp.rewrite(sdp.parse(body), [sdp.MediaEndpoint("10.0.0.1", 30000, 30001)])
    assert out.media[0].connection == sdp.Connection("IN", "IP4", "10.0.0.1")
    assert out.media[0].lines[0] == sdp.Line("c", "IN IP4 10.0.0.1")


def test_endpoint_count_must_match() -> None:
    with pytest.raises(sdp.SDPError):
        sdp.rewrite(sdp.parse(OFFER), [None])


def test_values_are_frozen() -> None:
    session = sdp.parse(OFFER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.media = ()  # type: ignore[misc]
    with pytest.raises(sdp.SDPError):
        sdp.Line("ab", "x")
    with pytest.raises(sdp.SDPError):
        sdp.Media("audio", 70000, None, "RTP/AVP", ("0",))


def test_non_utf8_bytes_survive() -> None:
    body = OFFER.replace(b"s=-", b"s=caf\xe9")
    session = sdp.parse(body)
    assert session.serialise() == body
    out = sdp.rewrite(session, [None, None, None])
    assert b"s=caf\xe9" in out.serialise()


attribute_lines = st.sampled_from(
    [
        "a=rtpmap:0 PCMU/8000",
        "a=fmtp:101 0-15",
        "a=sendonly",
        "a=rtcp-mux",
        "a=rtcp:7001",
        "a=candidate:1 1 UDP 1 10.0.0.1 7000 typ host",
        "a=x-vendor:anything at all",
        "b=AS:64",
        "c=IN IP4 10.9.9.9",
    ]
)
media_sections = st.tuples(
    st.sampled_from([0, 7000, 7002]), st.lists(attribute_lines, max_size=5, unique=True)
)


@given(st.lists(media_sections, min_size=1, max_size=4), st.booleans())
def test_rewrite_invariants(sections: list[tuple[int, list[str]]], remove_ice: bool) -> None:
    text = "v=0\r\no=- 5 5 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    for port, lines in sections:
        text += f"m=audio {port} RTP/AVP 0\r\n" + "".join(f"{line}\r\n" for line in lines)
    session = sdp.parse(text)
    endpoints = [
        sdp.MediaEndpoint("198.51.100.1", 40000 + 2 * i, 40001 + 2 * i)
        for i in range(len(sections))
    ]
    out = sdp.rewrite(session, endpoints, sdp.RewriteOptions(remove_ice=remove_ice))
    assert sdp.parse(out.serialise()) == out
    assert out.connection == sdp.Connection("IN", "IP4", "198.51.100.1")
    for index, (before, after) in enumerate(zip(session.media, out.media, strict=True)):
        if before.rejected:
            assert after == before
            continue
        assert after.port == 40000 + 2 * index
        assert out.media_connection(index) == sdp.Connection("IN", "IP4", "198.51.100.1")
        expected_rtcp = after.port if before.rtcp_mux else after.port + 1
        assert after.rtcp_port == expected_rtcp
        kept = [
            line
            for line in before.lines
            if line.type != "c"
            and line.attribute_name != "rtcp"
            and not (remove_ice and line.attribute_name == "candidate")
        ]
        assert [
            line for line in after.lines if line.type != "c" and line.attribute_name != "rtcp"
        ] == kept


def test_m_line_errors_are_raised_where_the_line_is() -> None:
    # The m= fields are checked when the m= line is read, before later lines.
    body = b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 70000 RTP/AVP 0\r\nbogus\r\n"
    with pytest.raises(sdp.SDPError, match="m= port out of range: 70000"):
        sdp.parse(body)
    with pytest.raises(sdp.SDPError, match="m= port out of range"):
        sdp.Media.parse_m_line("audio 70000 RTP/AVP 0")
    media = sdp.Media.parse_m_line("audio 49170/2 RTP/AVP 0 8")
    assert (media.port, media.port_count, media.formats, media.lines) == (49170, 2, ("0", "8"), ())
