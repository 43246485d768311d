"""Sans-IO STUN Binding answers for RFC 5626 keep-alives on the SIP UDP port.

RFC 5626 4.4.2 (and section 8) keeps UDP flows alive with STUN Binding requests sent
to the SIP port itself; the server tells them apart from SIP by their first two bits
(always 00 in STUN, RFC 5389 6, never in a SIP start line) and the magic cookie, and
answers with a Binding success response carrying XOR-MAPPED-ADDRESS (RFC 5389 15.2).
"""

from __future__ import annotations

import ipaddress
import struct

MAGIC_COOKIE = 0x2112A442  # RFC 5389 6
BINDING_REQUEST = 0x0001  # RFC 5389 18.1: method Binding, class request
BINDING_SUCCESS = 0x0101  # RFC 5389 18.1: method Binding, class success response
XOR_MAPPED_ADDRESS = 0x0020  # RFC 5389 18.2
_HEADER = struct.Struct("!HHI12s")


def is_stun(data: bytes) -> bool:
    """Whether a datagram looks like STUN (RFC 5389 6: two zero bits, the cookie)."""
    return len(data) >= 20 and data[0] < 0x40 and data[4:8] == b"\x21\x12\xa4\x42"


def binding_response(data: bytes, host: str, port: int) -> bytes | None:
    """The success response to a Binding request from ``host:port``; None otherwise.

    Requests with attributes are answered too (RFC 5389 7.3.1 lets a server ignore
    comprehension-optional ones; we need none of them).
    """
    if not is_stun(data):
        return None
    kind, length, _, transaction = _HEADER.unpack_from(data)
    if kind != BINDING_REQUEST or length % 4 or 20 + length != len(data):
        return None  # RFC 5389 7.3: malformed or not a Binding request: silently dropped
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    # RFC 5389 15.2: X-Port is the port XOR the cookie's top 16 bits; X-Address is the
    # address XOR the cookie (IPv4) or XOR the cookie and transaction id (IPv6).
    xport = port ^ (MAGIC_COOKIE >> 16)
    mask = MAGIC_COOKIE.to_bytes(4, "big")
    family = 0x01
    if address.version == 6:
        mask += transaction
        family = 0x02
    xaddress = bytes(a ^ b for a, b in zip(address.packed, mask, strict=True))
    value = struct.pack("!BBH", 0, family, xport) + xaddress
    attribute = struct.pack("!HH", XOR_MAPPED_ADDRESS, len(value)) + value
    return _HEADER.pack(BINDING_SUCCESS, len(attribute), MAGIC_COOKIE, transaction) + attribute
