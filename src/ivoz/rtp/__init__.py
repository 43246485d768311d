"""Sans-IO RTP (RFC 3550), RTCP headers and telephone-event payloads (RFC 4733).

Bytes in, frozen values out, and back: ``rtp.Packet.parse(data)``,
``packet.serialise()``, ``rtp.is_rtcp(data)`` (RFC 5761 demultiplexing),
``rtp.RtcpHeader.parse``, ``rtp.TelephoneEvent.parse``. Malformed input raises
:class:`RtpError`. The relay never needs these on its forwarding path (payloads pass
untouched); players, recorders and DTMF detection do.
"""

from ivoz.rtp.packets import (
    RTP_VERSION,
    Packet,
    RtcpHeader,
    RtpError,
    TelephoneEvent,
    is_rtcp,
)

__all__ = ["RTP_VERSION", "Packet", "RtcpHeader", "RtpError", "TelephoneEvent", "is_rtcp"]
