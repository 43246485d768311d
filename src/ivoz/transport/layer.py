"""The SIP transport layer: listeners and connections for UDP, TCP, TLS, WS and WSS.

A :class:`Layer` owns every SIP socket of a process. Its user (the SIP endpoint, later
the proxies) gives it a :class:`Receiver` and gets each incoming message as bytes with
its :class:`~ivoz.transport.address.Origin`; it answers with :meth:`Layer.send` to a
connection id (connection reuse) or to an :class:`~ivoz.transport.address.Address`
(UDP datagram, or an existing or new TCP/TLS connection).

The per-message path is short and logs nothing: UDP datagrams and WebSocket messages
are delivered whole; TCP and TLS bytes go through :class:`ivoz.sip.framing.StreamFramer`.
Parsing is the receiver's business; an exception it raises is logged and swallowed so
that one bad message never stops the loop.

Connections are bounded (:class:`ConnectionLimits`): at most ``max_connections`` open
TCP, TLS, WS and WSS connections per layer, in both directions, and at most
``max_per_ip`` of them with any one remote IP address. The stream listeners accept
sockets themselves (``loop.sock_accept``) so that the limits are checked on the bare
socket: one over a limit is closed before any transport, TLS or read exists; an
admitted one gets its transport (and TLS handshake) from
``loop.connect_accepted_socket``. An outgoing connection over a limit raises
:class:`TransportError`. Every incoming connection has ``handshake_timeout`` seconds to
prove it speaks: its first bytes (TCP), a finished TLS handshake (TLS), a finished HTTP
upgrade (WS; WSS: both handshakes in that time); otherwise it is closed. Then only
``idle_timeout`` applies. What the limits did is counted in :attr:`Layer.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ivoz.sip.framing import PONG, FramingFailed, KeepAlivePinged, MessageFramed, StreamFramer
from ivoz.transport import stun
from ivoz.transport.address import Address, Kind, Origin

log = logging.getLogger(__name__)

# RFC 7118 4.1: the WebSocket subprotocol that carries SIP.
WS_SUBPROTOCOL = "sip"
# A peer that does not read what we send is cut off beyond this many buffered bytes.
MAX_WRITE_BUFFER = 4 * 1024 * 1024
# Receive buffer asked for on UDP sockets, in bytes (bursts of SIPp traffic).
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
# A connection that received nothing for this long is closed, in seconds. Clients keep
# theirs open with CRLF pings (RFC 5626 4.4.1) or WebSocket pings, or reconnect.
IDLE_TIMEOUT = 1800.0
# RFC 3261 and RFC 5626 bound nothing here; these are a careful server's own bounds (the
# kind Kamailio keeps with tcp_max_connections and tls_max_connections). Config fields
# sip_max_connections, sip_max_connections_per_ip and sip_handshake_timeout set them.
MAX_CONNECTIONS = 4096  # open TCP/TLS/WS/WSS connections per layer, both directions
MAX_CONNECTIONS_PER_IP = 64  # of those, with one remote IP address (0: no such limit)
HANDSHAKE_TIMEOUT = 10.0  # seconds for the first bytes, TLS handshake or HTTP upgrade
REFUSAL_LOG_INTERVAL = 10.0  # seconds between two log lines about refused connections
LISTEN_BACKLOG = 100  # pending connections the kernel queues per listener (asyncio's default)
ACCEPT_RETRY = 1.0  # seconds to wait after accept() failed (out of file descriptors...)

Limit = Literal["max_connections", "max_per_ip"]


class TransportError(Exception):
    """A message could not be handed to a socket (unknown or closed connection...)."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How many connections a :class:`Layer` keeps, and how long a new one may stay mute."""

    max_connections: int = MAX_CONNECTIONS
    max_per_ip: int = MAX_CONNECTIONS_PER_IP  # 0: no limit per address
    handshake_timeout: float = HANDSHAKE_TIMEOUT  # seconds

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {self.max_connections}")
        if self.max_per_ip < 0:
            raise ValueError(f"max_per_ip must be 0 (no limit) or more, not {self.max_per_ip}")
        if not (math.isfinite(self.handshake_timeout) and self.handshake_timeout > 0):
            raise ValueError(
                f"handshake_timeout must be a positive number of seconds, "
                f"not {self.handshake_timeout}"
            )


@dataclass(slots=True)
class ConnectionStats:
    """What the connection limits did since the layer started (counters only grow)."""

    refused_max_connections: int = 0  # incoming, the layer was full
    refused_max_per_ip: int = 0  # incoming, that address already had its share
    refused_outgoing: int = 0  # connect() over either limit (TransportError raised)
    handshake_timeouts: int = 0  # closed: no first bytes / handshake within the deadline

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Receiver(Protocol):
    """What the transport layer delivers to (the SIP endpoint, a proxy...)."""

    def message_received(self, data: bytes, origin: Origin) -> None:
        """One whole SIP message; parse with ``datagram=not origin.transport.framed_by_length``."""

    def framing_failed(self, failure: FramingFailed, origin: Origin) -> None:
        """A stream could not be framed; answer ``failure.status`` if you can.

        The connection is closed right after this returns (what was sent is flushed).
        """


class Layer:
    """Every SIP listener and connection of the process."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        max_message_size: int = 65535,
        client_ssl: ssl.SSLContext | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.receiver = receiver
        self.idle_timeout = idle_timeout
        self.limits = limits if limits is not None else ConnectionLimits()
        self.stats = ConnectionStats()
        # every counted connection (handshaking or not), and how many per remote IP
        self._counted: set[_Connection] = set()
        self._per_ip: dict[str, int] = {}
        self._refusals = 0  # refused since the last log line about it
        self._refusal_log_due = -math.inf
        self._sweeper: asyncio.TimerHandle | None = None
        self.max_message_size = max_message_size
        self._client_ssl = client_ssl
        self._listeners: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._connections: dict[int, _Connection] = {}
        self._by_address: dict[Address, int] = {}
        self._connecting: dict[Address, asyncio.Future[int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self.listening: list[Address] = []

    # -- listeners -----------------------------------------------------------------

    async def listen(
        self, kind: Kind, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> Address:
        """Start a listener; returns the bound address (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        if kind is Kind.UDP:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self), local_addr=(host, port)
            )
            sock = udp.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            name = udp.get_extra_info("sockname")
            self._udp.append(udp)
        else:
            if kind.secure and ssl_context is None:
                raise ValueError(f"{kind} needs an SSL context")
            family, *_, where = (
                await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            )[0]
            listener = socket.create_server(where, family=family, backlog=LISTEN_BACKLOG)
            listener.setblocking(False)
            name = listener.getsockname()
            self._listeners.append(listener)
            context = ssl_context if kind.secure else None
            self._accepting.append(loop.create_task(self._accept(listener, kind, context)))
        address = Address(kind, name[0], name[1])
        self.listening.append(address)
        return address

    async def _accept(
        self, listener: socket.socket, kind: Kind, context: ssl.SSLContext | None
    ) -> None:
        """Accept connections on a stream listener for as long as the layer runs."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listener)
            except OSError as exc:
                # EMFILE, ENOBUFS...: the connection stays queued; try again shortly
                log.warning("%s accept failed: %s", kind.value, exc)
                await asyncio.sleep(ACCEPT_RETRY)
                continue
            connection = _make_protocol(self, kind)
            refused = self._admit(connection, str(peer[0]))
            if refused is not None:
                # Refused on the bare socket: no transport, no TLS, nothing read.
                self._refused(kind, peer, refused)
                sock.close()
                continue
            connection.arm_deadline()
            connection.accepted = sock
            task = loop.create_task(self._attach(connection, context))
            connection.attaching = task
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._attached, connection))

    async def _attach(self, connection: _Connection, context: ssl.SSLContext | None) -> None:
        """Give an admitted socket its transport; TLS is handshaken here (WSS too)."""
        # From here on the socket is the transport's: it closes it, even on failure.
        sock, connection.accepted = connection.accepted, None
        assert sock is not None
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: connection,
                sock,
                ssl=context,
                # our own deadline (armed at accept) comes first; this is a backstop
                ssl_handshake_timeout=self.limits.handshake_timeout + 1.0 if context else None,
            )
        except BaseException as exc:
            connection._gone()
            if not isinstance(exc, Exception):
                raise  # cancelled: the deadline, or the layer closing
            log.debug("%s handshake with %s failed: %s", connection.kind, connection.peer_ip, exc)
        finally:
            connection.attaching = None

    def _attached(self, connection: _Connection, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if connection.accepted is not None:  # cancelled before _attach even started
            connection.accepted.close()
            connection.accepted = None
            connection._gone()

    # -- sending -------------------------------------------------------------------

    def send(
        self,
        data: bytes,
        destination: int | Address,
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        """Send one whole message to a connection id or an address.

        An address is reached by UDP datagram, or over the connection already open to
        it (RFC 3261 18.2.2 / RFC 5923 reuse), or over a new TCP/TLS connection opened
        in the background. Hosts must be IP addresses (RFC 3263 resolution is the
        caller's). Raises :class:`TransportError` when it cannot even try. When a new
        connection has to be opened and that fails later, ``failed`` is called with the
        error (RFC 3261 8.1.3.1: the transaction user treats it as a 503).
        """
        if isinstance(destination, int):
            connection = self._connections.get(destination)
            if connection is None:
                raise TransportError(f"connection {destination} is closed")
            connection.write(data)
            return
        if destination.transport is Kind.UDP:
            if not self._udp:
                raise TransportError("no UDP listener to send from")
            self._udp[0].sendto(data, (destination.host, destination.port))
            return
        known = self._by_address.get(destination)
        if known is not None:
            self._connections[known].write(data)
            return
        if destination.transport not in (Kind.TCP, Kind.TLS):
            # RFC 7118 5: a WebSocket server never opens connections to its clients.
            raise TransportError(f"no connection to {destination}")
        self._spawn(self._connect_and_send(data, destination, failed))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_and_send(
        self, data: bytes, destination: Address, failed: Callable[[Exception], None] | None
    ) -> None:
        try:
            self.send(data, await self.connect(destination))
        except (OSError, TransportError, ssl.SSLError) as exc:
            log.info("cannot send to %s: %s", destination, exc)
            if failed is not None:
                try:
                    failed(exc)
                except Exception:
                    log.exception("error reporting a failed send to %s", destination)

    async def connect(self, destination: Address) -> int:
        """The id of a connection to ``destination`` (TCP or TLS), opened if needed."""
        known = self._by_address.get(destination)
        if known is not None:
            return known
        pending = self._connecting.get(destination)
        if pending is None:
            pending = asyncio.ensure_future(self._open(destination))
            self._connecting[destination] = pending
            pending.add_done_callback(lambda _: self._connecting.pop(destination, None))
        return await asyncio.shield(pending)

    async def _open(self, destination: Address) -> int:
        if destination.transport not in (Kind.TCP, Kind.TLS):
            raise TransportError(f"cannot open a {destination.transport} connection")
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if destination.transport is Kind.TLS:
            context = self._client_ssl or ssl.create_default_context()
        # Connections we open count against the same limits as those we accept.
        protocol = _StreamProtocol(self, destination.transport, outgoing=True)
        refused = self._admit(protocol, destination.host)
        if refused is not None:
            self.stats.refused_outgoing += 1
            text = self._limit_text(refused, destination.host)
            raise TransportError(f"cannot open a connection to {destination}: {text}")
        try:
            await loop.create_connection(
                lambda: protocol,
                destination.host,
                destination.port,
                ssl=context,
                server_hostname=destination.host if context else None,
                ssl_handshake_timeout=self.limits.handshake_timeout if context else None,
            )
        except BaseException:
            self._release(protocol)
            raise
        if protocol.lost:
            raise TransportError(f"connection to {destination} closed at once")
        self._by_address.setdefault(destination, protocol.id)
        protocol.addresses.append(destination)
        return protocol.id

    # -- connections ---------------------------------------------------------------

    def alias(self, connection_id: int, address: Address) -> None:
        """Reach ``address`` over this connection too (RFC 5923 ``alias`` Via param)."""
        connection = self._connections.get(connection_id)
        if connection is not None:
            self._by_address[address] = connection_id
            connection.addresses.append(address)

    def origin(self, connection_id: int) -> Origin | None:
        connection = self._connections.get(connection_id)
        return connection.origin if connection is not None else None

    def close_connection(self, connection_id: int) -> None:
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.close()

    @property
    def connection_count(self) -> int:
        """Connections that carry SIP (handshakes done); see :attr:`open_connections`."""
        return len(self._connections)

    @property
    def open_connections(self) -> int:
        """Every connection counted against the limits, handshaking ones included."""
        return len(self._counted)

    # -- limits ----------------------------------------------------------------------

    def _admit(self, connection: _Connection, host: str) -> Limit | None:
        """Count ``connection`` (with ``host``) against the limits; the one it breaks, if any."""
        if len(self._counted) >= self.limits.max_connections:
            return "max_connections"
        per_ip = self.limits.max_per_ip
        count = self._per_ip.get(host, 0)
        if per_ip and count >= per_ip:
            return "max_per_ip"
        self._per_ip[host] = count + 1
        self._counted.add(connection)
        connection.peer_ip = host
        return None

    def _release(self, connection: _Connection) -> None:
        """Uncount ``connection`` (idempotent: every way out of a connection calls it)."""
        if connection not in self._counted:
            return
        self._counted.discard(connection)
        left = self._per_ip.get(connection.peer_ip, 1) - 1
        if left > 0:
            self._per_ip[connection.peer_ip] = left
        else:
            self._per_ip.pop(connection.peer_ip, None)

    def _limit_text(self, limit: Limit, host: str) -> str:
        if limit == "max_connections":
            return f"{len(self._counted)} connections open (limit {self.limits.max_connections})"
        return (
            f"{self._per_ip.get(host, 0)} connections with {host} open "
            f"(limit {self.limits.max_per_ip} per address)"
        )

    def _refused(self, kind: Kind, peer: Any, limit: Limit) -> None:
        """An incoming connection was refused: count it; one log line per interval."""
        if limit == "max_connections":
            self.stats.refused_max_connections += 1
        else:
            self.stats.refused_max_per_ip += 1
        self._refusals += 1
        now = asyncio.get_running_loop().time()
        if now < self._refusal_log_due:
            return
        host, port = str(peer[0]), peer[1]
        log.warning(
            "%s connection from %s:%s refused, %s; %d refused since the last such line",
            kind.value,
            host,
            port,
            self._limit_text(limit, host),
            self._refusals,
        )
        self._refusals = 0
        self._refusal_log_due = now + REFUSAL_LOG_INTERVAL

    def _register(self, connection: _Connection, remote: Address) -> int:
        if self._sweeper is None:
            self._schedule_sweep()
        connection.id = next(self._ids)
        connection.addresses.append(remote)
        self._connections[connection.id] = connection
        self._by_address[remote] = connection.id
        return connection.id

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(max(self.idle_timeout / 4, 0.01), self._sweep)

    def _sweep(self) -> None:
        """Close connections idle for longer than ``idle_timeout``."""
        self._sweeper = None
        limit = asyncio.get_running_loop().time() - self.idle_timeout
        for connection in list(self._connections.values()):
            if connection.last_active < limit:
                connection.close()
        if self._connections:
            self._schedule_sweep()

    def _unregister(self, connection: _Connection) -> None:
        if self._connections.pop(connection.id, None) is None:
            return
        for address in connection.addresses:
            if self._by_address.get(address) == connection.id:
                del self._by_address[address]

    # -- delivery (the hot path) ---------------------------------------------------

    def _deliver(self, data: bytes, origin: Origin) -> None:
        try:
            self.receiver.message_received(data, origin)
        except Exception:
            log.exception("error handling a message from %s", origin.remote)

    def _framing_failed(self, failure: FramingFailed, origin: Origin) -> None:
        try:
            self.receiver.framing_failed(failure, origin)
        except Exception:
            log.exception("error handling a framing error from %s", origin.remote)

    async def close(self) -> None:
        """Stop listening and close every socket."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for accepting in self._accepting:
            accepting.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        self._accepting.clear()
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for udp in self._udp:
            udp.close()
        for connection in list(self._counted):  # handshaking ones too
            connection.close()
        for task in list(self._tasks):
            task.cancel()
        self._udp.clear()


def _address(kind: Kind, name: Any) -> Address:
    return Address(kind, str(name[0]), int(name[1]))


def _make_protocol(layer: Layer, kind: Kind) -> _Connection:
    if kind.framed_by_length:
        return _StreamProtocol(layer, kind)
    return _WebSocketProtocol(layer, kind)


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.local = Address(Kind.UDP, "0.0.0.0", 0)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local = _address(Kind.UDP, transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if data[:1] < b"\x04":  # STUN types start 0x00-0x03; SIP never does
            # RFC 5626 4.4.2: STUN Binding keep-alives arrive on the SIP port.
            if self.transport is not None:
                answer = stun.binding_response(data, addr[0], addr[1])
                if answer is not None:
                    self.transport.sendto(answer, addr)
            return
        # A CRLF-only datagram (a keep-alive some phones send) carries no message.
        if len(data) <= 4 and not data.strip():
            return
        remote = Address(Kind.UDP, addr[0], addr[1])
        self.layer._deliver(data, Origin(Kind.UDP, remote, self.local, None))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: nothing to do for a datagram service.
        pass


class _Connection(asyncio.Protocol):
    """What stream and WebSocket connections have in common.

    An incoming connection is admitted by :meth:`Layer._accept` before it has a
    transport, then has ``handshake_timeout`` seconds (from the accept) to become
    :attr:`ready`; :meth:`connection_made` comes after the TLS handshake, if any.
    """

    def __init__(self, layer: Layer, kind: Kind, *, outgoing: bool = False) -> None:
        self.layer = layer
        self.kind = kind
        self.id = 0
        self.origin: Origin | None = None
        self.addresses: list[Address] = []
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.last_active = self.loop.time()
        self.peer_ip = ""
        # the peer has shown it speaks (first bytes, TLS handshake, HTTP upgrade); a
        # connection we open is ready at once (the other side may well stay quiet)
        self.ready = outgoing
        self.lost = False
        self.accepted: socket.socket | None = None  # until _attach hands it over
        self.attaching: asyncio.Task[None] | None = None  # connect_accepted_socket
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport but behave like it.
        self.transport = cast(asyncio.Transport, transport)
        self._opened()

    def _opened(self) -> None:
        """The transport is ours to use (plain TCP, or TLS once handshaken)."""

    def arm_deadline(self) -> None:
        self._deadline = self.loop.call_later(
            self.layer.limits.handshake_timeout, self._handshake_expired
        )

    def _set_ready(self) -> None:
        self.ready = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _handshake_expired(self) -> None:
        self._deadline = None
        if self.ready or self.lost:
            return
        # Slowloris defence: mute TCP, an unfinished TLS handshake or HTTP upgrade.
        self.layer.stats.handshake_timeouts += 1
        log.debug("%s connection from %s: no handshake in time; closed", self.kind, self.peer_ip)
        if self.transport is not None:
            self.transport.abort()
        elif self.attaching is not None:
            self.attaching.cancel()  # still in the TLS handshake: closes the socket

    def _gone(self) -> None:
        """Every way out of a connection ends here (idempotent)."""
        self.lost = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.layer._release(self)

    def _register(self) -> None:
        assert self.transport is not None
        remote = _address(self.kind, self.transport.get_extra_info("peername"))
        local = _address(self.kind, self.transport.get_extra_info("sockname"))
        self.origin = Origin(self.kind, remote, local, self.layer._register(self, remote))

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        self.layer._unregister(self)
        self.transport = None

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def _write_raw(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise TransportError(f"connection {self.id} is closed")
        transport.write(data)
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("connection %d does not read what we send; closed", self.id)
            transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _StreamProtocol(_Connection):
    """TCP or TLS: bytes through the stream framer (RFC 3261 18.3)."""

    def __init__(self, layer: Layer, kind: Kind, *, outgoing: bool = False) -> None:
        super().__init__(layer, kind, outgoing=outgoing)
        self.framer = StreamFramer(layer.max_message_size)

    def _opened(self) -> None:
        self._register()
        if self.kind is Kind.TLS:
            self._set_ready()  # the finished TLS handshake is the peer speaking

    def data_received(self, data: bytes) -> None:
        if not self.ready:
            self._set_ready()  # plain TCP: its first bytes
        self.last_active = self.loop.time()
        origin = self.origin
        assert origin is not None
        for event in self.framer.feed(data):
            if type(event) is MessageFramed:
                self.layer._deliver(event.data, origin)
            elif type(event) is KeepAlivePinged:
                # RFC 5626 4.4.1: answer a double-CRLF ping with a single CRLF pong.
                if self.transport is not None:
                    self.transport.write(PONG)
            elif isinstance(event, FramingFailed):
                self.layer._framing_failed(event, origin)
                self.close()

    def write(self, data: bytes) -> None:
        self._write_raw(data)


class _WebSocketProtocol(_Connection):
    """WS or WSS (RFC 7118): one SIP message per WebSocket message, wsproto sans-IO."""

    def __init__(self, layer: Layer, kind: Kind) -> None:
        super().__init__(layer, kind)
        self.ws = WSConnection(ConnectionType.SERVER)
        self.parts: list[bytes] = []
        self.size = 0

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        try:
            self.ws.receive_data(data)  # raises on a bad HTTP handshake
            for event in self.ws.events():
                self._handle(event)
        except RemoteProtocolError as exc:
            if exc.event_hint is not None and self.transport is not None:
                with contextlib.suppress(LocalProtocolError):
                    self.transport.write(self.ws.send(exc.event_hint))
            self.close()

    def _handle(self, event: Event) -> None:
        transport = self.transport
        if transport is None:
            return
        if isinstance(event, Request):
            # RFC 7118 4.1: the client offers the "sip" subprotocol and the server
            # selects it; a handshake without it is not a SIP connection.
            if WS_SUBPROTOCOL not in (p.strip().lower() for p in event.subprotocols):
                transport.write(self.ws.send(RejectConnection(status_code=400)))
                self.close()
                return
            transport.write(self.ws.send(AcceptConnection(subprotocol=WS_SUBPROTOCOL)))
            self._register()
            self._set_ready()
        elif isinstance(event, TextMessage | BytesMessage):
            self._message_part(event)
        elif isinstance(event, Ping):
            transport.write(self.ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if self.ws.state is ConnectionState.REMOTE_CLOSING:
                transport.write(self.ws.send(event.response()))
            self.close()

    def _message_part(self, event: Message[Any]) -> None:
        chunk = event.data.encode() if isinstance(event.data, str) else bytes(event.data)
        self.size += len(chunk)
        if self.size > self.layer.max_message_size:
            # RFC 6455 7.4.1: 1009, message too big to process.
            if self.transport is not None:
                with contextlib.suppress(LocalProtocolError):
                    self.transport.write(
                        self.ws.send(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
                    )
            self.close()
            return
        self.parts.append(chunk)
        if event.message_finished:
            data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
            self.parts.clear()
            self.size = 0
            if self.origin is not None:
                self.layer._deliver(data, self.origin)

    def write(self, data: bytes) -> None:
        message: TextMessage | BytesMessage
        try:
            # RFC 7118 5.1: text frames for UTF-8 messages, binary frames otherwise.
            message = TextMessage(data=data.decode())
        except UnicodeDecodeError:
            message = BytesMessage(data=data)
        try:
            frame = self.ws.send(message)
        except LocalProtocolError as exc:
            raise TransportError(f"connection {self.id} is not open: {exc}") from None
        self._write_raw(frame)
