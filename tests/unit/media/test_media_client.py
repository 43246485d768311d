"""The ng client and relay-set choice against in-process relays and misbehaving fakes."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from ivoz import sdp
from ivoz.media import bencode
from ivoz.media.client import NgClient, NgFailed, NoRelay, Relay, RelaySet
from ivoz.media.ng import NgCommands, NgProtocol, NgServer
from ivoz.media.relay import Relay as Engine
from ivoz.media.relay import RelaySettings
from ivoz.state import MemoryRelayOwners
from support.tools import free_port

BODY = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class Fake(asyncio.DatagramProtocol):
    """A relay that answers with `reply(command)`, or never when it returns None."""

    def __init__(self, reply: Callable[[dict[bytes, Any]], dict[str, Any] | None]) -> None:
        self.reply = reply
        self.seen: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.append(data)
        cookie, _, payload = data.partition(b" ")
        command = bencode.decode(payload)
        assert isinstance(command, dict)
        reply = self.reply(command)
        if reply is not None and self.transport is not None:
            self.transport.sendto(cookie + b" " + bencode.encode(reply), addr)


async def serve(protocol: asyncio.DatagramProtocol) -> tuple[Relay, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: protocol, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    return Relay("127.0.0.1", port), transport


@pytest.fixture
async def real() -> AsyncIterator[tuple[Relay, Engine]]:
    loop = asyncio.get_running_loop()
    base = min(free_port(socket.SOCK_DGRAM), 65000)
    engine = Engine(RelaySettings(port_min=base, port_max=base + 200), loop)
    relay, transport = await serve(NgProtocol(NgServer(NgCommands(engine).handle), loop.time))
    yield relay, engine
    transport.close()
    engine.close()


async def test_offer_answer_delete_reach_the_owner(real: tuple[Relay, Engine]) -> None:
    relay, engine = real
    silent = Fake(lambda c: None)
    dead, dead_transport = await serve(silent)
    owners = MemoryRelayOwners()
    async with NgClient(timeout=0.3) as client:
        relays = RelaySet([Relay(dead.host, dead.port, weight=1000), relay], owners, client)
        body, chosen = await relays.offer("call-1", "ta", BODY)
        assert chosen == relay  # the heavy one timed out (retransmitted, same cookie)
        assert len(silent.seen) == 3 and len(set(silent.seen)) == 1
        assert relays.healthy[dead.name] is False
        assert await owners.get("call-1") == relay.name
        assert sdp.parse(body).media[0].port != 5004
        answered = await relays.answer("call-1", "ta", "tb", BODY)
        assert sdp.parse(answered).media[0].port not in (5004, sdp.parse(body).media[0].port)
        query = await relays.query("call-1")
        assert set(query["tags"]) == {"ta", "tb"}
        await relays.delete("call-1")
        assert await owners.get("call-1") is None
        assert engine.calls == {}
        with pytest.raises(NoRelay):
            await relays.delete("call-1")
    dead_transport.close()


async def test_load_limit_moves_on_and_errors_surface(real: tuple[Relay, Engine]) -> None:
    relay, _ = real
    full = Fake(lambda c: {"result": "load limit", "message": "full"})
    full_relay, full_transport = await serve(full)
    async with NgClient(timeout=0.5) as client:
        relays = RelaySet(
            [Relay(full_relay.host, full_relay.port, 5), relay],
            MemoryRelayOwners(),
            client,
            rng=random.Random(1),
        )
        for n in range(5):
            _, chosen = await relays.offer(f"c{n}", "t", BODY)
            assert chosen == relay
        sent = bencode.decode(full.seen[0].partition(b" ")[2])
        assert isinstance(sent, dict) and sent[b"supports"] == [b"load limit"]
        with pytest.raises(NgFailed):
            await relays.answer("c1", "t", "u", b"not sdp")
        only_full = RelaySet([full_relay], MemoryRelayOwners(), client)
        with pytest.raises(NoRelay):
            await only_full.offer("x", "t", BODY)
    full_transport.close()


async def test_health_and_weighted_choice(real: tuple[Relay, Engine]) -> None:
    relay, _ = real
    dead, dead_transport = await serve(Fake(lambda c: None))
    async with NgClient(timeout=0.2, retransmissions=0) as client:
        a, b = Relay(relay.host, relay.port, 3), Relay(dead.host, dead.port, 1)
        relays = RelaySet([a, b], MemoryRelayOwners(), client, rng=random.Random(7))
        await relays.ping_all()
        assert relays.healthy == {a.name: True, b.name: False}
        assert relays.candidates() == [a, b]  # unhealthy only as the last resort
        relays.healthy[b.name] = True
        firsts = [relays.candidates()[0] for _ in range(400)]
        assert 200 < firsts.count(a) < 380  # about 3 in 4
    dead_transport.close()


async def test_retransmission_stops_at_the_reply() -> None:
    """A lost command is resent with the same cookie; the reply stops the resending."""
    answered: list[int] = []

    def second_copy_only(command: dict[bytes, Any]) -> dict[str, Any] | None:
        answered.append(1)
        return {"result": "pong"} if len(answered) == 2 else None

    flaky = Fake(second_copy_only)
    relay, transport = await serve(flaky)
    async with NgClient(timeout=0.3, retransmissions=2) as client:
        try:
            reply = await client.request(relay.address, {"command": "ping"})
            assert reply == {"result": b"pong"}
            await asyncio.sleep(0.25)  # past the next resend's due time: none is sent
            assert len(flaky.seen) == 2 and len(set(flaky.seen)) == 1
            assert client._pending == {}
        finally:
            transport.close()
