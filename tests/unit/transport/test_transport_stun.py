"""STUN Binding keep-alives on the SIP UDP port (RFC 5626 4.4.2, RFC 5389)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import struct

from ivoz.sip.framing import FramingFailed
from ivoz.transport import Kind, Layer, Origin
from ivoz.transport.stun import MAGIC_COOKIE, binding_response, is_stun


def binding_request(transaction: bytes = b"0123456789ab") -> bytes:
    return struct.pack("!HHI12s", 0x0001, 0, MAGIC_COOKIE, transaction)


def mapped(response: bytes) -> tuple[str, int]:
    kind, length, cookie, _ = struct.unpack_from("!HHI12s", response)
    assert (kind, cookie) == (0x0101, MAGIC_COOKIE)
    attr, size = struct.unpack_from("!HH", response, 20)
    assert attr == 0x0020 and length == size + 4
    _, family, xport = struct.unpack_from("!BBH", response, 24)
    mask = MAGIC_COOKIE.to_bytes(4, "big") + (response[8:20] if family == 2 else b"")
    raw = bytes(a ^ b for a, b in zip(response[28 : 28 + size - 4], mask, strict=True))
    return str(ipaddress.ip_address(raw)), xport ^ (MAGIC_COOKIE >> 16)


def test_ipv4_binding_response() -> None:
    response = binding_response(binding_request(), "192.0.2.1", 32853)
    assert response is not None
    assert response[8:20] == b"0123456789ab"
    assert mapped(response) == ("192.0.2.1", 32853)


def test_ipv6_binding_response() -> None:
    response = binding_response(binding_request(os.urandom(12)), "2001:db8::1", 5060)
    assert response is not None
    assert mapped(response) == ("2001:db8::1", 5060)


def test_not_stun_or_not_a_binding_request() -> None:
    assert not is_stun(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
    assert binding_response(b"\x00\x01\x00\x00", "192.0.2.1", 1) is None
    success = struct.pack("!HHI12s", 0x0101, 0, MAGIC_COOKIE, b"x" * 12)
    assert binding_response(success, "192.0.2.1", 1) is None
    bad_length = struct.pack("!HHI12s", 0x0001, 8, MAGIC_COOKIE, b"x" * 12)
    assert binding_response(bad_length, "192.0.2.1", 1) is None


class Silent:
    def message_received(self, data: bytes, origin: Origin) -> None:
        raise AssertionError("STUN must not reach the SIP receiver")

    def framing_failed(self, failure: FramingFailed, origin: Origin) -> None:
        raise AssertionError


async def test_udp_listener_answers_stun() -> None:
    layer = Layer(Silent())
    bound = await layer.listen(Kind.UDP, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            answers.put_nowait(data)

    client, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", bound.port))
    try:
        client.sendto(binding_request())
        response = await asyncio.wait_for(answers.get(), 5)
        assert mapped(response) == ("127.0.0.1", client.get_extra_info("sockname")[1])
    finally:
        client.close()
        await layer.close()
