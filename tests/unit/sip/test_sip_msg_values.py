"""URIs and typed header values: parse, serialise, refuse."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivoz import sip

# Every test runs with the compiled sip hot path and in Python only.
pytestmark = pytest.mark.usefixtures("sip_core")


def test_sip_uri_parts() -> None:
    uri = sip.URI.parse("sips:al%69ce:se%63ret@Example.COM:5061;transport=tcp;lr?subject=hi&x=y")
    assert uri.scheme == "sips" and uri.is_secure
    assert uri.user == "alice" and uri.password == "secret"
    assert uri.host == "Example.COM" and uri.port == 5061
    assert uri.params == {"transport": "tcp", "lr": None}
    assert uri.transport == "tcp"
    assert uri.headers == {"subject": "hi", "x": "y"}
    assert str(uri) == "sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi&x=y"


def test_uri_escapes_round_trip() -> None:
    uri = sip.URI.parse("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips:user@example.com"
    assert sip.URI.parse(str(uri)) == uri
    assert sip.URI.parse("sip:null-%00-null@example.com").user == "null-\x00-null"


def test_ipv6_reference() -> None:
    uri = sip.URI.parse("sip:[2001:db8::10]:5070;transport=udp")
    assert uri.host == "[2001:db8::10]" and uri.port == 5070
    assert str(uri) == "sip:[2001:db8::10]:5070;transport=udp"


def test_tel_uri() -> None:
    uri = sip.URI.parse("tel:+1-201-555-0123;ext=12")
    assert uri.scheme == "tel" and uri.user == "+1-201-555-0123" and uri.host == ""
    assert uri.params == {"ext": "12"}
    assert str(uri) == "tel:+1-201-555-0123;ext=12"
    assert sip.URI.parse("tel:7042;phone-context=example.com").user == "7042"


def test_other_scheme_is_opaque() -> None:
    uri = sip.URI.parse("http://example.com/x")
    assert uri.opaque == "//example.com/x" and str(uri) == "http://example.com/x"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "nocolon",
        "sip:user@",
        "sip:a b@example.com",
        "sip:<x>@example.com",
        "sip:x@example.com:99999",
        "sip:x@example.com:port",
        "sip:x@[2001:db8::1",
        "sip:%zz@example.com",
        "sip:x@exa mple.com",
        "tel:xyz",
        "tel:+",
        "sip:x@example.com;",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(sip.RemoteError) as err:
        sip.URI.parse(text)
    assert err.value.status == 400


def test_uri_with_params_and_hash() -> None:
    uri = sip.URI.parse("sip:p.example.com")
    routed = uri.with_params(lr=None)
    assert str(routed) == "sip:p.example.com;lr"
    assert str(routed.without_params("LR")) == "sip:p.example.com"
    assert hash(uri) == hash(sip.URI.parse("sip:p.example.com"))
    with pytest.raises(sip.LocalError):
        sip.URI("sip", host="")


def test_name_addr_forms() -> None:
    a = sip.NameAddr.parse('"Mr. \\"Q\\"" <sip:q@example.com;transport=udp>;tag=9')
    assert a.display == 'Mr. "Q"' and a.tag == "9"
    assert a.uri.params == {"transport": "udp"}
    assert sip.NameAddr.parse(str(a)) == a
    b = sip.NameAddr.parse("sip:q@example.com;tag=9")
    assert b.display is None and b.tag == "9" and b.uri.params == {}
    c = sip.NameAddr.parse("Bob  Smith <sip:b@example.com>")
    assert c.display == "Bob Smith"
    d = sip.NameAddr.parse("<sip:b@example.com>")
    assert str(d.with_tag("t1")) == "<sip:b@example.com>;tag=t1"


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b>',
        "Bell, Alexander <sip:a@b>",
        "<sip:a@b",
        "<sip:a@b>;=x",
        "<sip:a@b>;tag=",
        '"x" sip:a@b',
    ],
)
def test_bad_name_addrs(text: str) -> None:
    with pytest.raises(sip.RemoteError):
        sip.NameAddr.parse(text)


def test_via_forms() -> None:
    v = sip.Via.parse("SIP / 2.0 / udp  host.example.com : 5060 ;branch=z9hG4bKx;rport=1234")
    assert v.transport == "UDP" and v.host == "host.example.com" and v.port == 5060
    assert v.rport == 1234 and v.branch == "z9hG4bKx" and v.is_rfc3261
    assert str(v) == "SIP/2.0/UDP host.example.com:5060;branch=z9hG4bKx;rport=1234"
    v2 = v.with_params(received="192.0.2.1", rport="5061")
    assert v2.received == "192.0.2.1" and v2.rport == 5061
    assert sip.Via.parse("SIP/2.0/UDP h").rport is None
    for bad in (
        "SIP/2.0 h",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP h;;",
        "SIP/2.0/UDP h:x",
        "SIP/2.0/UDP h;rport=x",
    ):
        with pytest.raises(sip.RemoteError):
            _ = sip.Via.parse(bad).rport


def test_cseq() -> None:
    assert sip.CSeq.parse(" 12   REGISTER ") == sip.CSeq(12, "REGISTER")
    assert str(sip.CSeq(4294967295, "BYE")) == "4294967295 BYE"
    for bad in ("4294967296 BYE", "-1 BYE", "1", "1 2 3", "x INVITE", "1 IN VITE"):
        with pytest.raises(sip.RemoteError):
            sip.CSeq.parse(bad)
    with pytest.raises(sip.LocalError):
        sip.CSeq(-1, "BYE")
    assert dataclasses.replace(sip.CSeq(1, "INVITE"), method="ACK").method == "ACK"


def test_contact() -> None:
    star = sip.Contact.parse(" * ")
    assert star.star and star.address is None and str(star) == "*"
    c = sip.Contact.parse("<sip:u@h>;expires=3600;q=0.5")
    assert c.expires == 3600 and c.q == 0.5 and c.uri == sip.URI.parse("sip:u@h")
    # RFC 4475 3.1.2.4: an overlarge expiry may be treated as absent.
    assert sip.Contact.parse("<sip:u@h>;expires=280297596632815").expires is None
    with pytest.raises(sip.LocalError):
        sip.Contact(None, star=False)


def test_via_ipv6_forms() -> None:
    # RFC 5118 4.x: IPv6 sent-by in brackets, received as a bare IPv6address.
    v = sip.Via.parse("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3;received=2001:db8::9:255")
    assert v.host == "[2001:db8::9:1]" and v.port == 5070
    assert v.received == "2001:db8::9:255"
    assert sip.Via.parse(str(v)) == v
    m = sip.Via.parse("SIP/2.0/UDP h;maddr=[2001:db8::1]")
    assert m.params["maddr"] == "[2001:db8::1]"


def test_quoted_strings_and_escapes() -> None:
    a = sip.NameAddr.parse('"a \\" b, c; d <e>" <sip:x@y>;p="q;r,s"')
    assert a.display == 'a " b, c; d <e>'
    assert a.params == {"p": '"q;r,s"'}
    assert sip.NameAddr.parse(str(a)) == a
    h = sip.Headers([("Contact", '"x, y" <sip:a@b>;q=0.1, <sip:c@d;lr>;p="1,2"')])
    assert h.get_all("Contact") == ['"x, y" <sip:a@b>;q=0.1', '<sip:c@d;lr>;p="1,2"']


def test_lws_in_values() -> None:
    c = sip.Contact.parse('  "Q"   <sip:a@b>  ;  expires = 60 ; q = 0.5 ')
    assert c.expires == 60 and c.q == 0.5
    v = sip.Via.parse("SIP/2.0/UDP h ; branch = z9hG4bKx ; rport")
    assert v.branch == "z9hG4bKx" and v.rport is True


@pytest.mark.parametrize(
    "build",
    [
        lambda: sip.URI("sip", host="bad host"),
        lambda: sip.URI("sip", host="h", params={"a;b": None}),
        lambda: sip.URI("sip", host="h", params={"a": "x y"}),
        lambda: sip.Via("UDP", "h h"),
        lambda: sip.Via("UDP", "h", params={"branch": "a;b"}),
        lambda: sip.NameAddr(sip.URI("sip", host="h"), params={"tag": "a b"}),
        lambda: sip.NameAddr(sip.URI("sip", host="h"), display="a\r\nb"),
        lambda: sip.NameAddr(sip.URI("sip", host="h")).with_tag("x;y"),
    ],
)
def test_values_checked_when_built(build: object) -> None:
    with pytest.raises(sip.LocalError):
        build()  # type: ignore[operator]


def test_values_built_by_our_code() -> None:
    via = sip.Via("UDP", "[2001:db8::1]", 5060, {"branch": "z9hG4bKa", "rport": None})
    assert str(via.with_params(received="2001:db8::2", rport="5062")) == (
        "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa;rport=5062;received=2001:db8::2"
    )
    addr = sip.NameAddr(sip.URI("sip", "a", host="h"), "Alice, the 1st", {"+x": '"<urn:a>"'})
    assert str(addr) == '"Alice, the 1st" <sip:a@h>;+x="<urn:a>"'
    assert sip.NameAddr.parse(str(addr)) == addr


# RFC 3261 19.1.4's own examples.
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:a@h", "sips:a@h"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_uri_equivalent(a: str, b: str) -> None:
    assert sip.URI.parse(a).equivalent(sip.URI.parse(b))
    assert sip.URI.parse(b).equivalent(sip.URI.parse(a))


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_uri_not_equivalent(a: str, b: str) -> None:
    assert not sip.URI.parse(a).equivalent(sip.URI.parse(b))
    assert not sip.URI.parse(b).equivalent(sip.URI.parse(a))


@pytest.mark.parametrize(
    ("parse", "text", "build"),
    [
        (
            sip.URI.parse,
            "sip:alice@example.com:5070;transport=tcp;lr",
            lambda: sip.URI(
                "sip", "alice", None, "example.com", 5070, {"transport": "tcp", "lr": None}
            ),
        ),
        (
            sip.NameAddr.parse,
            "<sip:p1.example.com;lr>",
            lambda: sip.NameAddr(sip.URI("sip", host="p1.example.com", params={"lr": None})),
        ),
        (
            sip.NameAddr.parse,
            '"Alice" <sip:alice@example.com>;tag=a1',
            lambda: sip.NameAddr(
                sip.URI("sip", "alice", host="example.com"), "Alice", {"tag": "a1"}
            ),
        ),
        (
            sip.Via.parse,
            "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1;rport",
            lambda: sip.Via("UDP", "192.0.2.1", 5062, {"branch": "z9hG4bK1", "rport": None}),
        ),
        (sip.CSeq.parse, "7 INVITE", lambda: sip.CSeq(7, "INVITE")),
    ],
)
def test_fast_path_values_are_ordinary_frozen_values(
    parse: object, text: str, build: object
) -> None:
    """Values the parser builds without re-checking (slotted twins) behave like built ones."""
    assert callable(parse) and callable(build)
    parsed = parse(text)
    built = build()
    assert type(parsed) is type(built)
    assert parsed == built and hash(str(parsed)) == hash(str(built))
    assert str(parsed) == str(built)
    field = dataclasses.fields(parsed)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(parsed, field, None)
    # dataclasses.replace goes through the checked constructor again.
    assert dataclasses.replace(parsed) == parsed
    if isinstance(parsed, sip.URI):
        assert hash(parsed) == hash(built)
        with pytest.raises(sip.LocalError):
            dataclasses.replace(parsed, host="bad host")


_LABEL = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9\-_]{0,6}[A-Za-z0-9_])?", fullmatch=True)
_TOKEN = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,8}", fullmatch=True)
# URI parameters without "%": URI.parse checks escapes before `_parse_sip` is reached.
_PARAM = st.from_regex(r"[A-Za-z0-9\-.!*_+`'~]{1,8}", fullmatch=True)


def _params(token: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(token, st.none() | token), max_size=3).map(
        lambda items: "".join(f";{n}" if v is None else f";{n}={v}" for n, v in items)
    )


_PARAMS = _params(_TOKEN)
_COMMON_URIS = st.builds(
    lambda scheme, user, labels, port, params: (
        f"{scheme}:{'' if user is None else user + '@'}{'.'.join(labels)}"
        f"{'' if port is None else f':{port}'}{params}"
    ),
    st.sampled_from(["sip", "sips"]),
    st.none() | st.from_regex(r"[A-Za-z0-9\-_.!~*'()&=+$,]{1,10}", fullmatch=True),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.none() | st.integers(0, 99999),
    _params(_PARAM),
)


@settings(max_examples=300, deadline=None)
@given(_COMMON_URIS, _PARAMS)
def test_fast_and_general_paths_agree(text: str, header_params: str) -> None:
    """The one-regex paths give what the general parsers give for the same text."""
    try:
        fast = sip.URI.parse(text)
    except sip.RemoteError as exc:
        with pytest.raises(sip.RemoteError) as general_error:
            sip.URI._parse_sip(*text.split(":", 1))
        assert general_error.value.status == exc.status
        return
    assert fast == sip.URI._parse_sip(*text.split(":", 1))
    # " <uri> ;params" misses the name-addr regex and takes the general path.
    address = sip.NameAddr.parse(f"<{text}>{header_params}")
    assert address == sip.NameAddr.parse(f" <{text}> {header_params}")
    assert address.uri == fast
