"""The users-facing SIP role as of issue 2: a SIP endpoint on every transport.

``serve`` opens the five listeners (UDP, TCP, TLS, WS, WSS) and answers each request
as a UAS that serves nothing but OPTIONS (RFC 3261 11): 200 with its capabilities.
Every other out-of-dialog request gets the error RFC 3261 prescribes:

- unknown method: 501 (8.2.1); known but not served here: 405 with Allow (8.2.1);
- CANCEL: 200 when it matches a server transaction, else 481 (9.2); BYE, PRACK,
  UPDATE, INFO and any request with a To tag match no dialog: 481 (12.2.2, 15.1.2);
  ACK: nothing (17.2.3);
- Request-URI scheme other than sip/sips: 416 (8.2.2.1); an unsupported Require
  option: 420 with Unsupported (8.2.2.3); Max-Forwards 0 on a request that would be
  forwarded (its Request-URI names a user or another host): 483 (16.3);
- malformed messages: the parser's status when a response can be built, else dropped.

Every request goes through a server transaction (ivoz.sip.transaction): retransmitted
requests get the last response again, ACKs for our error responses are absorbed, and
responses over UDP are retransmitted by Timer G. The To tag is derived from the request
(RFC 3261 8.2.6.2), so even a request arriving after its transaction ended gets the same.
Issue 5 replaces this module with the users proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass

from ivoz import __version__
from ivoz.config import Config
from ivoz.sip import RemoteError, Request, Response, make_response, parse_message
from ivoz.sip.framing import FramingFailed
from ivoz.sip.timers import TimerConfig
from ivoz.sip.transaction import (
    Event,
    RequestReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTerminated,
)
from ivoz.transport import Kind, Layer, Origin, TransportError
from ivoz.transport.tls import certificate_files, server_context
from ivoz.transport.via import ResponseDestination, alias_address, response_destination, stamp_via

log = logging.getLogger(__name__)

SERVER = f"Ivoz/{__version__}"
# Methods this endpoint serves, advertised in Allow (RFC 3261 20.5).
ALLOWED = ("OPTIONS",)
# Methods we know (RFC 3261, 3262, 3265/6665, 3311, 3428, 3515, 3903, 6086) but do not
# serve here yet: 405 (RFC 3261 8.2.1). Registrar, calls and presence come later.
KNOWN_NOT_SERVED = frozenset(
    {"INVITE", "REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "REFER", "MESSAGE"}
)
# Methods only meaningful inside a dialog: out of one they match nothing (481).
DIALOG_ONLY = frozenset({"BYE", "PRACK", "UPDATE", "INFO"})
# Option tags we support (none yet: Require of anything gets 420).
SUPPORTED: tuple[str, ...] = ()
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


@dataclass(frozen=True, slots=True)
class Reply:
    """One message to send, where, and the transaction that sent it (if any)."""

    data: bytes
    destination: ResponseDestination
    transaction: ServerTransaction | None = None


class Endpoint:
    """The issue-2 UAS. ``receive``/``on_timer`` are its sans-IO core (bytes and a clock
    value in, replies out); the Receiver methods and the timer are the asyncio shell.
    """

    def __init__(self, config: Config, timers: TimerConfig | None = None) -> None:
        self.config = config
        self.transactions = TransactionLayer(timers)
        self.layer: Layer | None = None
        hosts = {config.sip_host, "127.0.0.1", "localhost", "::1", "[::1]"}
        if config.sip_advertised_host:
            hosts.add(config.sip_advertised_host)
        self.local_hosts = frozenset(h.lower() for h in hosts)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        # id(response) -> the server transaction sending it, for transport errors.
        self._sent_by: dict[int, ServerTransaction] = {}

    # -- sans-IO core --------------------------------------------------------------

    def receive(self, data: bytes, origin: Origin, now: float) -> list[Reply]:
        """Everything to send in reaction to one received message."""
        try:
            message = parse_message(data, datagram=not origin.transport.framed_by_length)
        except RemoteError as exc:
            return _salvaged(data, exc, origin)
        if isinstance(message, Response):
            return []  # no client transactions here: a stray response is dropped
        try:
            via = stamp_via(message.headers, message.via, origin)
            # RFC 3261 8.2.6.2: a response copies these; without them no answer.
            message.call_id, message.cseq, message.from_, message.to  # noqa: B018
            if self.layer is not None and origin.connection is not None:
                alias = alias_address(via, origin)
                if alias is not None:
                    self.layer.alias(origin.connection, alias)
            # RFC 3261 17.2.3: retransmissions and ACKs are absorbed by the transaction.
            self.transactions.receive(
                message, now, reliable=origin.transport.reliable, source=origin
            )
        except RemoteError as exc:
            # A header the lazy parser only now looked at is malformed.
            if message.method == "ACK":
                return []
            return _salvaged(data, exc, origin)
        return self._drain(now)

    def on_timer(self, now: float) -> list[Reply]:
        """Fire the transaction timers due at ``now`` (retransmissions, cleanup)."""
        self.transactions.on_timer(now)
        return self._drain(now)

    def next_timer(self) -> float | None:
        return self.transactions.next_timer()

    def transport_failed(self, reply: Reply, now: float) -> list[Reply]:
        """RFC 3261 17.2.4: tell the transaction its response could not be sent."""
        if reply.transaction is None:
            return []
        self.transactions.transport_error(reply.transaction, now)
        return self._drain(now)

    def _drain(self, now: float) -> list[Reply]:
        ended: list[int] = []
        while events := self.transactions.next_events():
            self._handle(events, now, ended)
        replies: list[Reply] = []
        for transmit in self.transactions.messages_to_send():
            message = transmit.message
            origin = transmit.destination
            if not isinstance(message, Response) or not isinstance(origin, Origin):
                continue  # we never send requests
            transaction = self._sent_by.get(id(message))
            destination = response_destination(message.via, origin)
            replies.append(Reply(message.to_bytes(), destination, transaction))
        for key in ended:
            self._sent_by.pop(key, None)
        return replies

    def _handle(self, events: list[Event], now: float, ended: list[int]) -> None:
        for event in events:
            if isinstance(event, TransactionTerminated):
                sent = event.transaction.last_response
                if sent is not None:
                    ended.append(id(sent))
                continue
            if not isinstance(event, RequestReceived) or event.transaction is None:
                continue  # ACK for no transaction, timeouts: nothing to do
            assert isinstance(event.source, Origin)
            try:
                response = self.decide(event.request, event.source)
            except RemoteError as exc:
                response = make_response(event.request, exc.status, exc.reason)
                response.headers.set("Server", SERVER)
            if response is not None:
                self._sent_by[id(response)] = event.transaction
                self.transactions.send_response(event.transaction, response, now)

    def decide(self, request: Request, origin: Origin) -> Response | None:
        """The TU: the response to a new request (RFC 3261 8.2), None for an ACK."""
        method = request.method
        if method == "ACK":
            return None  # RFC 3261 17.2.3: an ACK is never answered
        to_tag = self._to_tag(request)

        def reply(status: int, reason: str | None = None, **headers: str) -> Response:
            response = make_response(request, status, reason, to_tag=to_tag)
            response.headers.set("Server", SERVER)
            for name, value in headers.items():
                response.headers.set(name.replace("_", "-"), value)
            return response

        # RFC 3261 16.3 step 2: Max-Forwards 0 on a request to forward gets 483; an
        # OPTIONS may be answered by the element itself (RFC 3261 11).
        if method != "OPTIONS" and request.max_forwards == 0 and self._to_forward(request):
            return reply(483)
        # RFC 3261 8.2.1: method inspection comes first.
        if method == "CANCEL":
            # RFC 3261 9.2: 200 when the CANCEL matches a transaction (whose final
            # response is already sent: ours are immediate), else 481.
            return reply(200 if self.transactions.find_cancelled(request) else 481)
        if method != "OPTIONS" and method not in KNOWN_NOT_SERVED and method not in DIALOG_ONLY:
            return reply(501, Allow=", ".join(ALLOWED))
        if request.to_tag is not None or method in DIALOG_ONLY:
            # RFC 3261 12.2.2: a request in a dialog we do not know.
            return reply(481)
        if method in KNOWN_NOT_SERVED:
            # RFC 3261 8.2.1 / 21.4.6: 405 MUST carry Allow.
            return reply(405, Allow=", ".join(ALLOWED))
        # RFC 3261 8.2.2.1: a Request-URI scheme we cannot serve.
        if request.uri.scheme.lower() not in ("sip", "sips"):
            return reply(416)
        # RFC 3261 8.2.2.3: every Require option tag must be supported.
        unsupported = [t for t in request.option_tags("Require") if t.lower() not in SUPPORTED]
        if unsupported:
            return reply(420, Unsupported=", ".join(unsupported))
        # RFC 3261 11.2: the capabilities, as a 200 to OPTIONS.
        return reply(
            200,
            Allow=", ".join(ALLOWED),
            Accept="application/sdp",
            Accept_Encoding="identity",
            Accept_Language="en",
            Supported=", ".join(SUPPORTED),
        )

    # -- asyncio shell: the transport's receiver and one timer -----------------------

    def message_received(self, data: bytes, origin: Origin) -> None:
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        self._send_all(self.receive(data, origin, loop.time()))
        self._rearm()

    def framing_failed(self, failure: FramingFailed, origin: Origin) -> None:
        reply = salvage_response(failure.header_block, failure.status, failure.reason, origin)
        if reply is not None:
            self._send_all([reply])

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        assert self._loop is not None
        try:
            self._send_all(self.on_timer(self._loop.time()))
        except Exception:
            log.exception("error running SIP timers")
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.transactions.next_timer()
        if deadline == self._timer_at or self._loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self._loop.call_at(deadline, self._fire)

    def _send_all(self, replies: list[Reply]) -> None:
        layer = self.layer
        if layer is None:
            return
        failed = []
        for reply in replies:
            destination = reply.destination
            if destination.connection is not None:
                try:
                    layer.send(reply.data, destination.connection)
                    continue
                except TransportError:
                    pass  # RFC 3261 18.2.2: the connection is gone, use the address
            try:
                layer.send(reply.data, destination.address)
            except TransportError:
                failed.append(reply)
        for reply in failed:
            if self._loop is not None:
                self._send_all(self.transport_failed(reply, self._loop.time()))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _to_forward(self, request: Request) -> bool:
        """A proxy would forward this: its Request-URI names a user or another host."""
        uri = request.uri
        return bool(uri.user) or uri.host.lower() not in self.local_hosts

    @staticmethod
    def _to_tag(request: Request) -> str:
        # RFC 3261 8.2.6.2: the same tag for every response to the same request, so a
        # stateless UAS derives it from the request's identity.
        key = f"{request.call_id}\0{request.from_tag}\0{request.via.branch}\0{request.cseq}"
        return hashlib.blake2s(key.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def _salvaged(data: bytes, exc: RemoteError, origin: Origin) -> list[Reply]:
    if not exc.respondable:
        return []
    reply = salvage_response(data, exc.status, exc.reason, origin)
    return [] if reply is None else [reply]


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


async def serve(config: Config) -> None:
    """Run the SIP listeners and the endpoint until cancelled."""
    files = certificate_files(config.data_dir, config.sip_host, config.tls_cert, config.tls_key)
    tls = server_context(files)
    endpoint = Endpoint(config)
    layer = Layer(endpoint, max_message_size=config.sip_max_message_size)
    endpoint.layer = layer
    listeners = (
        (Kind.UDP, config.sip_udp_port),
        (Kind.TCP, config.sip_tcp_port),
        (Kind.TLS, config.sip_tls_port),
        (Kind.WS, config.sip_ws_port),
        (Kind.WSS, config.sip_wss_port),
    )
    try:
        for kind, port in listeners:
            bound = await layer.listen(kind, config.sip_host, port, tls if kind.secure else None)
            log.info("SIP %s listening on %s:%d", kind.value, bound.host, bound.port)
        log.info("TLS certificate %s", files.cert)
        await asyncio.Event().wait()
    finally:
        endpoint.close()
        await layer.close()
