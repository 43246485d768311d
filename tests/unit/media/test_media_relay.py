"""The relay engine and ng commands, driven directly: signalling, data path, latching,
timeouts, counters, resource release. Real loopback sockets, fake clock for timers."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivoz import sdp
from ivoz.media import bencode
from ivoz.media.ng import NgCommands, NgServer
from ivoz.media.relay import Relay, RelaySettings
from support.tools import free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(port: int, *, host: str = "127.0.0.1", extra: str = "", media: str = "") -> bytes:
    text = (
        "v=0\r\n"
        f"o=- 1 1 IN IP4 {host}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 96\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:96 opus/48000/2\r\n"
        f"{extra}{media}"
    )
    return text.encode()


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


class Harness:
    def __init__(self, relay: Relay, clock: FakeClock) -> None:
        self.relay = relay
        self.clock = clock
        self.commands = NgCommands(relay)
        self.loop = asyncio.get_running_loop()

    def ng(self, **command: Any) -> dict[str, Any]:
        raw = bencode.decode(bencode.encode(command))
        reply = self.commands.handle(raw)
        return bencode.decode(bencode.encode(reply))  # type: ignore[return-value]

    async def recv(self, sock: socket.socket, timeout: float = 2.0) -> tuple[bytes, Any]:
        return await asyncio.wait_for(self.loop.sock_recvfrom(sock, 4096), timeout)

    async def nothing(self, sock: socket.socket) -> bool:
        try:
            await asyncio.wait_for(self.loop.sock_recvfrom(sock, 4096), 0.2)
        except TimeoutError:
            return True
        return False

    async def call(
        self, a: socket.socket, b: socket.socket, call_id: str = "c1", **flags: Any
    ) -> tuple[int, int]:
        """Offer from a, answer from b; returns (port a sends to, port b sends to)."""
        offer = self.ng(
            command="offer", **{"call-id": call_id, "from-tag": "ta"}, sdp=body(port(a)), **flags
        )
        assert offer[b"result"] == b"ok", offer
        to_b = sdp.parse(offer[b"sdp"]).media[0].port
        answer = self.ng(
            command="answer",
            **{"call-id": call_id, "from-tag": "ta", "to-tag": "tb"},
            sdp=body(port(b)),
            **flags,
        )
        assert answer[b"result"] == b"ok", answer
        to_a = sdp.parse(answer[b"sdp"]).media[0].port
        return to_a, to_b


def port(sock: socket.socket) -> int:
    result: int = sock.getsockname()[1]
    return result


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    base = free_port(socket.SOCK_DGRAM)
    base = min(base, 65535 - 400)
    clock = FakeClock()
    relay = Relay(
        RelaySettings(port_min=base, port_max=base + 400, timeout=60.0, max_sessions=3),
        asyncio.get_running_loop(),
        clock=clock,
    )
    yield Harness(relay, clock)
    relay.close()


def rtp(pt: int, seq: int, payload: bytes) -> bytes:
    return bytes([0x80, pt & 0x7F, seq >> 8 & 0xFF, seq & 0xFF]) + b"\0" * 8 + payload


async def test_offer_answer_and_media_both_ways(harness: Harness) -> None:
    a, b = udp(), udp()
    to_a, to_b = await harness.call(a, b)
    assert to_a != to_b and to_a % 2 == 0 and to_b % 2 == 0
    # Codec-agnostic: arbitrary payload types and bytes pass untouched.
    for pt in (0, 8, 3, 9, 18, 96, 101, 127):
        packet = rtp(pt, pt, os.urandom(160))
        a.sendto(packet, ("127.0.0.1", to_a))
        data, source = await harness.recv(b)
        assert data == packet
        assert source == ("127.0.0.1", to_b)  # symmetric: from the port b sends to
        b.sendto(packet[::-1], ("127.0.0.1", to_b))
        data, source = await harness.recv(a)
        assert data == packet[::-1]
        assert source == ("127.0.0.1", to_a)
    a.close()
    query = harness.ng(command="query", **{"call-id": "c1"})
    assert query[b"result"] == b"ok"
    tags = query[b"tags"]
    assert set(tags) == {b"ta", b"tb"}
    stream = tags[b"ta"][b"medias"][0][b"streams"][0]
    assert stream[b"stats"][b"packets"] == 8
    assert stream[b"local port"] == to_a
    assert stream[b"last packet"] > 0
    assert query[b"totals"][b"RTP"][b"packets"] == 16
    b.close()


async def test_rtcp_pairs(harness: Harness) -> None:
    a, b = udp(), udp()
    b_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        b_rtcp.bind(("127.0.0.1", port(b) + 1))
    except OSError:
        pytest.skip("RTCP port of the test endpoint is taken")
    b_rtcp.setblocking(False)
    to_a, _ = await harness.call(a, b)
    a.sendto(b"\x81\xc8rtcp-sr", ("127.0.0.1", to_a + 1))
    data, _ = await harness.recv(b_rtcp)
    assert data == b"\x81\xc8rtcp-sr"
    for s in (a, b, b_rtcp):
        s.close()


async def test_latching_learns_real_address(harness: Harness) -> None:
    a, b, nat = udp(), udp(), udp()
    to_a, to_b = await harness.call(a, b)
    # b's SDP says port(b), but b is behind NAT and really sends from `nat`.
    nat.sendto(b"from-b", ("127.0.0.1", to_b))
    a.sendto(b"from-a", ("127.0.0.1", to_a))
    assert (await harness.recv(a))[0] == b"from-b"
    assert (await harness.recv(nat))[0] == b"from-a"  # latched: the SDP port hears nothing
    assert await harness.nothing(b)
    for s in (a, b, nat):
        s.close()


async def test_strict_source_drops_and_counts(harness: Harness) -> None:
    a, b, intruder = udp(), udp(), udp()
    to_a, _ = await harness.call(a, b, flags=["strict source"])
    a.sendto(b"one", ("127.0.0.1", to_a))
    assert (await harness.recv(b))[0] == b"one"
    intruder.sendto(b"evil", ("127.0.0.1", to_a))
    assert await harness.nothing(b)
    stream = harness.ng(command="query", **{"call-id": "c1"})[b"tags"][b"ta"][b"medias"][0]
    stats = stream[b"streams"][0][b"stats"]
    assert stats[b"dropped"] == 1 and stats[b"errors"] == 1
    for s in (a, b, intruder):
        s.close()


async def test_media_handover_relatches(harness: Harness) -> None:
    a, b, moved = udp(), udp(), udp()
    to_a, to_b = await harness.call(a, b, flags=["media handover"])
    a.sendto(b"one", ("127.0.0.1", to_a))
    assert (await harness.recv(b))[0] == b"one"
    moved.sendto(b"two", ("127.0.0.1", to_a))  # a moved (new network)
    assert (await harness.recv(b))[0] == b"two"
    b.sendto(b"back", ("127.0.0.1", to_b))
    assert (await harness.recv(moved))[0] == b"back"
    for s in (a, b, moved):
        s.close()


async def test_recvonly_side_is_not_forwarded(harness: Harness) -> None:
    a, b = udp(), udp()
    offer = harness.ng(
        command="offer",
        **{"call-id": "c1", "from-tag": "ta"},
        sdp=body(port(a), extra="a=sendonly\r\n"),
    )
    to_b = sdp.parse(offer[b"sdp"]).media[0].port
    answer = harness.ng(
        command="answer",
        **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb"},
        sdp=body(port(b), extra="a=recvonly\r\n"),
    )
    to_a = sdp.parse(answer[b"sdp"]).media[0].port
    b.sendto(b"should not pass", ("127.0.0.1", to_b))
    assert await harness.nothing(a)
    a.sendto(b"music on hold", ("127.0.0.1", to_a))
    assert (await harness.recv(b))[0] == b"music on hold"
    for s in (a, b):
        s.close()


async def test_several_media_lines_and_rejected_stream(harness: Harness) -> None:
    media = "m=video 0 RTP/AVP 31\r\nm=audio 5006 RTP/AVP 8\r\na=rtcp-mux\r\n"
    offer = harness.ng(
        command="offer", **{"call-id": "c1", "from-tag": "ta"}, sdp=body(5004, media=media)
    )
    out = sdp.parse(offer[b"sdp"])
    assert [m.port for m in out.media][1] == 0
    assert out.media[0].port and out.media[2].port and out.media[0].port != out.media[2].port
    assert out.media[2].rtcp_port == out.media[2].port
    answer = harness.ng(
        command="answer",
        **{"call-id": "c1", "from-tag": "ta", "to-tag": "tb"},
        sdp=body(6004, media="m=video 0 RTP/AVP 31\r\nm=audio 0 RTP/AVP 8\r\n"),
    )
    back = sdp.parse(answer[b"sdp"])
    assert [m.port for m in back.media][1:] == [0, 0]
    side = harness.relay.calls["c1"].sides["ta"]
    assert sorted(side.legs) == [0]  # the answer's rejection freed the third line


async def test_origin_version_bumps_only_on_change(harness: Harness) -> None:
    first = harness.ng(
        command="offer", **{"call-id": "c1", "from-tag": "ta"}, sdp=body(5004), replace=["origin"]
    )
    origin = sdp.parse(first[b"sdp"]).origin
    assert origin.address == "127.0.0.1" and origin.session_version == 1
    again = harness.ng(command="offer", **{"call-id": "c1", "from-tag": "ta"}, sdp=body(5004))
    assert sdp.parse(again[b"sdp"]).origin.session_version == 1
    changed = harness.ng(
        command="offer",
        **{"call-id": "c1", "from-tag": "ta"},
        sdp=body(5004, extra="a=sendonly\r\n"),
    )
    assert sdp.parse(changed[b"sdp"]).origin.session_version == 2


async def test_ice_remove_and_transport_protocol(harness: Harness) -> None:
    extra = "a=ice-ufrag:x\r\na=ice-pwd:y\r\na=candidate:1 1 UDP 1 127.0.0.1 5004 typ host\r\n"
    reply = harness.ng(
        command="offer",
        **{"call-id": "c1", "from-tag": "ta", "transport-protocol": "RTP/AVP"},
        sdp=body(5004, extra=extra),
        ICE="remove",
    )
    text = reply[b"sdp"].decode()
    assert "ice-" not in text and "candidate" not in text and "RTP/AVP" in text
    bad = harness.ng(
        command="offer",
        **{"call-id": "c2", "from-tag": "ta", "transport-protocol": "UDP/TLS/RTP/SAVPF"},
        sdp=body(5004),
    )
    assert bad[b"result"] == b"error"


async def test_sip_source_address(harness: Harness) -> None:
    reply = harness.ng(
        command="offer",
        **{"call-id": "c1", "from-tag": "ta", "received-from": ["IP4", "127.0.0.9"]},
        sdp=body(5004, host="10.1.2.3"),
        flags=["SIP-source-address"],
    )
    assert reply[b"result"] == b"ok"
    leg = harness.relay.calls["c1"].sides["ta"].legs[0]
    assert leg.rtp.advertised == ("127.0.0.9", 5004)


async def test_timeout_frees_call(harness: Harness) -> None:
    a, b = udp(), udp()
    to_a, _ = await harness.call(a, b)
    before = harness.relay.pool.available
    harness.clock.now += 30
    a.sendto(b"alive", ("127.0.0.1", to_a))
    await harness.recv(b)
    harness.clock.now += 59
    assert harness.relay.expire() == []
    harness.clock.now += 2
    assert harness.relay.expire() == ["c1"]
    assert harness.relay.pool.available == before + 2
    stats = harness.ng(command="statistics")[b"statistics"]
    assert stats[b"totalstatistics"][b"timeoutsessions"] == 1
    assert stats[b"currentstatistics"][b"sessionsown"] == 0
    for s in (a, b):
        s.close()


async def test_load_limit(harness: Harness) -> None:
    for n in range(3):
        assert (
            harness.ng(command="offer", **{"call-id": f"c{n}", "from-tag": "t"}, sdp=body(5004))[
                b"result"
            ]
            == b"ok"
        )
    full = harness.ng(
        command="offer",
        **{"call-id": "c9", "from-tag": "t"},
        sdp=body(5004),
        supports=["load limit"],
    )
    assert full[b"result"] == b"load limit"
    old = harness.ng(command="offer", **{"call-id": "c9", "from-tag": "t"}, sdp=body(5004))
    assert old[b"result"] == b"error" and b"limit" in old[b"error-reason"]
    # An existing call may still re-offer.
    assert (
        harness.ng(command="offer", **{"call-id": "c1", "from-tag": "t"}, sdp=body(5006))[b"result"]
        == b"ok"
    )
    listed = harness.ng(command="list")
    assert sorted(listed[b"calls"]) == [b"c0", b"c1", b"c2"]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ({"command": "offer", "from-tag": "x", "sdp": "v=0"}, b"call-id"),
        ({"command": "offer", "call-id": "x", "from-tag": "x"}, b"SDP"),
        ({"command": "offer", "call-id": "x", "from-tag": "x", "sdp": "garbage"}, b"SDP"),
        (
            {"command": "answer", "call-id": "nope", "from-tag": "x", "to-tag": "y", "sdp": "v=0"},
            b"",
        ),
        ({"command": "fly"}, b"Unrecognized"),
        ({"call-id": "x"}, b"command"),
        ({"command": ["offer"]}, b"command"),
        ({"command": "delete", "call-id": "nope"}, b"not found"),
        ({"command": "query", "call-id": "nope"}, b"call-id"),
    ],
)
async def test_malformed_commands(harness: Harness, command: dict[str, Any], reason: bytes) -> None:
    reply = harness.ng(**command)
    assert reply[b"result"] == b"error"
    assert reason in reply[b"error-reason"]


async def test_server_cookie_cache_and_garbage(harness: Harness) -> None:
    server = NgServer(harness.commands.handle)
    offer = b"abc " + bencode.encode(
        {"command": "offer", "call-id": "c1", "from-tag": "ta", "sdp": body(5004)}
    )
    first = server.process(offer, 0.0)
    second = server.process(offer, 1.0)  # retransmission: same reply, not run twice
    assert first == second and first is not None and first.startswith(b"abc d")
    assert server.executed == 1 and server.retransmissions == 1
    assert len(harness.relay.calls) == 1
    assert server.process(b"p1 d7:command4:pinge", 2.0) == b"p1 d6:result4:ponge"
    # After the cache lifetime the cookie runs again (a new command reusing it).
    third = server.process(offer, 100.0)
    assert server.executed == 3 and third is not None
    bad = server.process(b"x1 d7:command", 101.0)
    assert bad is not None and bencode.decode(bad[3:])[b"result"] == b"error"  # type: ignore[index]
    assert server.process(b"nocookie", 101.0) is None
    assert server.process(b"x2 i5e", 101.0) is not None
    assert server.process(b"x3 le", 101.0) is not None


async def test_delete_frees_everything_across_thousands_of_calls(harness: Harness) -> None:
    harness.relay.settings = RelaySettings(
        port_min=harness.relay.settings.port_min, port_max=harness.relay.settings.port_max
    )
    fds_before = len(os.listdir("/proc/self/fd"))
    free_before = harness.relay.pool.available
    for n in range(2000):
        call = {"call-id": f"leak-{n}", "from-tag": "a"}
        assert harness.ng(command="offer", **call, sdp=body(5004))[b"result"] == b"ok"
        assert (
            harness.ng(command="answer", **call, **{"to-tag": "b"}, sdp=body(6004))[b"result"]
            == b"ok"
        )
        assert harness.ng(command="delete", **call)[b"result"] == b"ok"
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert harness.relay.pool.available == free_before
    assert harness.relay.calls == {}
    totals = harness.ng(command="statistics")[b"statistics"][b"totalstatistics"]
    assert totals[b"managedsessions"] == 2000 and totals[b"regularterminatedsessions"] == 2000


ng_values = st.recursive(
    st.sampled_from([b"offer", b"answer", b"delete", b"query", b"list", b"ping", b"c1", b"ta"])
    | st.binary(max_size=30)
    | st.integers(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    b"command",
                    b"call-id",
                    b"from-tag",
                    b"to-tag",
                    b"sdp",
                    b"flags",
                    b"replace",
                    b"ICE",
                ]
            )
            | st.binary(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=ng_values, raw=st.binary(max_size=60))
async def test_fuzzed_commands_always_get_an_answer(
    harness: Harness, value: bencode.Value, raw: bytes
) -> None:
    server = NgServer(harness.commands.handle)
    for n, payload in enumerate((bencode.encode(value), raw)):
        reply = server.process(b"f%d " % n + payload, 0.0)
        assert reply is not None
        decoded = bencode.decode(reply.partition(b" ")[2])
        assert isinstance(decoded, dict)
        assert decoded[b"result"] in (b"ok", b"pong", b"error", b"load limit")
    harness.relay.close()


async def test_reinvite_from_the_callee_keeps_ports_and_media(harness: Harness) -> None:
    a, b = udp(), udp()
    to_a, to_b = await harness.call(a, b)
    # Bob puts Alice on hold: his re-INVITE has From = Bob's tag, To = Alice's.
    reoffer = harness.ng(
        command="offer",
        **{"call-id": "c1", "from-tag": "tb", "to-tag": "ta"},
        sdp=body(port(b), extra="a=sendonly\r\n"),
    )
    assert reoffer[b"result"] == b"ok"
    assert sdp.parse(reoffer[b"sdp"]).media[0].port == to_a  # where Alice keeps sending
    reanswer = harness.ng(
        command="answer",
        **{"call-id": "c1", "from-tag": "tb", "to-tag": "ta"},
        sdp=body(port(a), extra="a=recvonly\r\n"),
    )
    assert reanswer[b"result"] == b"ok"
    assert sdp.parse(reanswer[b"sdp"]).media[0].port == to_b
    b.sendto(b"hold music", ("127.0.0.1", to_b))
    assert (await harness.recv(a))[0] == b"hold music"
    a.sendto(b"on hold: dropped", ("127.0.0.1", to_a))
    assert await harness.nothing(b)
    assert set(harness.relay.calls["c1"].sides) == {"ta", "tb"}
    for s in (a, b):
        s.close()


def test_port_pool_sockets_are_bound_and_non_blocking() -> None:
    from ivoz.media.ports import PortPool

    port = free_port() & ~1
    pool = PortPool("127.0.0.1", port, port + 3)
    pair = pool.allocate()
    try:
        assert pair.rtp.getsockname() == ("127.0.0.1", pair.rtp_port)
        assert pair.rtcp.getsockname() == ("127.0.0.1", pair.rtp_port + 1)
        for sock in (pair.rtp, pair.rtcp):
            assert not sock.getblocking() and sock.gettimeout() == 0.0
            assert sock.type == socket.SOCK_DGRAM
            with pytest.raises(BlockingIOError):
                sock.recvfrom(10)
    finally:
        pool.release(pair)
