"""RTP and RTCP fixed headers and RFC 4733 events: parse and serialise."""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2  # RFC 3550 5.1
_FIXED = struct.Struct("!BBHII")  # RFC 3550 5.1: V P X CC | M PT | seq | timestamp | SSRC
_RTCP = struct.Struct("!BBH")  # RFC 3550 6.4.1: V P RC | PT | length
_EVENT = struct.Struct("!BBH")  # RFC 4733 2.3: event | E R volume | duration


class RtpError(ValueError):
    """Not a well-formed RTP/RTCP packet (blame the sender)."""


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 4: on a multiplexed port, payload types 64-95 mean RTCP (PT 192-223)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(frozen=True, slots=True)
class Packet:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    # RFC 3550 5.3.1: profile-defined id and the extension words, verbatim.
    extension: tuple[int, bytes] | None = None
    padding: int = 0  # bytes of padding at the end, including the count byte

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type out of range: {self.payload_type}")
        if not 0 <= self.sequence <= 0xFFFF:
            raise RtpError(f"sequence number out of range: {self.sequence}")
        if not 0 <= self.timestamp <= 0xFFFFFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("timestamp or SSRC out of range")
        if len(self.csrcs) > 15:
            raise RtpError("at most 15 CSRCs")  # RFC 3550 5.1: CC is 4 bits
        if not 0 <= self.padding <= 255:
            raise RtpError("padding out of range")
        if self.extension is not None and len(self.extension[1]) % 4:
            raise RtpError("header extension length is not a multiple of 4 bytes")

    @classmethod
    def parse(cls, data: bytes) -> Packet:
        if len(data) < _FIXED.size:
            raise RtpError(f"RTP packet shorter than 12 bytes ({len(data)})")
        first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {first >> 6}")
        count = first & 0x0F
        offset = _FIXED.size + 4 * count
        if len(data) < offset:
            raise RtpError("CSRC list runs past the end")
        csrcs = struct.unpack_from(f"!{count}I", data, _FIXED.size)
        extension = None
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpError("header extension runs past the end")
            profile, words = struct.unpack_from("!HH", data, offset)
            end = offset + 4 + 4 * words
            if len(data) < end:
                raise RtpError("header extension runs past the end")
            extension = (profile, bytes(data[offset + 4 : end]))
            offset = end
        padding = 0
        end = len(data)
        if first & 0x20:
            # RFC 3550 5.1: the last octet counts the padding, itself included.
            padding = data[-1]
            if padding == 0 or offset + padding > len(data):
                raise RtpError("bad padding count")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrcs=tuple(csrcs),
            extension=extension,
            padding=padding,
        )

    def serialise(self) -> bytes:
        first = RTP_VERSION << 6 | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        out = [_FIXED.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        out.extend(struct.pack("!I", csrc) for csrc in self.csrcs)
        if self.extension is not None:
            profile, words = self.extension
            out.append(struct.pack("!HH", profile, len(words) // 4) + words)
        out.append(self.payload)
        if self.padding:
            out.append(b"\0" * (self.padding - 1) + bytes([self.padding]))
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class RtcpHeader:
    """The first 4 bytes of an RTCP packet (RFC 3550 6.4.1); `length` in 32-bit words - 1."""

    packet_type: int
    count: int
    length: int
    padding: bool = False

    @classmethod
    def parse(cls, data: bytes) -> RtcpHeader:
        if len(data) < _RTCP.size:
            raise RtpError("RTCP packet shorter than 4 bytes")
        first, packet_type, length = _RTCP.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTCP version {first >> 6}")
        if not 192 <= packet_type <= 223:
            raise RtpError(f"not an RTCP packet type: {packet_type}")
        if 4 * (length + 1) > len(data):
            raise RtpError("RTCP length runs past the end")
        return cls(packet_type, first & 0x1F, length, bool(first & 0x20))


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """RFC 4733 2.3: a named event (DTMF 0-9 * # A-D are events 0-15)."""

    event: int
    end: bool
    volume: int  # -dBm0, 0-63
    duration: int  # timestamp units

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63:
            raise RtpError("telephone-event field out of range")
        if not 0 <= self.duration <= 0xFFFF:
            raise RtpError("telephone-event duration out of range")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < _EVENT.size:
            raise RtpError("telephone-event payload shorter than 4 bytes")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialise(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF digit of events 0-15 (RFC 4733 3.2), else None."""
        return "0123456789*#ABCD"[self.event] if self.event < 16 else None
