"""Connection limits and the handshake deadline of the transport layer, over loopback.

Every scenario runs on both event loops the platform meets: asyncio (the tests' default)
and uvloop (what ``ivoz run`` picks), since TLS is started by hand (``loop.start_tls``)
after the limits are checked. Limits are small and deadlines short (0.3 s); nothing
here measures speed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from ivoz.sip.framing import FramingFailed
from ivoz.transport import Address, Kind, Layer, Origin, TransportError
from ivoz.transport.layer import ConnectionLimits
from ivoz.transport.tls import certificate_files, client_context, server_context

MESSAGE = (
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK-1\r\n"
    b"Call-ID: abc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)
ECHO = b"echo:" + MESSAGE
DEADLINE = 0.3  # seconds: the handshake timeout of these tests
WAIT = 5.0  # seconds: how long a test waits for something that should come at once

Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    runner = asyncio.run if request.param == "asyncio" else uvloop.run

    def run(scenario: Coroutine[Any, Any, None]) -> None:
        runner(scenario)

    return run


class Echo:
    """A receiver that answers every message over its connection with ``echo:`` + it."""

    def __init__(self) -> None:
        self.layer: Layer | None = None
        self.received: list[tuple[bytes, Origin]] = []

    def message_received(self, data: bytes, origin: Origin) -> None:
        self.received.append((data, origin))
        assert self.layer is not None and origin.connection is not None
        self.layer.send(b"echo:" + data, origin.connection)

    def framing_failed(self, failure: FramingFailed, origin: Origin) -> None:
        pass


def make_layer(**limits: Any) -> tuple[Layer, Echo]:
    echo = Echo()
    layer = Layer(echo, limits=ConnectionLimits(**limits))
    echo.layer = layer
    return layer, echo


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_tcp(port: int, source: str = "127.0.0.1") -> Stream:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def talks(stream: Stream) -> bool:
    """Whether a SIP message over this stream comes back echoed."""
    reader, writer = stream
    writer.write(MESSAGE)
    return await asyncio.wait_for(reader.readexactly(len(ECHO)), WAIT) == ECHO


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Whether the other side closes this stream (EOF or reset) without a word."""
    try:
        data = await asyncio.wait_for(reader.read(), WAIT)
    except ConnectionError:
        return True
    return data == b""


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def close(*streams: Stream) -> None:
    for _, writer in streams:
        writer.close()


# -- incoming limits -----------------------------------------------------------------------


def test_per_ip_limit_refuses_the_extra_connection_and_keeps_the_others(run: Run) -> None:
    async def scenario() -> None:
        layer, echo = make_layer(max_connections=10, max_per_ip=2)
        bound = await layer.listen(Kind.TCP, "127.0.0.1", 0)
        first, second = await open_tcp(bound.port), await open_tcp(bound.port)
        try:
            assert await talks(first) and await talks(second)
            reader, writer = over = await open_tcp(bound.port)
            writer.write(MESSAGE)  # never read: the connection is refused at accept
            assert await closed_by_peer(reader)
            close(over)
            assert layer.stats.refused_max_per_ip == 1
            assert layer.stats.refused_max_connections == 0
            assert len(echo.received) == 2
            # the two admitted connections are untouched
            assert await talks(first) and await talks(second)
            # another address of the host is another peer
            other = await open_tcp(bound.port, "127.0.0.2")
            assert await talks(other)
            close(other)
            # a slot freed by a closed connection is taken again
            close(first)
            await until(lambda: layer.open_connections == 1)
            again = await open_tcp(bound.port)
            assert await talks(again)
            close(again, second)
        finally:
            await layer.close()

    run(scenario())


def test_total_limit_refuses_whatever_the_address(run: Run) -> None:
    async def scenario() -> None:
        layer, _ = make_layer(max_connections=3, max_per_ip=2)
        bound = await layer.listen(Kind.TCP, "127.0.0.1", 0)
        admitted = [
            await open_tcp(bound.port, "127.0.0.1"),
            await open_tcp(bound.port, "127.0.0.1"),
            await open_tcp(bound.port, "127.0.0.2"),
        ]
        try:
            for stream in admitted:
                assert await talks(stream)
            assert layer.open_connections == 3
            over = await open_tcp(bound.port, "127.0.0.3")  # a fresh address, still too many
            assert await closed_by_peer(over[0])
            close(over)
            assert layer.stats.refused_max_connections == 1
            assert layer.stats.refused_max_per_ip == 0
            for stream in admitted:
                assert await talks(stream)
        finally:
            close(*admitted)
            await layer.close()

    run(scenario())


async def tls_stream(port: int, context: ssl.SSLContext) -> Stream:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )


async def ws_accepted(stream: Stream) -> tuple[WSConnection, bool]:
    """Run the WebSocket upgrade with the ``sip`` subprotocol; whether it was accepted."""
    reader, writer = stream
    ws = WSConnection(ConnectionType.CLIENT)
    writer.write(ws.send(Request(host="127.0.0.1", target="/", subprotocols=["sip"])))
    while True:
        data = await asyncio.wait_for(reader.read(4096), WAIT)
        if not data:
            return ws, False
        ws.receive_data(data)
        for event in ws.events():
            return ws, isinstance(event, AcceptConnection)


async def ws_talks(stream: Stream, ws: WSConnection) -> bool:
    reader, writer = stream
    writer.write(ws.send(TextMessage(data=MESSAGE.decode())))
    got = ""
    while len(got) < len(ECHO):
        ws.receive_data(await asyncio.wait_for(reader.read(65536), WAIT))
        got += "".join(e.data for e in ws.events() if isinstance(e, TextMessage))
    return got.encode() == ECHO


@pytest.mark.parametrize("kind", [Kind.TLS, Kind.WS, Kind.WSS])
def test_limit_refuses_before_any_tls_or_websocket_handshake(
    run: Run, kind: Kind, tmp_path: Path
) -> None:
    files = certificate_files(tmp_path, "127.0.0.1")

    async def scenario() -> None:
        layer, _ = make_layer(max_per_ip=1)
        bound = await layer.listen(kind, "127.0.0.1", 0, server_context(files))
        context = client_context(files.cert)
        try:
            if kind.secure:
                admitted = await tls_stream(bound.port, context)
            else:
                admitted = await open_tcp(bound.port)
            ws: WSConnection | None = None
            if kind is Kind.TLS:
                assert await talks(admitted)
            else:
                ws, accepted = await ws_accepted(admitted)
                assert accepted and await ws_talks(admitted, ws)
            # the second connection from 127.0.0.1: aborted before TLS or HTTP starts
            if kind.secure:
                with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                    await asyncio.wait_for(tls_stream(bound.port, context), WAIT)
            else:
                over = await open_tcp(bound.port)
                assert await closed_by_peer(over[0])
                close(over)
            assert layer.stats.refused_max_per_ip == 1
            if ws is None:
                assert await talks(admitted)
            else:
                assert await ws_talks(admitted, ws)
            close(admitted)
        finally:
            await layer.close()

    run(scenario())


def test_refusals_are_logged_once_per_interval(run: Run, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        layer, _ = make_layer(max_per_ip=1)
        bound = await layer.listen(Kind.TCP, "127.0.0.1", 0)
        kept = await open_tcp(bound.port)
        try:
            assert await talks(kept)
            for _ in range(5):
                over = await open_tcp(bound.port)
                assert await closed_by_peer(over[0])
                close(over)
            assert layer.stats.refused_max_per_ip == 5
        finally:
            close(kept)
            await layer.close()

    with caplog.at_level(logging.WARNING, logger="ivoz.transport.layer"):
        run(scenario())
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "1 connections with 127.0.0.1 open (limit 1 per address)" in lines[0]


# -- the handshake deadline -----------------------------------------------------------------


async def mute(kind: Kind, port: int, context: ssl.SSLContext, how: str) -> Stream:
    """A client that connects and then stalls: ``silent`` or ``partial`` handshake."""
    if kind is Kind.WSS:
        stream = await tls_stream(port, context)  # TLS finishes; the upgrade never does
    else:
        stream = await open_tcp(port)
    if how == "partial":
        stream[1].write(
            {
                Kind.TCP: b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n",  # bytes: it did speak
                Kind.TLS: b"\x16\x03\x01\x02\x00\x01",  # the start of a ClientHello
                Kind.WS: b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # no blank line
                Kind.WSS: b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            }[kind]
        )
    return stream


@pytest.mark.parametrize(
    ("kind", "how"),
    [
        (Kind.TCP, "silent"),
        (Kind.TLS, "silent"),
        (Kind.TLS, "partial"),
        (Kind.WS, "silent"),
        (Kind.WS, "partial"),
        (Kind.WSS, "silent"),
        (Kind.WSS, "partial"),
    ],
)
def test_unfinished_handshake_is_closed_at_the_deadline(
    run: Run, kind: Kind, how: str, tmp_path: Path
) -> None:
    files = certificate_files(tmp_path, "127.0.0.1")

    async def scenario() -> None:
        layer, echo = make_layer(handshake_timeout=DEADLINE)
        bound = await layer.listen(kind, "127.0.0.1", 0, server_context(files))
        try:
            stream = await mute(kind, bound.port, client_context(files.cert), how)
            await until(lambda: layer.open_connections == 1)
            started = asyncio.get_running_loop().time()
            assert await closed_by_peer(stream[0])
            assert asyncio.get_running_loop().time() - started < WAIT
            close(stream)
            await until(lambda: layer.open_connections == 0)
            assert layer.stats.handshake_timeouts == 1
            assert layer.connection_count == 0
            assert echo.received == []
        finally:
            await layer.close()

    run(scenario())


@pytest.mark.parametrize("kind", [Kind.TCP, Kind.TLS, Kind.WS, Kind.WSS])
def test_connection_that_spoke_in_time_outlives_the_deadline(
    run: Run, kind: Kind, tmp_path: Path
) -> None:
    files = certificate_files(tmp_path, "127.0.0.1")

    async def scenario() -> None:
        layer, _ = make_layer(handshake_timeout=DEADLINE)
        bound = await layer.listen(kind, "127.0.0.1", 0, server_context(files))
        context = client_context(files.cert)
        stream = await (tls_stream(bound.port, context) if kind.secure else open_tcp(bound.port))
        try:
            ws: WSConnection | None = None
            if kind.framed_by_length:
                assert await talks(stream)
            else:
                ws, accepted = await ws_accepted(stream)
                assert accepted
            await asyncio.sleep(DEADLINE * 3)
            assert layer.stats.handshake_timeouts == 0
            assert await talks(stream) if ws is None else await ws_talks(stream, ws)
        finally:
            close(stream)
            await layer.close()

    run(scenario())


# -- outgoing connections -----------------------------------------------------------------


def test_outgoing_connection_over_the_per_ip_limit_raises(run: Run) -> None:
    async def scenario() -> None:
        servers = [make_layer()[0], make_layer()[0]]
        ports = [(await s.listen(Kind.TCP, "127.0.0.1", 0)).port for s in servers]
        client, _ = make_layer(max_per_ip=1)
        try:
            first = await client.connect(Address(Kind.TCP, "127.0.0.1", ports[0]))
            with pytest.raises(TransportError, match=r"limit 1 per address"):
                await client.connect(Address(Kind.TCP, "127.0.0.1", ports[1]))
            assert client.stats.refused_outgoing == 1
            assert client.open_connections == 1
            # the existing one is reused, not refused
            assert await client.connect(Address(Kind.TCP, "127.0.0.1", ports[0])) == first
            # send() to the refused address logs and drops; it does not raise
            client.send(MESSAGE, Address(Kind.TCP, "127.0.0.1", ports[1]))
            await until(lambda: client.stats.refused_outgoing == 2)
            # once the first is closed, its slot serves the other address
            client.close_connection(first)
            await until(lambda: client.open_connections == 0)
            await client.connect(Address(Kind.TCP, "127.0.0.1", ports[1]))
        finally:
            await client.close()
            for server in servers:
                await server.close()

    run(scenario())


def test_incoming_and_outgoing_share_the_total_limit(run: Run) -> None:
    async def scenario() -> None:
        other, _ = make_layer()
        other_port = (await other.listen(Kind.TCP, "127.0.0.1", 0)).port
        layer, _ = make_layer(max_connections=1, max_per_ip=0)
        bound = await layer.listen(Kind.TCP, "127.0.0.1", 0)
        incoming = await open_tcp(bound.port)
        try:
            assert await talks(incoming)
            with pytest.raises(TransportError, match=r"1 connections open \(limit 1\)"):
                await layer.connect(Address(Kind.TCP, "127.0.0.1", other_port))
            assert layer.stats.refused_outgoing == 1
            assert await talks(incoming)
        finally:
            close(incoming)
            await layer.close()
            await other.close()

    run(scenario())


def test_outgoing_tls_handshake_has_the_deadline_too(run: Run, tmp_path: Path) -> None:
    async def scenario() -> None:
        # a TCP server that accepts and never answers the ClientHello
        held: list[asyncio.StreamWriter] = []

        async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)

        silent = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        layer = Layer(
            Echo(),
            client_ssl=client_context(certificate_files(tmp_path, "127.0.0.1").cert),
            limits=ConnectionLimits(handshake_timeout=DEADLINE),
        )
        try:
            with pytest.raises((ConnectionError, TimeoutError, ssl.SSLError)):
                await asyncio.wait_for(layer.connect(Address(Kind.TLS, "127.0.0.1", port)), WAIT)
            assert layer.open_connections == 0  # the slot it took is given back
        finally:
            for writer in held:
                writer.close()
            silent.close()
            await layer.close()

    run(scenario())


# -- the limits themselves ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"max_connections": 0},
        {"max_per_ip": -1},
        {"handshake_timeout": 0},
        {"handshake_timeout": float("nan")},
        {"handshake_timeout": float("inf")},
    ],
)
def test_limits_are_checked_when_built(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        ConnectionLimits(**bad)


def test_defaults() -> None:
    limits = ConnectionLimits()
    assert (limits.max_connections, limits.max_per_ip, limits.handshake_timeout) == (
        4096,
        64,
        10.0,
    )
    assert ConnectionLimits(max_per_ip=0).max_per_ip == 0  # no limit per address
