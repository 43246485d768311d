"""The asyncio SIP runtime every SIP role stands on: transports, transactions, one timer.

A :class:`SipNode` owns a :class:`ivoz.transport.Layer` (the sockets) and a
:class:`ivoz.sip.transaction.TransactionLayer` (the sans-IO transaction machines) and
keeps one event-loop timer armed at the transaction layer's next deadline. Its
``RequestHandler`` (the proxy core, the B2BUA) sees only new requests and CANCELs:

- every request has its top Via stamped with ``received``/``rport`` (RFC 3261 18.2.1,
  RFC 3581 4) before anyone looks at it, and RFC 5923 ``alias`` connections are noted;
- a new request creates a server transaction and reaches ``request_received``;
  retransmissions and ACKs for non-2xx responses are absorbed by the transaction;
  an ACK for a 2xx reaches ``request_received`` with ``transaction=None``;
- a CANCEL is answered by the node (RFC 3261 9.2: 200 when it matches an INVITE server
  transaction, else 481) and, when it matched, ``cancelled(invite_transaction)`` tells
  the handler, which then answers the INVITE (487 for a UAS, or after cancelling its
  branches for a proxy);
- ``send_request`` starts a client transaction and calls ``on_response`` for every
  response it passes up (1xx, 2xx including retransmissions and forked 2xx in
  Accepted, final) and ``on_failure(408)`` on Timer B/F, ``on_failure(503)`` on a
  transport error (RFC 3261 16.7 step 1 / 8.1.3.1);
- a response that matches no client transaction goes to the handler's optional
  ``stray_response(response, origin)`` (a proxy forwards 2xx retransmissions that way,
  RFC 3261 16.7), else it is dropped;
- malformed requests get the parser's status when a response can be built, from the
  raw header lines (:func:`salvage_response`), and are dropped otherwise.

Tests drive it without a loop: pass ``layer=`` (anything with ``send``) and ``clock=``,
feed ``message_received`` and call ``on_timer(now)`` themselves.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from ssl import SSLContext
from typing import Any, Protocol

from ivoz import __version__
from ivoz.sip import (
    LocalError,
    RemoteError,
    Request,
    Response,
    Via,
    make_response,
    new_branch,
    parse_message,
)
from ivoz.sip.framing import FramingFailed
from ivoz.sip.timers import TimerConfig
from ivoz.sip.transaction import (
    ClientInviteTransaction,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponseReceived,
    Transaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
    make_cancel,
)
from ivoz.transport.address import Address, Kind, Origin
from ivoz.transport.layer import ConnectionLimits, Layer, TransportError
from ivoz.transport.via import ResponseDestination, alias_address, response_destination, stamp_via

log = logging.getLogger(__name__)

SERVER = f"Ivoz/{__version__}"
# Hosts a listener bound to "any" is reached on when nothing better is configured.
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
# Stream transports answer from the framer's header block when a message cannot be
# framed; these header lines are what a response needs (RFC 3261 8.2.6.2).
_ECHOED = {
    "via": "Via",
    "v": "Via",
    "from": "From",
    "f": "From",
    "to": "To",
    "t": "To",
    "call-id": "Call-ID",
    "i": "Call-ID",
    "cseq": "CSeq",
}
_FOLD = re.compile(r"\r\n[ \t]+")


class RequestHandler(Protocol):
    """What a SIP role gives its node (the proxy core, the B2BUA)."""

    def request_received(
        self, request: Request, origin: Origin, transaction: ServerTransaction | None
    ) -> None:
        """A new request; ``transaction`` is None for an ACK to a 2xx."""

    def cancelled(self, transaction: ServerTransaction) -> None:
        """A CANCEL matched this INVITE server transaction; the node answered it 200."""


class Sender(Protocol):
    """The part of :class:`ivoz.transport.Layer` the node sends through."""

    def send(
        self,
        data: bytes,
        destination: int | Address,
        failed: Callable[[Exception], None] | None = None,
    ) -> None: ...


@dataclass(slots=True)
class _Client:
    """What the node remembers about one client transaction it started."""

    transaction: ClientTransaction
    on_response: Callable[[Response], None]
    on_failure: Callable[[int], None] | None
    destination: Address | int
    cancel_pending: bool = False
    cancelled: bool = False


class SipNode:
    """One process's SIP endpoint: listeners, transactions and the timer that drives them."""

    def __init__(
        self,
        handler: RequestHandler,
        *,
        timers: TimerConfig | None = None,
        max_message_size: int = 65535,
        advertised_host: str | None = None,
        client_ssl: SSLContext | None = None,
        limits: ConnectionLimits | None = None,
        layer: Sender | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.handler = handler
        self.transactions = TransactionLayer(timers)
        self.layer: Any = (
            layer
            if layer is not None
            else Layer(
                self, max_message_size=max_message_size, client_ssl=client_ssl, limits=limits
            )
        )
        self.advertised_host = advertised_host
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._clients: dict[int, _Client] = {}
        self._draining = False
        # id(response) -> the server transaction sending it, for transport errors.
        self._sent_by: dict[int, Transaction] = {}
        #: the address of the first listener of each transport kind
        self.listening: dict[Kind, Address] = {}

    # -- time --------------------------------------------------------------------------

    def now(self) -> float:
        if self._clock is not None:
            return self._clock()
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    # -- listeners ---------------------------------------------------------------------

    async def listen(
        self, kind: Kind, host: str, port: int, ssl: SSLContext | None = None
    ) -> Address:
        """Start a listener (port 0 picks a free one); returns the bound address."""
        self._loop = asyncio.get_running_loop()
        bound: Address = await self.layer.listen(kind, host, port, ssl)
        self.listening.setdefault(kind, bound)
        return bound

    def local_via(self, transport: str) -> tuple[str, int]:
        """The sent-by (host, port) for our Via on ``transport`` (RFC 3261 18.1.1)."""
        kind = Kind.from_via(transport) or Kind.UDP
        bound = self.listening.get(kind) or self.listening.get(Kind.UDP)
        if bound is None:
            bound = next(iter(self.listening.values()), Address(kind, "127.0.0.1", 5060))
        host = self.advertised_host or _ANY.get(bound.host, bound.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return host, bound.port

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        close = getattr(self.layer, "close", None)
        if close is not None:
            await close()

    # -- commands of the handler --------------------------------------------------------

    def respond(self, transaction: ServerTransaction, response: Response) -> None:
        """Answer a server transaction (retransmitted by Timer G over UDP)."""
        if "server" not in response.headers and "Server" not in response.headers:
            response.headers.set("Server", SERVER)
        previous = transaction.last_response
        if previous is not None:
            self._sent_by.pop(id(previous), None)
        self._sent_by[id(response)] = transaction
        self.transactions.send_response(transaction, response, self.now())
        self._settle()

    def send_request(
        self,
        request: Request,
        destination: Address | int,
        on_response: Callable[[Response], None],
        on_failure: Callable[[int], None] | None = None,
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` toward ``destination``.

        A request without Via gets ours; a top Via without a branch gets a fresh one
        (RFC 3261 8.1.1.7). ``on_failure`` hears 408 on timeout and 503 on a transport
        error (RFC 3261 8.1.3.1); both are also the end of the transaction.
        """
        self._ensure_branch(request, destination)
        reliable = self._reliable(destination)
        txn = self.transactions.send_request(
            request, self.now(), reliable=reliable, destination=destination
        )
        self._clients[id(txn)] = _Client(txn, on_response, on_failure, destination)
        self._settle()
        return txn

    def send_stateless(self, message: Request | Response, destination: Address | int) -> None:
        """Send outside any transaction: an ACK for a 2xx, a forwarded 2xx (RFC 3261 16.7)."""
        if isinstance(message, Request):
            self._ensure_branch(message, destination)
        self._transmit(message.to_bytes(), destination)

    def cancel(self, transaction: ClientTransaction) -> None:
        """Cancel an INVITE client transaction (RFC 3261 9.1).

        The CANCEL goes at once when a provisional response has arrived, else as soon
        as one does; nothing is sent after a final response.
        """
        client = self._clients.get(id(transaction))
        if (
            client is None
            or client.cancelled
            or not isinstance(transaction, ClientInviteTransaction)
        ):
            return
        if transaction.cancellable:
            self._send_cancel(client)
        elif not transaction.terminated and transaction.last_response is None:
            # RFC 3261 9.1: no CANCEL before a provisional response arrived
            client.cancel_pending = True

    def _send_cancel(self, client: _Client) -> None:
        client.cancelled = True
        client.cancel_pending = False
        cancel = make_cancel(client.transaction.request)
        try:
            self.send_request(cancel, client.destination, _ignore, None)
        except LocalError:
            log.debug("CANCEL not sent", exc_info=True)

    # -- the transport's receiver -----------------------------------------------------

    def message_received(self, data: bytes, origin: Origin) -> None:
        now = self.now()
        try:
            message = parse_message(data, datagram=not origin.transport.framed_by_length)
        except RemoteError as exc:
            self._salvage(data, exc, origin)
            return
        try:
            if isinstance(message, Request):
                via = stamp_via(message.headers, message.via, origin)
                # RFC 3261 8.2.6.2: a response copies these; without them no answer.
                message.call_id, message.cseq, message.from_, message.to  # noqa: B018
                if origin.connection is not None:
                    alias = alias_address(via, origin)
                    if alias is not None and hasattr(self.layer, "alias"):
                        self.layer.alias(origin.connection, alias)
            else:
                message.via, message.cseq  # noqa: B018
            self.transactions.receive(
                message, now, reliable=origin.transport.reliable, source=origin
            )
        except RemoteError as exc:
            if isinstance(message, Request) and message.method != "ACK":
                self._salvage(data, exc, origin)
            return
        self._drain(now)

    def framing_failed(self, failure: FramingFailed, origin: Origin) -> None:
        reply = salvage_response(failure.header_block, failure.status, failure.reason, origin)
        if reply is not None:
            self._send_to(reply.data, reply.destination)

    def on_timer(self, now: float | None = None) -> None:
        """Fire the transaction timers due at ``now`` (retransmissions, timeouts)."""
        self.transactions.on_timer(self.now() if now is None else now)
        self._drain(self.now() if now is None else now)

    def next_timer(self) -> float | None:
        return self.transactions.next_timer()

    # -- internals ---------------------------------------------------------------------

    def _settle(self) -> None:
        """After a command: send, and outside a drain pass new events on too."""
        if self._draining:
            self._flush()
        else:
            self._drain(self.now())

    def _drain(self, now: float) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            self._drain_events(now)
        finally:
            self._draining = False
        self._rearm()

    def _drain_events(self, now: float) -> None:
        while True:
            self._flush()
            events = self.transactions.next_events()
            if not events:
                break
            for event in events:
                try:
                    self._event(event, now)
                except Exception:
                    log.exception("SIP handler failed on %s", type(event).__name__)
        self._flush()

    def _event(self, event: object, now: float) -> None:
        if isinstance(event, RequestReceived):
            origin = event.source
            assert isinstance(origin, Origin)
            request = event.request
            txn = event.transaction
            if request.method == "CANCEL" and txn is not None:
                self._cancel_received(request, origin, txn, now)
                return
            if request.method == "ACK" and txn is not None:
                txn = None  # RFC 6026 7.1: an ACK passed up in Accepted is the 2xx's ACK
            self.handler.request_received(request, origin, txn)
        elif isinstance(event, ResponseReceived):
            client = self._clients.get(id(event.transaction))
            if client is None:
                return
            response = event.response
            if client.cancel_pending and response.status < 200:
                self._send_cancel(client)
            client.on_response(response)
        elif isinstance(event, StrayResponseReceived):
            stray = getattr(self.handler, "stray_response", None)
            if stray is not None:
                stray(event.response, event.source)
        elif isinstance(event, TransactionTimedOut):
            self._failed(event.transaction, 408)
        elif isinstance(event, TransportErrorOccurred):
            self._failed(event.transaction, 503)
        elif isinstance(event, TransactionTerminated):
            ended = event.transaction
            self._clients.pop(id(ended), None)
            sent = ended.last_response
            if sent is not None:
                self._sent_by.pop(id(sent), None)

    def _failed(self, txn: Transaction, status: int) -> None:
        client = self._clients.pop(id(txn), None)
        if client is not None:
            if client.on_failure is not None:
                client.on_failure(status)
            return
        failed = getattr(self.handler, "transaction_failed", None)
        if failed is not None and isinstance(txn, ServerTransaction):
            failed(txn, status)

    def _cancel_received(
        self, cancel: Request, origin: Origin, txn: ServerTransaction, now: float
    ) -> None:
        invite = self.transactions.find_cancelled(cancel)
        # RFC 3261 9.2: 200 when the CANCEL matches a transaction, else 481
        response = make_response(cancel, 200 if invite is not None else 481)
        if invite is not None:
            last = invite.last_response
            if last is not None and last.to_tag:
                # RFC 3261 9.2: the To tag of the CANCEL's response matches the INVITE's
                response = make_response(cancel, 200, to_tag=last.to_tag)
        self.respond(txn, response)
        if invite is not None and (
            invite.last_response is None or invite.last_response.status < 200
        ):
            self.handler.cancelled(invite)

    def _flush(self) -> None:
        for transmit in self.transactions.messages_to_send():
            message = transmit.message
            destination = transmit.destination
            if isinstance(message, Response):
                if not isinstance(destination, Origin):
                    continue
                target = response_destination(message.via, destination)
                if not self._send_to(message.to_bytes(), target):
                    txn = self._sent_by.get(id(message))
                    if txn is not None:
                        self.transactions.transport_error(txn, self.now())
            elif isinstance(destination, (Address, int)) and not self._transmit(
                message.to_bytes(), destination, functools.partial(self._send_failed, message)
            ):
                client = self._find_client_of(message)
                if client is not None:
                    self.transactions.transport_error(client.transaction, self.now())

    def _send_failed(self, message: Request, exc: Exception) -> None:
        """The connection opened in the background for ``message`` could not be made.

        RFC 3261 8.1.3.1 and 17.1.4: the client transaction reports a transport error,
        which its user treats as a 503 (a proxy tries its next target, RFC 3263 4.3).
        """
        client = self._find_client_of(message)
        if client is not None:
            self.transactions.transport_error(client.transaction, self.now())
            self._drain(self.now())

    def _find_client_of(self, message: Request) -> _Client | None:
        for client in self._clients.values():
            if client.transaction.request is message:
                return client
        return None

    def _send_to(self, data: bytes, destination: ResponseDestination) -> bool:
        if destination.connection is not None:
            try:
                self.layer.send(data, destination.connection)
                return True
            except TransportError:
                pass  # RFC 3261 18.2.2: the connection is gone, use the address
        return self._transmit(data, destination.address)

    def _transmit(
        self,
        data: bytes,
        destination: Address | int,
        failed: Callable[[Exception], None] | None = None,
    ) -> bool:
        try:
            self.layer.send(data, destination, failed)
        except (TransportError, OSError) as exc:
            log.info("cannot send to %s: %s", destination, exc)
            return False
        return True

    def _reliable(self, destination: Address | int) -> bool:
        if isinstance(destination, Address):
            return destination.transport.reliable
        origin_of = getattr(self.layer, "origin", None)
        origin = origin_of(destination) if origin_of is not None else None
        return True if origin is None else bool(origin.transport.reliable)

    def _ensure_branch(self, request: Request, destination: Address | int) -> None:
        if "via" not in request.headers:
            kind = self._kind_of(destination)
            host, port = self.local_via(kind.value)
            via = Via(kind.value, host, port, {"branch": new_branch(), "rport": None})
            request.headers.add("Via", str(via), first=True)
            return
        top = request.via
        if not top.branch:
            # RFC 3261 8.1.1.7: a fresh branch with the magic cookie
            request.headers.remove_first("Via")
            request.headers.add("Via", str(top.with_params(branch=new_branch())), first=True)

    def _kind_of(self, destination: Address | int) -> Kind:
        if isinstance(destination, Address):
            return destination.transport
        origin_of = getattr(self.layer, "origin", None)
        origin = origin_of(destination) if origin_of is not None else None
        return Kind.UDP if origin is None else origin.transport

    def _salvage(self, data: bytes, exc: RemoteError, origin: Origin) -> None:
        if not exc.respondable:
            return
        reply = salvage_response(data, exc.status, exc.reason, origin)
        if reply is not None:
            self._send_to(reply.data, reply.destination)

    def _rearm(self) -> None:
        if self._clock is not None:
            return  # driven by a test: it calls on_timer itself
        loop = self._loop
        if loop is None:
            try:
                loop = self._loop = asyncio.get_running_loop()
            except RuntimeError:
                return
        deadline = self.transactions.next_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.on_timer()
        except Exception:
            log.exception("error running SIP timers")
            self._rearm()

    def rearm(self) -> None:
        """Re-arm the timer after the handler changed something outside a callback."""
        self._rearm()


def _ignore(_response: Response) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Reply:
    """One message to send, where, and the server transaction that sent it (if any)."""

    data: bytes
    destination: ResponseDestination
    transaction: ServerTransaction | None = None


def capabilities(allowed: tuple[str, ...], supported: tuple[str, ...]) -> dict[str, str]:
    """The headers of a 200 to OPTIONS (RFC 3261 11.2): header name -> value.

    Shared by the users proxy and the application server so that both describe
    themselves alike. RFC 3261 20.37: Supported may be absent; it is left out rather
    than sent empty when nothing is supported.
    """
    headers = {
        "Allow": ", ".join(allowed),
        "Accept": "application/sdp",
        "Accept-Encoding": "identity",
        "Accept-Language": "en",
    }
    if supported:
        headers["Supported"] = ", ".join(supported)
    return headers


def salvage_response(data: bytes, status: int, reason: str, origin: Origin) -> Reply | None:
    """A response to a message the parser refused, built from its raw header lines.

    The Via, From, To, Call-ID and CSeq lines are echoed as received (RFC 3261 8.2.6.2)
    and the response goes straight back to the packet's source or connection, since a
    malformed Via cannot be trusted for routing. Returns None when the start line is not
    a request's, the request is an ACK, or a needed header line is missing.
    """
    head = data.split(b"\r\n\r\n", 1)[0]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    # RFC 3261 7.3.1: folded lines continue the header above.
    lines = _FOLD.sub(" ", text).split("\r\n")
    start = lines[0].split()  # tolerant: extra spaces are a reason to answer 400
    if len(start) < 3 or not start[-1].upper().startswith("SIP/") or start[0] == "ACK":
        return None
    echoed: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            continue
        canonical = _ECHOED.get(name.strip().lower())
        if canonical is not None:
            echoed.append((canonical, value.strip()))
    present = {name for name, _ in echoed}
    if present != {"Via", "From", "To", "Call-ID", "CSeq"}:
        return None
    cseq_method = dict(echoed)["CSeq"].split()[-1:]
    if cseq_method == ["ACK"]:
        return None
    reason = "".join(c if c.isprintable() else " " for c in reason)[:100] or "Error"
    out = [f"SIP/2.0 {status} {reason}"]
    out += [f"{name}: {value}" for name, value in echoed]
    out += [f"Server: {SERVER}", "Content-Length: 0", "", ""]
    payload = "\r\n".join(out).encode("utf-8", "replace")
    return Reply(payload, ResponseDestination(origin.connection, origin.remote))


__all__ = ["SERVER", "Reply", "RequestHandler", "SipNode", "salvage_response"]
