"""The compiled hot path (src/ivoz/sip/_scan.c) gives the Python code's answers.

Each C twin is run against the Python code it stands in for, on generated input: text
assembled from the fragments SIP values are made of (so that the clean shapes the C
code accepts, and their near misses, come up often) and arbitrary text. Where C answers,
its answer must be the Python one; where it hands back (None), Python decides. At the
message level, parsing and every lazy accessor give the same value or the same error
both ways.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivoz import sip
from ivoz.sip import message, speedups, values
from ivoz.sip.headers import _KNOWN

if not speedups.available():
    if os.environ.get("CI") == "true":
        raise RuntimeError(
            "the compiled sip core (src/ivoz/sip/_scan.c) was not built: "
            "install a C compiler and the Python headers (gcc, python3-dev), then make test"
        )
    pytest.skip("the compiled sip core was not built (no C compiler?)", allow_module_level=True)

from ivoz.sip import _scan

MANY = settings(max_examples=1500)

# Pieces of SIP header values: near misses of every branch of the C code.
FRAGMENTS = [
    *("SIP/2.0/", "SIP/2.0/UDP ", "SIP/2.0/WSS ", "SIP/2.0/WS ", "SIP/2.0/udp ", "SIP/3.0/"),
    *("SIP/2.0/SCTP ", "SIP/2.0/TLS", " ", "  ", "\t", ""),
    *("host", "example.com", "a-", "-b", "_x", "192.0.2.1", "[2001:db8::1]", "h.", "."),
    *(":", ":5060", ":65535", ":65536", ":123456", ":0", ":x", ";", ";;", "="),
    *(";branch=z9hG4bK776", ";rport", ";received=192.0.2.1", ";BRANCH=X", ";lr"),
    *(";tag=abc", ";TAG=Z9", ";tag", ";tag=", ";x-tag=1", ";tagx=2", "tag", ";a=b;c"),
    *('"', '"Bob"', "\\", "'", "%", "%41", "?", "&", "$", ",", "@", "<", ">", "<>"),
    *("<sip:", "<sips:", "<SIP:", "sip:", "sips:", "tel:", "alice", "alice@", "a;b@"),
    *("bob:pw@", "user=phone", ";transport=tcp", ";maddr=[::1]", "/", "[", "]"),
    *("INVITE", "ACK", "FOO", "1", "102", "4294967295", "4294967296", "00000000001"),
    *("12345678901", "é", "\x80", "\udc80", "\x00", "\r", "\n", "\r\n"),
]
fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)


def mostly(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """One of `good` four times out of five, else one of `bad` (a near miss)."""
    return st.sampled_from(good * (4 * max(1, len(bad)) // max(1, len(good)) + 1) + bad)


def joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


param = joined(
    st.just(";"),
    mostly(
        ["branch", "BRANCH", "rport", "lr", "tag", "TAG", "Tag", "x-tag", "a", "A", "user"],
        ["", " a", "a ", "\xe9", '"q"', "a%41", "a:b", "ta g"],
    ),
    mostly(["=", "", "="], [" = ", "= ", "=="]),
    mostly(
        ["z9hG4bK776", "x", "192.0.2.1", "1", "TCP", "phone", "abc", "a.b-c_d"],
        ["", "[::1]", '"q"', "a b", "/x:y", "a&b", "\xe9", "a,b"],
    ),
)
params = st.lists(param, max_size=4).map("".join)
host = mostly(
    ["host", "Example.COM", "192.0.2.1", "h.", "_x", "a-b.c"],
    ["a-", "-b", "[2001:db8::1]", "", "\xe9", "h o", "h@"],
)
port = mostly(["", ":5060", ":65535", ":0", ":1"], [":65536", ":123456", ":", ":x", ": 1"])
tail = mostly([""], [" ", ",", ";", "x", " ;a"])
via_text = joined(
    mostly(["SIP/2.0/"], ["SIP/3.0/", "sip/2.0/", "SIP / 2.0 /", "SIP/2.0"]),
    mostly(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"], ["udp", "WSX", "U", ""]),
    mostly([" "], ["  ", "\t", ""]),
    host,
    port,
    params,
    tail,
)
address_text = joined(
    mostly([""], ['"Bob" ', "Bob ", '"a\\"b" ']),
    mostly(["<"], [""]),
    mostly(["sip:", "sips:"], ["SIP:", "tel:", "sipx:", "sip"]),
    mostly(["", "alice@", "a;b=c@", "a.b-c@"], ["bob:pw@", "@", "al%41ce@", "x y@", "\xe9@"]),
    host,
    port,
    params,
    mostly([">"], ["", ">>", " >"]),
    params,
    tail,
)
cseq_text = joined(
    mostly([""], [" ", "\t"]),
    mostly(["1", "102", "0", "4294967295"], ["4294967296", "12345678901", "", "x", "-1"]),
    mostly([" "], ["  ", "\t", "", "\xa0"]),
    mostly(["INVITE", "ACK", "FOO"], ["in vite", "", "\xe9", "<x>"]),
    mostly([""], [" ", "\t", " x"]),
)
any_text = st.one_of(via_text, address_text, cseq_text, fragment_text, st.text(max_size=40))


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """What `fn` gives: ("value", result) or ("error", (status, reason))."""
    try:
        return "value", fn()
    except sip.RemoteError as exc:
        return "error", (exc.status, exc.reason)


def both(fn: Callable[[], Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """`fn`'s outcome with the compiled code, then in Python only."""
    try:
        speedups.use_compiled(True)
        compiled = outcome(fn)
        speedups.use_compiled(False)
        python = outcome(fn)
    finally:
        speedups.use_compiled(True)
    return compiled, python


@MANY
@given(any_text)
def test_via_matches_python(text: str) -> None:
    compiled, python = both(lambda: sip.Via.parse(text))
    assert compiled == python
    if _scan.via(text) is not None:
        assert values._FAST_VIA_RE.fullmatch(text) is not None


@MANY
@given(any_text)
def test_address_matches_python(text: str) -> None:
    compiled, python = both(lambda: sip.NameAddr.parse(text))
    assert compiled == python
    if _scan.address(text) is not None:
        assert values._FAST_ADDR_RE.fullmatch(text) is not None


@MANY
@given(any_text)
def test_cseq_matches_python(text: str) -> None:
    compiled, python = both(lambda: sip.CSeq.parse(text))
    assert compiled == python


@MANY
@given(any_text)
def test_tag_matches_python(text: str) -> None:
    found = _scan.tag(text, message._SLOW)
    if found is message._SLOW:
        return
    python = message._fast_tag(text)
    if python is message._SLOW:
        # Python parses the whole address then; C may only answer where that succeeds.
        python = sip.NameAddr.parse(text).params.get("tag")
    assert found == python


@given(
    st.lists(st.sampled_from(["via", "to", "call-id", "cseq", "Via", "x", "via "]), max_size=6),
    st.sampled_from(["via", "call-id", "x", "Via"]),
    st.text(alphabet=" \tab\xe9\u20ac", max_size=6),
)
def test_single_matches_python(keys: list[str], key: str, value: str) -> None:
    lines = [(k, ":", value + str(i) + value) for i, k in enumerate(keys)]
    assert _scan.single(keys, lines, key) == message._py_single(keys, lines, key)


# -- whole messages ---------------------------------------------------------------------

START_LINES = [
    "INVITE sip:bob@example.com SIP/2.0",
    "OPTIONS sip:example.com SIP/2.0",
    "SIP/2.0 200 OK",
    "INVITE  sip:bob@example.com SIP/2.0",
    "FOO sip:x SIP/2.1",
    "BYE sip:x SIP/3.0",
    "INVITE sip:x",
    "ACK sip:x sip/2.0",
]
HEADER_LINES = [
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport",
    "v: SIP/2.0/TCP h;branch=z9hG4bK2",
    "Via: SIP/2.0/UDP a, SIP/2.0/UDP b",
    "To: <sip:bob@example.com>",
    "t: Bob <sip:bob@example.com>;tag=9",
    "From: <sip:alice@example.com>;tag=1",
    'From: "A" <sip:alice@example.com>;tag=2;tag=3',
    "f: sip:alice@example.com;tag=4",
    "Call-ID: abc@host",
    "i: x y",
    "CSeq: 1 INVITE",
    "CSeq:  2   INVITE ",
    "CSeq: 1 BYE",
    "Max-Forwards: 70",
    "Max-Forwards: 256",
    "Route: <sip:p1.example.com;lr>",
    "Route: <sip:p1;lr>, <sip:p2;lr>",
    "Record-Route: <sip:rr;lr>",
    "Content-Length: 4",
    "Content-Length: 0",
    "l: 4",
    "Content-Length:  4 ",
    "content-LENGTH: 4",
    "Content-Length: 99",
    "Content-Length: x",
    "X-Custom: value",
    "X-Custom : value",
    "Bad Name: value",
    " folded continuation",
    "NoColon",
    ":empty name",
    "Subject: caf\xe9",
]


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    lines = [draw(st.sampled_from(START_LINES))]
    lines += draw(st.lists(st.sampled_from(HEADER_LINES), max_size=12))
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    ending = draw(st.sampled_from([b"\r\n\r\n", b"\n\n", b"\r\n\r\n\r\n", b"\r\n"]))
    body = draw(st.sampled_from([b"", b"v=0\r", b"v=0\r\n", b"\xffbody bytes"]))
    prefix = draw(st.sampled_from([b"", b"\r\n"]))
    return prefix + head + ending + body


def summary(data: bytes, datagram: bool, max_size: int | None) -> Callable[[], Any]:
    """Everything the parser and the lazy accessors give for `data`."""

    def run() -> Any:
        msg = sip.parse_message(data, datagram=datagram, max_size=max_size)
        seen: list[Any] = [msg.start_line, msg.headers._keys, msg.headers._lines, msg.body]
        for name in ("via", "call_id", "cseq", "from_tag", "to_tag", "routes", "max_forwards"):
            seen.append(outcome(lambda name=name: getattr(msg, name)))
        return seen

    return run


@MANY
@given(messages(), st.booleans(), st.sampled_from([None, 64, 100_000]))
def test_messages_match_python(data: bytes, datagram: bool, max_size: int | None) -> None:
    compiled, python = both(summary(data, datagram, max_size))
    assert compiled == python


@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_match_python(data: bytes, datagram: bool) -> None:
    compiled, python = both(summary(data, datagram, None))
    assert compiled == python


def test_scan_answers_only_the_clean_shape() -> None:
    clean = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nl: 0\r\n\r\n"
    first, keys, lines, body_start, length = _scan.scan(clean, _KNOWN, message._key) or ()
    assert (first, keys, body_start, length) == (
        "OPTIONS sip:x SIP/2.0",
        ["via", "content-length"],
        len(clean),
        0,
    )
    assert lines == [("Via", ":", " SIP/2.0/UDP h"), ("l", ":", " 0")]
    for unusual in (
        b"\r\n" + clean,  # leading CRLF (RFC 3261 7.5)
        clean.replace(b"\r\nl:", b"\r\n l:"),  # folding
        clean.replace(b"Via:", b"Via :"),  # space before the colon
        clean.replace(b"h\r\n", b"h\n"),  # bare LF
        clean.replace(b"\r\n\r\n", b"\n\n"),  # LF line ends
        clean[:-2],  # no empty line
    ):
        assert _scan.scan(unusual, _KNOWN, message._key) is None


def test_switch_reports_what_runs() -> None:
    assert speedups.available()
    speedups.use_compiled(False)
    try:
        assert not speedups.compiled()
        assert sip.parse_message(b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n").method == "OPTIONS"
    finally:
        speedups.use_compiled(True)
    assert speedups.compiled()
