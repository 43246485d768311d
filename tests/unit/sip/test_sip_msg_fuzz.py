"""Property tests: garbage never crashes the parser, and serialising round-trips.

Any byte string either parses or raises `sip.RemoteError`; so do mutations (truncation,
byte flips, insertions, deletions) of valid messages, and so does every lazy accessor
of whatever did parse. Generated valid messages survive serialise-then-parse unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivoz import sip
from support.tools import RFC4475

# Every test runs with the compiled sip hot path and in Python only.
pytestmark = pytest.mark.usefixtures("sip_core")

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEED = (
    b"INVITE sip:bob@biloxi.example.com;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP [2001:db8::9];branch=z9hG4bK2;received=192.0.2.1\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:p1.example.com;lr>\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60, *\r\n"
    b"Require: 100rel\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: 10\r\n"
    b"\r\n"
    b"v=0\r\ns=-\r\n"
)

VALID_FILES = [
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
]


def seeds() -> list[bytes]:
    out = [SEED]
    if RFC4475.exists():
        out += [(Path(RFC4475) / f"{n}.dat").read_bytes() for n in VALID_FILES]
    return out


def exercise(data: bytes, datagram: bool = True) -> None:
    """Parse and touch everything; only RemoteError may come out."""
    try:
        msg = sip.parse_message(data, datagram=datagram)
    except sip.RemoteError as exc:
        assert 400 <= exc.status <= 599
        return
    accessors = [
        "via",
        "vias",
        "call_id",
        "cseq",
        "from_",
        "to",
        "from_tag",
        "to_tag",
        "max_forwards",
        "routes",
        "record_routes",
        "contacts",
        "content_type",
        "expires",
    ]
    if isinstance(msg, sip.Request):
        accessors.append("uri")
    for name in accessors:
        try:
            value = getattr(msg, name)
        except sip.RemoteError:
            continue
        str(value)
    try:
        msg.check()
    except sip.RemoteError:
        pass
    else:
        if isinstance(msg, sip.Request) and msg.method != "ACK":
            sip.make_response(msg, 400)
    # Whatever parsed serialises, and the result parses again.
    again = sip.parse_message(msg.to_bytes(), datagram=False)

    def plain(m: sip.Message) -> list[tuple[str, str]]:
        return [(n, v) for n, v in m.headers.items() if sip.canonical(n) != "content-length"]

    assert plain(again) == plain(msg)
    assert again.body == msg.body


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(data: bytes, datagram: bool) -> None:
    exercise(data, datagram)


@FUZZ
@given(st.sampled_from(seeds()), st.data())
def test_mutated_valid_messages(seed: bytes, data: st.DataObject) -> None:
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete", "dup"]))
        pos = data.draw(st.integers(0, max(0, len(buf) - 1)))
        if kind == "truncate":
            del buf[pos:]
        elif kind == "flip" and buf:
            buf[pos] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            buf[pos:pos] = data.draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b"\r\n ",
                        b" ",
                        b";",
                        b",",
                        b'"',
                        b"<",
                        b">",
                        b":",
                        b"%",
                        b"\x00",
                        b"\\",
                        b"[",
                        b"=",
                        b"\xc2\xb2",
                        b"99999999999",
                    ]
                )
                | st.binary(min_size=1, max_size=8)
            )
        elif kind == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 8))]
        else:
            end = data.draw(st.integers(pos, len(buf)))
            buf[end:end] = buf[pos:end]
    exercise(bytes(buf), data.draw(st.booleans()))


# -- generated valid messages ------------------------------------------------------------

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
tokens = st.text(ALNUM + "-.!%*_+`'~", min_size=1, max_size=12)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=3).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.just("[2001:db8::1]"),
)
users = st.text(ALNUM + "-_.!~*'()&=+$,;?/ :@%\x00é", min_size=1, max_size=12)
# Parameter names and values without "%" (a URI parameter's % must start an escape).
ptokens = st.text(ALNUM + "-.!*_+`'~", min_size=1, max_size=12)
params = st.dictionaries(ptokens.map(str.lower), st.one_of(st.none(), ptokens), max_size=3)
uris = st.builds(
    lambda scheme, user, host, port, p: sip.URI(scheme, user, None, host, port, p),
    st.sampled_from(["sip", "sips"]),
    st.one_of(st.none(), users),
    hosts,
    st.one_of(st.none(), st.integers(1, 65535)),
    params,
)
displays = st.one_of(
    st.none(),
    st.text(ALNUM + ' "\\,;<>@é', max_size=12),
    st.lists(tokens, min_size=1, max_size=3).map(" ".join),
)
header_params = st.one_of(
    params,
    st.builds(lambda p, tag: {**p, "tag": tag}, params, ptokens),
    st.builds(
        lambda p, q: {**p, "x": q},
        params,
        st.text(ALNUM + ' ;,=<>"\\', max_size=8).map(
            lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'
        ),
    ),
)
addresses = st.builds(
    lambda uri, display, p: sip.NameAddr(uri, display, p), uris, displays, header_params
)
vias = st.builds(
    lambda transport, host, port, branch, p: sip.Via(
        transport, host, port, {"branch": "z9hG4bK" + branch, **p}
    ),
    st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS", "SCTP"]),
    hosts,
    st.one_of(st.none(), st.integers(1, 65535)),
    tokens,
    params,
)
unknown_values = st.text(
    st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="\r\n"), max_size=30
).map(str.strip)


@st.composite
def requests(draw: st.DrawFn) -> sip.Request:
    method = draw(st.one_of(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "BYE"]), tokens))
    via_list = draw(st.lists(vias, min_size=1, max_size=3))
    headers = sip.Headers()
    for via in via_list:
        headers.add(draw(st.sampled_from(["Via", "v", "VIA"])), str(via))
    headers.add("From", str(draw(addresses)))
    headers.add("To", str(draw(addresses)))
    headers.add(draw(st.sampled_from(["Call-ID", "i"])), draw(tokens) + "@" + draw(hosts))
    headers.add("CSeq", str(sip.CSeq(draw(st.integers(0, 2**32 - 1)), method)))
    headers.add("Max-Forwards", str(draw(st.integers(0, 255))))
    for contact in draw(st.lists(addresses, max_size=2)):
        headers.add("Contact", str(contact))
    for route in draw(st.lists(addresses, max_size=2)):
        headers.add("Route", str(route))
    for _ in range(draw(st.integers(0, 2))):
        headers.add("X-" + draw(tokens), draw(unknown_values))
    body = draw(st.binary(max_size=40))
    return sip.Request(method, draw(uris), headers, body)


@settings(max_examples=200, deadline=None)
@given(requests(), st.booleans())
def test_generated_requests_round_trip(req: sip.Request, datagram: bool) -> None:
    data = req.to_bytes()
    msg = sip.parse_message(data, datagram=datagram)
    assert isinstance(msg, sip.Request)
    # The tag fast path agrees with the full parse (read before from_/to fill the cache).
    assert (msg.from_tag, msg.to_tag) == (req.from_.tag, req.to.tag)
    msg.check()
    assert (msg.method, msg.uri) == (req.method, req.uri)
    assert msg.vias == req.vias
    assert (msg.from_, msg.to, msg.call_id, msg.cseq) == (req.from_, req.to, req.call_id, req.cseq)
    assert msg.contacts == req.contacts and msg.routes == req.routes
    assert msg.max_forwards == req.max_forwards
    assert msg.body == req.body
    assert msg.to_bytes() == data


@settings(max_examples=200, deadline=None)
@given(uris)
def test_uri_round_trip(uri: sip.URI) -> None:
    assert sip.URI.parse(str(uri)) == uri


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_value_parsers_only_raise_remote_error(text: str) -> None:
    for parse in (
        sip.URI.parse,
        sip.NameAddr.parse,
        sip.Via.parse,
        sip.CSeq.parse,
        sip.Contact.parse,
    ):
        try:
            value = parse(text)
        except sip.RemoteError:
            continue
        str(value)


@st.composite
def responses(draw: st.DrawFn) -> sip.Response:
    headers = sip.Headers()
    for via in draw(st.lists(vias, min_size=1, max_size=3)):
        headers.add("Via", str(via))
    headers.add("From", str(draw(addresses)))
    headers.add("To", str(draw(addresses)))
    headers.add("Call-ID", draw(tokens))
    headers.add("CSeq", str(sip.CSeq(draw(st.integers(0, 2**32 - 1)), draw(tokens))))
    for rr in draw(st.lists(addresses, max_size=2)):
        headers.add("Record-Route", str(rr))
    reason = draw(
        st.text(st.characters(blacklist_categories=["Cc", "Cs"]), max_size=20).map(str.strip)
    )
    return sip.Response(draw(st.integers(100, 699)), reason, headers, draw(st.binary(max_size=40)))


@settings(max_examples=150, deadline=None)
@given(responses())
def test_generated_responses_round_trip(resp: sip.Response) -> None:
    data = resp.to_bytes()
    msg = sip.parse_message(data)
    assert isinstance(msg, sip.Response)
    msg.check()
    assert (msg.status, msg.reason) == (resp.status, resp.reason)
    assert msg.vias == resp.vias and msg.record_routes == resp.record_routes
    assert (msg.from_, msg.to, msg.call_id, msg.cseq) == (
        resp.from_,
        resp.to,
        resp.call_id,
        resp.cseq,
    )
    assert msg.body == resp.body
    assert msg.to_bytes() == data
