"""Sans-IO framing of SIP messages on stream transports (TCP, TLS).

A :class:`StreamFramer` is fed whatever byte chunks the socket delivers and returns
events: one :class:`MessageFramed` per whole SIP message (the header block up to the
empty line plus exactly Content-Length bytes of body), :class:`KeepAlivePinged` for an
RFC 5626 double-CRLF ping (the transport answers :data:`PONG`), and at most one
:class:`FramingFailed` after which the stream cannot be resynchronised and the
connection must be closed.

The framer looks at nothing but the header block's end and the Content-Length header;
parsing the message is left to :func:`ivoz.sip.parse_message` (``datagram=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PING",
    "PONG",
    "FramerEvent",
    "FramingFailed",
    "KeepAlivePinged",
    "MessageFramed",
    "StreamFramer",
]

# RFC 5626 4.4.1: the client's keep-alive "ping" is a double CRLF, the "pong" one CRLF.
PING = b"\r\n\r\n"
PONG = b"\r\n"

_CRLF = b"\r\n"
_HEADER_END = b"\r\n\r\n"
_CR_LF_BYTES = b"\r\n"  # as ints: `buffer[0] in _CR_LF_BYTES`
# Header names that carry the body length: full and compact form (RFC 3261 7.3.3, 20.14).
_LENGTH_NAMES = (b"content-length", b"l")
# Longest Content-Length value we accept, in digits: more cannot fit in any size limit.
_MAX_LENGTH_DIGITS = 10


@dataclass(frozen=True, slots=True)
class MessageFramed:
    """One whole SIP message, header block and body, exactly as received."""

    data: bytes


@dataclass(frozen=True, slots=True)
class KeepAlivePinged:
    """The peer sent a double-CRLF keep-alive; answer it with :data:`PONG`."""


@dataclass(frozen=True, slots=True)
class FramingFailed:
    """The stream cannot be framed: answer ``status`` if possible, then close.

    ``header_block`` holds the header block of the offending message when one was
    read (without its final empty line), so that the caller can try to build a
    response from it; it is empty when the header block itself was the problem.
    """

    status: int
    reason: str
    header_block: bytes = b""


FramerEvent = MessageFramed | KeepAlivePinged | FramingFailed


class StreamFramer:
    """Cuts a byte stream into SIP messages; one instance per connection."""

    __slots__ = ("_buffer", "_failed", "_max_size", "_scan_from")

    def __init__(self, max_message_size: int = 65535) -> None:
        if max_message_size < 32:
            raise ValueError(f"max_message_size {max_message_size} is too small")
        self._max_size = max_message_size
        self._buffer = bytearray()
        # Where to resume looking for the header block's end (avoids rescanning).
        self._scan_from = 0
        self._failed = False

    @property
    def failed(self) -> bool:
        """True once a :class:`FramingFailed` was returned: the stream is unusable."""
        return self._failed

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[FramerEvent]:
        """Take the next chunk of the stream; return the events it completes."""
        if self._failed:
            return []
        self._buffer += data
        events: list[FramerEvent] = []
        while self._buffer:
            event = self._next_event()
            if event is None:
                break
            events.append(event)
            if isinstance(event, FramingFailed):
                self._failed = True
                self._buffer.clear()
                break
        return events

    def _next_event(self) -> FramerEvent | None:
        buffer = self._buffer
        while buffer and buffer[0] in _CR_LF_BYTES:
            if buffer[:4] == PING:
                # RFC 5626 4.4.1: a double CRLF between messages is a keep-alive ping.
                del buffer[:4]
                self._scan_from = 0
                return KeepAlivePinged()
            if len(buffer) < 4 and PING.startswith(bytes(buffer)):
                return None  # could still become a ping
            # RFC 3261 7.5: CRLFs before the start line are ignored (so is a lone "pong"
            # and a bare CR or LF left over from a sloppy peer's keep-alive).
            del buffer[: 2 if buffer[:2] == _CRLF else 1]
            self._scan_from = 0
        if not buffer:
            return None
        end = buffer.find(_HEADER_END, self._scan_from)
        if end < 0:
            if len(buffer) > self._max_size:
                # RFC 3261 21.5.14: 513 Message Too Large; the header block alone overflows.
                return FramingFailed(513, "Message Too Large")
            # The terminator may straddle chunks: rescan the last three bytes next time.
            self._scan_from = max(0, len(buffer) - 3)
            return None
        header_block = bytes(buffer[:end])
        body_start = end + 4
        length = _content_length(header_block)
        if isinstance(length, FramingFailed):
            return length
        total = body_start + length
        if total > self._max_size:
            return FramingFailed(513, "Message Too Large", header_block)
        if len(buffer) < total:
            self._scan_from = end  # header block known; wait for the body
            return None
        message = bytes(buffer[:total])
        del buffer[:total]
        self._scan_from = 0
        return MessageFramed(message)


def _content_length(header_block: bytes) -> int | FramingFailed:
    """The Content-Length of a header block, or why the stream cannot be framed."""
    found: int | None = None
    lines = header_block.split(_CRLF)
    for index, line in enumerate(lines):
        if index == 0 or not line or line[:1] in b" \t":
            continue  # start line, or a folded continuation (RFC 3261 7.3.1)
        colon = line.find(b":")
        if colon < 0:
            continue  # malformed header line: the parser will reject it later
        name = line[:colon].strip().lower()
        if name not in _LENGTH_NAMES:
            continue
        value = line[colon + 1 :]
        # RFC 3261 7.3.1: a header value may continue on folded lines.
        for more in lines[index + 1 :]:
            if not more or more[:1] not in b" \t":
                break
            value += b" " + more
        text = value.strip()
        if not text.isdigit() or len(text) > _MAX_LENGTH_DIGITS:
            return FramingFailed(400, "Bad Content-Length", header_block)
        length = int(text)
        if found is not None and found != length:
            return FramingFailed(400, "Conflicting Content-Length", header_block)
        found = length
    if found is None:
        # RFC 3261 18.3: on a stream transport Content-Length MUST be present; without
        # it the message's end is unknown and the stream cannot be resynchronised.
        return FramingFailed(400, "Missing Content-Length", header_block)
    return found
