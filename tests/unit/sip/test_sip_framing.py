"""Stream framing (RFC 3261 18.3, RFC 5626 4.4.1): whole messages out of arbitrary chunks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivoz.sip.framing import (
    PING,
    FramingFailed,
    KeepAlivePinged,
    MessageFramed,
    StreamFramer,
)


def message(body: bytes = b"", *, length_header: str = "Content-Length", extra: str = "") -> bytes:
    head = (
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK-1\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\n"
        "To: <sip:b@127.0.0.1>\r\n"
        "Call-ID: abc\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"{extra}"
        f"{length_header}: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def framed(events: list[object]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, MessageFramed)]


def test_one_message_in_one_chunk() -> None:
    data = message(b"v=0\r\n")
    assert StreamFramer().feed(data) == [MessageFramed(data)]


def test_two_messages_in_one_chunk_and_a_partial_third() -> None:
    a, b, c = message(b"x"), message(b"yy"), message(b"zzz")
    framer = StreamFramer()
    assert framed(framer.feed(a + b + c[:10])) == [a, b]
    assert framer.buffered == 10
    assert framed(framer.feed(c[10:])) == [c]
    assert framer.buffered == 0


def test_body_waits_for_content_length_bytes() -> None:
    data = message(b"0123456789")
    framer = StreamFramer()
    assert framer.feed(data[:-1]) == []
    assert framer.feed(data[-1:]) == [MessageFramed(data)]


def test_compact_form_and_folded_content_length() -> None:
    compact = message(b"abc", length_header="l")
    assert framed(StreamFramer().feed(compact)) == [compact]
    folded = message(b"abc").replace(b"Content-Length: 3", b"Content-Length:\r\n 3")
    assert framed(StreamFramer().feed(folded)) == [folded]


def test_double_crlf_is_a_ping_and_leading_crlf_is_skipped() -> None:
    data = message()
    framer = StreamFramer()
    events = framer.feed(PING + b"\r\n" + data + PING)
    assert events == [KeepAlivePinged(), MessageFramed(data), KeepAlivePinged()]


def test_ping_split_across_chunks() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [KeepAlivePinged()]


def test_lone_crlf_pong_before_a_message_is_skipped() -> None:
    data = message()
    assert StreamFramer().feed(b"\r\n" + data) == [MessageFramed(data)]


def test_missing_content_length_is_a_framing_error() -> None:
    data = message().replace(b"Content-Length: 0\r\n", b"")
    framer = StreamFramer()
    (event,) = framer.feed(data)
    assert isinstance(event, FramingFailed)
    assert event.status == 400
    assert event.header_block.startswith(b"OPTIONS sip:")
    assert framer.failed
    assert framer.feed(message()) == []  # nothing more from a broken stream


@pytest.mark.parametrize("value", ["abc", "-1", "1 2", "99999999999999"])
def test_bad_content_length(value: str) -> None:
    data = message().replace(b"Content-Length: 0", f"Content-Length: {value}".encode())
    (event,) = StreamFramer().feed(data)
    assert isinstance(event, FramingFailed)
    assert event.status == 400


def test_conflicting_content_lengths() -> None:
    data = message(extra="l: 5\r\n")
    (event,) = StreamFramer().feed(data)
    assert event == FramingFailed(
        400, "Conflicting Content-Length", data[: data.index(b"\r\n\r\n")]
    )


def test_too_large_body_is_513() -> None:
    framer = StreamFramer(max_message_size=300)
    (event,) = framer.feed(message(b"x" * 400))
    assert isinstance(event, FramingFailed)
    assert event.status == 513
    assert event.header_block  # respondable


def test_endless_header_block_is_513() -> None:
    framer = StreamFramer(max_message_size=300)
    assert framer.feed(b"OPTIONS sip:x SIP/2.0\r\n") == []
    events = framer.feed(b"X-Junk: " + b"a" * 400)
    assert [type(e) for e in events] == [FramingFailed]
    assert events[0].status == 513  # type: ignore[union-attr]


def test_crlf_flood_does_not_recurse() -> None:
    events = StreamFramer().feed(b"\n" * 100_000 + message())
    assert framed(events) == [message()]


def test_too_small_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        StreamFramer(max_message_size=10)


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=200), min_size=1, max_size=5),
    pings=st.lists(st.booleans(), min_size=5, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20),
)
def test_any_chunking_yields_the_same_messages(
    bodies: list[bytes], pings: list[bool], cuts: list[int]
) -> None:
    messages = [message(body) for body in bodies]
    stream = b"".join((PING if ping else b"") + m for m, ping in zip(messages, pings, strict=False))
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    framer = StreamFramer()
    events = []
    for start, end in itertools.pairwise(points):
        events += framer.feed(stream[start:end])
    assert framed(events) == messages
    assert sum(isinstance(e, KeepAlivePinged) for e in events) == sum(pings[: len(messages)])
    assert not framer.failed
    assert framer.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=10))
def test_garbage_never_raises(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_message_size=1000)
    for chunk in chunks:
        for event in framer.feed(chunk):
            assert isinstance(event, MessageFramed | KeepAlivePinged | FramingFailed)
