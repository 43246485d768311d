"""`ivoz run --role proxy-users` against real SIP tools on every transport.

One server process serves the whole module: sipsak OPTIONS over UDP, TCP and TLS, SIPp
OPTIONS at a rate, a small wsproto client over WS and WSS, raw sockets for the error
codes and connection reuse, and a bounded garbage flood after which it still answers.
The connection limits get a server of their own, with small limits set through
``IVOZ_*`` variables.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage

from ivoz.transport.tls import CertificateFiles, make_self_signed
from support.tools import free_port, require_tool, stop_process, wait_for_port

DATA = Path(__file__).parent / "data" / "transport"
HOST = "127.0.0.1"

pytestmark = pytest.mark.slow


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    udp: int
    tcp: int
    tls: int
    ws: int
    wss: int

    @property
    def cert(self) -> Path:
        return self.data_dir / "tls" / "sip-cert.pem"

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextlib.contextmanager
def running_server(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`ivoz run --role proxy-users` on free ports until the block ends (``env``: more
    ``IVOZ_*`` settings)."""
    log = data_dir / "server.log"
    sip = free_port()  # free for both UDP and TCP
    tls, ws, wss = free_port(), free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "ivoz",
        "--data-dir",
        str(data_dir),
        "run",
        "--role",
        "proxy-users",
        "--sip-host",
        HOST,
        "--sip-udp-port",
        str(sip),
        "--sip-tcp-port",
        str(sip),
        "--sip-tls-port",
        str(tls),
        "--sip-ws-port",
        str(ws),
        "--sip-wss-port",
        str(wss),
        *extra,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        for port in (sip, tls, ws, wss):
            wait_for_port(HOST, port, timeout=20)
        yield Server(proc, data_dir, log, sip, sip, tls, ws, wss)
    finally:
        stop_process(proc)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("ivoz-transport")) as running:
        yield running


# -- helpers ----------------------------------------------------------------------------


def options(transport: str, port: int, *, method: str = "OPTIONS", branch: str = "") -> bytes:
    branch = branch or f"z9hG4bK{random.getrandbits(48):x}"
    return (
        f"{method} sip:{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {HOST}:{port};rport;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:tester@{HOST}>;tag={random.getrandbits(32):x}\r\n"
        f"To: <sip:{HOST}:{port}>\r\n"
        f"Call-ID: {random.getrandbits(64):x}@{HOST}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def status_of(response: bytes) -> int:
    first = response.split(b"\r\n", 1)[0].split(b" ")
    assert first[0] == b"SIP/2.0", response[:200]
    return int(first[1])


def udp_request(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(data, (HOST, port))
        return sock.recv(65535)


def read_response(sock: socket.socket) -> bytes:
    """One whole response from a stream (Content-Length: 0 in everything we get)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65535)
        if not chunk:
            break
        data += chunk
    return data


def sipsak(
    server: Server,
    transport: str,
    port: int,
    extra_env: dict[str, str] | None = None,
    cafile: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    program = require_tool("sipsak")
    command = [program, "-vv", "-s", f"sip:{HOST}:{port}"]
    if transport != "udp":
        command += ["-E", transport]
    if transport == "tls":
        command += ["--tls-ca-cert", str(cafile or server.cert)]
    env = {**os.environ, **(extra_env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


# -- sipsak ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_sipsak_options_gets_200(server: Server, transport: str) -> None:
    port = {"udp": server.udp, "tcp": server.tcp, "tls": server.tls}[transport]
    env = {}
    if transport == "tls":
        # sipsak 0.9.8.1 fails silently with TLS 1.3 (see the interop notes).
        env["GNUTLS_SYSTEM_PRIORITY_FILE"] = str(DATA / "gnutls-no-tls13.cfg")
    result = sipsak(server, transport, port, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SIP/2.0 200 OK" in result.stdout


def test_sipsak_tls_with_a_configured_certificate(tmp_path: Path) -> None:
    files = CertificateFiles(tmp_path / "given-cert.pem", tmp_path / "given-key.pem")
    make_self_signed(files, hosts=["localhost", HOST])
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    extra = ("--tls-cert", str(files.cert), "--tls-key", str(files.key))
    with running_server(data_dir, *extra) as configured:
        env = {"GNUTLS_SYSTEM_PRIORITY_FILE": str(DATA / "gnutls-no-tls13.cfg")}
        result = sipsak(configured, "tls", configured.tls, env, cafile=files.cert)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SIP/2.0 200 OK" in result.stdout
    assert not (data_dir / "tls").exists()  # nothing self-signed was made


# -- SIPp ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_options_at_a_rate(server: Server, transport: str, tmp_path: Path) -> None:
    program = require_tool("sipp")
    command = [
        program,
        f"{HOST}:{server.udp}",
        "-sf",
        str(DATA / "options_uac.xml"),
        "-t",
        transport,
        "-i",
        HOST,
        "-p",
        str(free_port()),
        "-m",
        "500",
        "-r",
        "200",
        "-timeout",
        "60s",
        "-nostdin",
        "-trace_err",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=120)
    errors = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
    assert result.returncode == 0, errors[-3000:] or result.stdout[-3000:]


# -- WebSocket -------------------------------------------------------------------------


def ws_options(port: int, secure: bool, cafile: Path) -> bytes:
    raw = socket.create_connection((HOST, port), timeout=5)
    sock: socket.socket = raw
    if secure:
        context = ssl.create_default_context(cafile=str(cafile))
        sock = context.wrap_socket(raw, server_hostname="localhost")
    try:
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host=f"{HOST}:{port}", target="/", subprotocols=["sip"])))
        message = options("WSS" if secure else "WS", port).replace(
            f"{HOST}:{port};rport".encode(), b"df7jal23ls0d.invalid;rport"
        )
        accepted = False
        parts: list[str | bytes] = []
        while True:
            data = sock.recv(65535)
            assert data, "connection closed"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    assert event.subprotocol == "sip"
                    accepted = True
                    sock.sendall(ws.send(TextMessage(data=message.decode())))
                elif isinstance(event, TextMessage | BytesMessage):
                    assert accepted
                    parts.append(event.data)
                    if event.message_finished:
                        joined = "".join(p if isinstance(p, str) else p.decode() for p in parts)
                        return joined.encode()
    finally:
        sock.close()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_websocket_options_gets_200(server: Server, secure: bool) -> None:
    response = ws_options(server.wss if secure else server.ws, secure, server.cert)
    assert status_of(response) == 200
    assert b"SIP/2.0/WS" in response  # our Via came back


# -- error codes and connection reuse -------------------------------------------------


@pytest.mark.parametrize(("method", "status"), [("FOO", 501), ("INVITE", 405), ("BYE", 481)])
def test_methods_not_served_over_udp(server: Server, method: str, status: int) -> None:
    response = udp_request(server.udp, options("UDP", server.udp, method=method))
    assert status_of(response) == status
    if status == 405:
        # the users proxy serves OPTIONS and REGISTER itself (issue 5)
        assert b"\r\nAllow: OPTIONS, REGISTER\r\n" in response


def test_tcp_responses_come_back_over_the_same_connection(server: Server) -> None:
    with socket.create_connection((HOST, server.tcp), timeout=5) as sock:
        local_port = sock.getsockname()[1]
        # Via names a port nobody listens on: only the connection leads back to us.
        request = options("TCP", server.tcp).replace(
            f"{HOST}:{server.tcp};rport".encode(), f"{HOST}:9;rport".encode()
        )
        sock.sendall(b"\r\n\r\n" + request)
        data = read_response(sock)
        assert data.startswith(b"\r\n")  # RFC 5626 pong for the ping
        assert status_of(data.lstrip(b"\r\n")) == 200
        assert f"rport={local_port}".encode() in data
        sock.sendall(options("TCP", server.tcp, method="INVITE"))
        assert status_of(read_response(sock)) == 405


def test_tcp_oversized_message_gets_513_and_close(server: Server) -> None:
    with socket.create_connection((HOST, server.tcp), timeout=5) as sock:
        big = options("TCP", server.tcp).replace(b"Content-Length: 0", b"Content-Length: 100000")
        sock.sendall(big)
        data = read_response(sock)
        assert status_of(data) == 513
        rest = b""
        while chunk := sock.recv(65535):
            rest += chunk
        assert rest == b""  # closed after the answer


def test_tcp_missing_content_length_gets_400_and_close(server: Server) -> None:
    with socket.create_connection((HOST, server.tcp), timeout=5) as sock:
        sock.sendall(options("TCP", server.tcp).replace(b"Content-Length: 0\r\n", b""))
        assert status_of(read_response(sock)) == 400
        assert sock.recv(65535) == b""


# -- connection limits (a server of their own) ----------------------------------------


def refused(port: int) -> bool:
    """Whether a new connection to ``port`` is closed by the server without an answer."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        try:
            sock.sendall(options("TCP", port))
            return sock.recv(65535) == b""
        except ConnectionError:
            return True


def tcp_options_status(sock: socket.socket, port: int) -> int:
    sock.sendall(options("TCP", port))
    return status_of(read_response(sock))


def admitted(port: int) -> socket.socket:
    """A TCP connection the server serves (OPTIONS gets 200), retried while it refuses:
    the readiness probes' connections count until the server has seen them close."""
    deadline = time.monotonic() + 10
    while True:
        sock = socket.create_connection((HOST, port), timeout=5)
        try:
            if tcp_options_status(sock, port) == 200:
                return sock
        except (ConnectionError, AssertionError, IndexError):
            if time.monotonic() > deadline:
                raise
        sock.close()
        time.sleep(0.1)


def test_connections_over_the_per_ip_limit_are_refused_then_served_again(
    tmp_path: Path,
) -> None:
    limits = {"IVOZ_SIP_MAX_CONNECTIONS_PER_IP": "4", "IVOZ_SIP_HANDSHAKE_TIMEOUT": "2"}
    with running_server(tmp_path, env=limits) as server:
        held = [admitted(server.tcp) for _ in range(4)]
        try:
            # 127.0.0.1 has its four: more are closed at once, on TCP, TLS and WS alike
            for _ in range(5):
                assert refused(server.tcp)
            for port in (server.tls, server.ws):
                with socket.create_connection((HOST, port), timeout=5) as sock:
                    assert sock.recv(65535) == b""
            # the four admitted connections go on being served
            for sock in held:
                assert tcp_options_status(sock, server.tcp) == 200
        finally:
            for sock in held:
                sock.close()
        # their slots freed, a new connection is admitted again: sipsak over TCP gets 200
        admitted(server.tcp).close()
        result = sipsak(server, "tcp", server.tcp)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SIP/2.0 200 OK" in result.stdout
        # the handshake deadline: a connection that says nothing is closed after 2 s
        with socket.create_connection((HOST, server.tcp), timeout=10) as mute:
            started = time.monotonic()
            assert mute.recv(65535) == b""
            assert time.monotonic() - started < 9
    log = server.log.read_text(errors="replace")
    assert "refused, 4 connections with 127.0.0.1 open (limit 4 per address)" in log


# -- garbage flood (runs last in this module) -----------------------------------------


def garbage(rng: random.Random, port: int) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 1400))
    message = options(rng.choice(["UDP", "TCP"]), port, method=rng.choice(["OPTIONS", "INVITE"]))
    if kind == 1:
        return message[: rng.randrange(1, len(message))]  # truncated
    if kind == 2:
        cut = rng.randrange(len(message))
        return message[:cut] + rng.randbytes(rng.randrange(1, 50)) + message[cut:]
    flipped = bytearray(message)
    for _ in range(rng.randrange(1, 10)):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    return bytes(flipped)


def test_garbage_flood_leaves_the_server_answering(server: Server) -> None:
    rng = random.Random(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for i in range(2000):
            try:
                sock.sendto(garbage(rng, server.udp), (HOST, server.udp))
            except BlockingIOError:
                time.sleep(0.001)
            if i % 200 == 0:
                time.sleep(0.01)  # bounded rate: loopback, shared machine
    for _ in range(200):
        with socket.create_connection((HOST, server.tcp), timeout=5) as sock:
            for _ in range(rng.randrange(1, 4)):
                sock.sendall(garbage(rng, server.tcp))
    # A little of the same on the TLS and WebSocket ports (handshakes that go wrong).
    for port in (server.tls, server.ws, server.wss):
        for payload in (rng.randbytes(500), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
            with socket.create_connection((HOST, port), timeout=5) as sock:
                sock.sendall(payload)
    assert server.alive()
    # Answers again on both transports (allow the flood's backlog to drain).
    deadline = time.monotonic() + 30
    while True:
        try:
            assert status_of(udp_request(server.udp, options("UDP", server.udp))) == 200
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
    with socket.create_connection((HOST, server.tcp), timeout=10) as sock:
        sock.sendall(options("TCP", server.tcp))
        assert status_of(read_response(sock)) == 200
    assert server.alive()
