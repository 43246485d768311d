"""ivoz.rtp: RTP (RFC 3550), RTCP header, RFC 5761 demultiplexing, RFC 4733 events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivoz import rtp

packets = st.builds(
    rtp.Packet,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: rtp.Packet) -> None:
    assert rtp.Packet.parse(packet.serialise()) == packet


@given(st.binary(max_size=80))
def test_garbage_raises_only_rtp_error(data: bytes) -> None:
    try:
        rtp.Packet.parse(data)
    except rtp.RtpError:
        pass
    try:
        rtp.RtcpHeader.parse(data)
    except rtp.RtpError:
        pass


def test_known_packet() -> None:
    data = bytes.fromhex("80e0 0001 000000a0 deadbeef") + b"\xff" * 160
    packet = rtp.Packet.parse(data)
    assert (packet.payload_type, packet.marker, packet.sequence) == (96, True, 1)
    assert (packet.timestamp, packet.ssrc, len(packet.payload)) == (160, 0xDEADBEEF, 160)
    assert not rtp.is_rtcp(data)


def test_rtcp_demux_and_header() -> None:
    sender_report = bytes.fromhex("80c8 0006") + b"\0" * 24
    assert rtp.is_rtcp(sender_report)
    header = rtp.RtcpHeader.parse(sender_report)
    assert (header.packet_type, header.count, header.length) == (200, 0, 6)
    with pytest.raises(rtp.RtpError):
        rtp.RtcpHeader.parse(bytes.fromhex("80c8 0009") + b"\0" * 24)


def test_telephone_event() -> None:
    event = rtp.TelephoneEvent.parse(bytes.fromhex("0b8a0320"))
    assert event == rtp.TelephoneEvent(11, True, 10, 800)
    assert event.digit == "#"
    assert event.serialise() == bytes.fromhex("0b8a0320")
    with pytest.raises(rtp.RtpError):
        rtp.TelephoneEvent.parse(b"\x01")


def test_values_are_checked() -> None:
    with pytest.raises(rtp.RtpError):
        rtp.Packet(128, 0, 0, 0)
    with pytest.raises(rtp.RtpError):
        rtp.Packet.parse(bytes.fromhex("400000000000000000000000"))  # version 1
