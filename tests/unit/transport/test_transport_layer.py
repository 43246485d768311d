"""The transport layer over loopback: delivery with origin, connection reuse, framing."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    RejectConnection,
    Request,
    TextMessage,
)

from ivoz.sip.framing import FramingFailed
from ivoz.transport import Address, Kind, Layer, Origin, TransportError
from ivoz.transport.tls import certificate_files, client_context, server_context

MESSAGE = (
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK-1\r\n"
    b"Call-ID: abc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


class Recorder:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[bytes, Origin]] = asyncio.Queue()
        self.failures: list[tuple[FramingFailed, Origin]] = []
        self.echo: Layer | None = None

    def message_received(self, data: bytes, origin: Origin) -> None:
        self.messages.put_nowait((data, origin))
        if self.echo is not None:
            target = origin.connection if origin.connection is not None else origin.remote
            self.echo.send(b"echo:" + data, target)

    def framing_failed(self, failure: FramingFailed, origin: Origin) -> None:
        self.failures.append((failure, origin))
        assert self.echo is not None and origin.connection is not None
        self.echo.send(f"failed {failure.status}".encode(), origin.connection)


async def make_layer(**kwargs: object) -> tuple[Layer, Recorder]:
    recorder = Recorder()
    layer = Layer(recorder, **kwargs)  # type: ignore[arg-type]
    recorder.echo = layer
    return layer, recorder


async def test_udp_delivers_with_origin_and_answers_to_source() -> None:
    layer, recorder = await make_layer()
    bound = await layer.listen(Kind.UDP, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            replies.put_nowait(data)

    client, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", bound.port))
    try:
        client.sendto(b"\r\n\r\n")  # keep-alive: dropped
        client.sendto(MESSAGE)
        data, origin = await asyncio.wait_for(recorder.messages.get(), 5)
        assert data == MESSAGE
        assert origin.transport is Kind.UDP
        assert origin.connection is None
        assert origin.remote.port == client.get_extra_info("sockname")[1]
        assert origin.local == bound
        assert await asyncio.wait_for(replies.get(), 5) == b"echo:" + MESSAGE
        assert recorder.messages.empty()
    finally:
        client.close()
        await layer.close()


async def test_tcp_frames_answers_over_same_connection_and_pongs() -> None:
    layer, recorder = await make_layer()
    bound = await layer.listen(Kind.TCP, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", bound.port)
    try:
        # two messages split at an awkward place, with a keep-alive ping between
        writer.write(MESSAGE[:30])
        await writer.drain()
        writer.write(MESSAGE[30:] + b"\r\n\r\n" + MESSAGE)
        first, origin = await asyncio.wait_for(recorder.messages.get(), 5)
        second, again = await asyncio.wait_for(recorder.messages.get(), 5)
        assert first == second == MESSAGE
        assert origin == again
        assert origin.connection is not None
        assert origin.remote.port == writer.get_extra_info("sockname")[1]
        expected = b"echo:" + MESSAGE + b"\r\n" + b"echo:" + MESSAGE
        assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
        # an address send to the client's source reuses its connection
        layer.send(b"later", origin.remote)
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"later"
        assert layer.connection_count == 1
    finally:
        writer.close()
        await layer.close()


async def test_tcp_framing_error_is_reported_then_connection_closed() -> None:
    layer, recorder = await make_layer(max_message_size=200)
    bound = await layer.listen(Kind.TCP, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", bound.port)
    try:
        writer.write(MESSAGE.replace(b"Content-Length: 0", b"Content-Length: 500"))
        assert await asyncio.wait_for(reader.read(), 5) == b"failed 513"  # then EOF
        assert recorder.failures[0][0].status == 513
        await asyncio.sleep(0)
        assert layer.connection_count == 0
    finally:
        writer.close()
        await layer.close()


async def test_send_to_address_opens_tcp_connection_once() -> None:
    server, server_rec = await make_layer()
    bound = await server.listen(Kind.TCP, "127.0.0.1", 0)
    client, _ = await make_layer()
    try:
        target = Address(Kind.TCP, "127.0.0.1", bound.port)
        client.send(MESSAGE, target)
        client.send(MESSAGE, target)
        a, origin_a = await asyncio.wait_for(server_rec.messages.get(), 5)
        b, origin_b = await asyncio.wait_for(server_rec.messages.get(), 5)
        assert a == b == MESSAGE
        assert origin_a.connection == origin_b.connection
        assert client.connection_count == 1
    finally:
        await client.close()
        await server.close()


async def test_unknown_connection_id_raises() -> None:
    layer, _ = await make_layer()
    with pytest.raises(TransportError):
        layer.send(b"x", 12345)
    with pytest.raises(TransportError):
        layer.send(b"x", Address(Kind.UDP, "127.0.0.1", 9))  # no UDP listener
    with pytest.raises(TransportError):
        layer.send(b"x", Address(Kind.WS, "127.0.0.1", 9))  # never dial WebSocket clients
    await layer.close()


async def test_tls_listener_with_self_signed_certificate(tmp_path: Path) -> None:
    files = certificate_files(tmp_path, "127.0.0.1")
    assert files.cert.exists() and files.key.exists()
    assert (files.key.stat().st_mode & 0o777) == 0o600
    again = certificate_files(tmp_path, "127.0.0.1")
    assert again.cert.read_bytes() == files.cert.read_bytes()  # reused, not remade
    layer, recorder = await make_layer()
    bound = await layer.listen(Kind.TLS, "127.0.0.1", 0, server_context(files))
    context = client_context(files.cert)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", bound.port, ssl=context, server_hostname="localhost"
    )
    try:
        writer.write(MESSAGE)
        data, origin = await asyncio.wait_for(recorder.messages.get(), 5)
        assert data == MESSAGE and origin.transport is Kind.TLS
        echo = b"echo:" + MESSAGE
        assert await asyncio.wait_for(reader.readexactly(len(echo)), 5) == echo
    finally:
        writer.close()
        await layer.close()


def test_configured_certificate_pair_is_used_as_is(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    files = certificate_files(tmp_path, "127.0.0.1", cert, key)
    assert (files.cert, files.key) == (cert, key)
    with pytest.raises(ValueError):
        certificate_files(tmp_path, "127.0.0.1", cert, None)


async def ws_handshake(
    port: int, subprotocols: list[str], context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, WSConnection, object]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost" if context else None
    )
    ws = WSConnection(ConnectionType.CLIENT)
    writer.write(ws.send(Request(host="127.0.0.1", target="/", subprotocols=subprotocols)))
    while True:
        ws.receive_data(await asyncio.wait_for(reader.read(4096), 5))
        for event in ws.events():
            return reader, writer, ws, event


@pytest.mark.parametrize("secure", [False, True])
async def test_websocket_one_message_per_frame(tmp_path: Path, secure: bool) -> None:
    layer, recorder = await make_layer()
    kind = Kind.WSS if secure else Kind.WS
    files = certificate_files(tmp_path, "127.0.0.1")
    bound = await layer.listen(kind, "127.0.0.1", 0, server_context(files) if secure else None)
    context = client_context(files.cert) if secure else None
    reader, writer, ws, event = await ws_handshake(bound.port, ["sip"], context)
    try:
        assert isinstance(event, AcceptConnection) and event.subprotocol == "sip"
        # one SIP message sent as two WebSocket fragments of one message
        writer.write(ws.send(TextMessage(data=MESSAGE[:20].decode(), message_finished=False)))
        writer.write(ws.send(TextMessage(data=MESSAGE[20:].decode(), message_finished=True)))
        data, origin = await asyncio.wait_for(recorder.messages.get(), 5)
        assert data == MESSAGE
        assert origin.transport is kind and origin.connection is not None
        got = ""
        while not got:
            ws.receive_data(await asyncio.wait_for(reader.read(65536), 5))
            got = "".join(e.data for e in ws.events() if isinstance(e, TextMessage))
        assert got.encode() == b"echo:" + MESSAGE
    finally:
        writer.close()
        await layer.close()


async def test_websocket_without_sip_subprotocol_is_rejected() -> None:
    layer, _ = await make_layer()
    bound = await layer.listen(Kind.WS, "127.0.0.1", 0)
    _, writer, _, event = await ws_handshake(bound.port, ["chat"])
    try:
        assert isinstance(event, RejectConnection)
        assert event.status_code == 400
    finally:
        writer.close()
        await layer.close()


async def test_idle_connections_are_closed() -> None:
    layer, _ = await make_layer(idle_timeout=0.05)
    bound = await layer.listen(Kind.TCP, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", bound.port)
    try:
        # the server closes the idle connection: EOF (no protocol timer is involved)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert layer.connection_count == 0
    finally:
        writer.close()
        await layer.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # HTTP without an upgrade
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",  # not HTTP at all
    ],
)
async def test_websocket_listener_refuses_non_websocket_clients(
    payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    layer, recorder = await make_layer()
    bound = await layer.listen(Kind.WS, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", bound.port)
    try:
        writer.write(payload)
        answer = await asyncio.wait_for(reader.read(), 5)  # an HTTP error or nothing, then EOF
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
        assert recorder.messages.empty()
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
    finally:
        writer.close()
        await layer.close()
