"""ivoz.transport.node.SipNode: two nodes over loopback, and the sans-IO drive."""

from __future__ import annotations

import asyncio
import socket

from ivoz.sip import Request, Response, make_response, new_call_id, new_tag, parse_message
from ivoz.sip.timers import TimerConfig
from ivoz.sip.transaction import ServerTransaction
from ivoz.transport import Address, Kind, Origin
from ivoz.transport.node import SipNode


class Recorder:
    """A RequestHandler that remembers everything and can answer INVITEs."""

    def __init__(self) -> None:
        self.requests: list[tuple[Request, Origin, ServerTransaction | None]] = []
        self.cancelled_txns: list[ServerTransaction] = []
        self.node: SipNode | None = None
        self.auto: list[int] = []
        self.got = asyncio.Event() if _loop_running() else None

    def request_received(
        self, request: Request, origin: Origin, transaction: ServerTransaction | None
    ) -> None:
        self.requests.append((request, origin, transaction))
        if transaction is not None and self.node is not None:
            for status in self.auto:
                self.node.respond(transaction, make_response(request, status, to_tag="callee"))
        if self.got is not None:
            self.got.set()

    def cancelled(self, transaction: ServerTransaction) -> None:
        self.cancelled_txns.append(transaction)
        if self.node is not None:
            self.node.respond(transaction, make_response(transaction.request, 487))


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def invite(host: str, port: int, transport: str = "UDP") -> Request:
    headers = [
        ("Via", f"SIP/2.0/{transport} {host}:{port};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:alice@{host}>;tag={new_tag()}"),
        ("To", f"<sip:bob@{host}>"),
        ("Call-ID", new_call_id()),
        ("CSeq", "1 INVITE"),
        ("Contact", f"<sip:alice@{host}:{port}>"),
    ]
    return Request("INVITE", f"sip:bob@{host}", headers)


async def _pair(kind: Kind) -> tuple[SipNode, Recorder, SipNode, Recorder, Address]:
    ua, server = Recorder(), Recorder()
    caller = SipNode(ua, timers=TimerConfig(trying_delay=0))
    callee = SipNode(server, timers=TimerConfig(trying_delay=0))
    ua.node, server.node = caller, callee
    await caller.listen(kind, "127.0.0.1", 0)
    bound = await callee.listen(kind, "127.0.0.1", 0)
    return caller, ua, callee, server, bound


async def test_invite_transaction_over_loopback_udp() -> None:
    caller, _, callee, server, bound = await _pair(Kind.UDP)
    server.auto = [180, 200]
    responses: list[Response] = []
    done = asyncio.Event()

    def on_response(response: Response) -> None:
        responses.append(response)
        if response.status >= 200:
            done.set()

    try:
        host, port = caller.local_via("UDP")
        request = invite(host, port)
        txn = caller.send_request(request, bound, on_response)
        await asyncio.wait_for(done.wait(), 5)
        statuses = [r.status for r in responses]
        assert 180 in statuses and statuses[-1] == 200
        assert txn.request.via.branch and txn.request.via.branch.startswith("z9hG4bK")
        (received, origin, server_txn), *_ = server.requests
        assert received.method == "INVITE" and server_txn is not None
        # RFC 3581: the node stamped received/rport on the request
        assert received.via.rport == origin.remote.port
        # the ACK for the 2xx reaches the handler without a transaction
        ack = Request(
            "ACK",
            "sip:alice@127.0.0.1",
            [
                ("Via", f"SIP/2.0/UDP {host}:{port}"),
                ("Max-Forwards", "70"),
                ("From", request.headers.get("From") or ""),
                ("To", responses[-1].headers.get("To") or ""),
                ("Call-ID", request.call_id),
                ("CSeq", "1 ACK"),
            ],
        )
        server.got = asyncio.Event()
        caller.send_stateless(ack, bound)
        await asyncio.wait_for(server.got.wait(), 5)
        last, _, none_txn = server.requests[-1]
        assert last.method == "ACK" and none_txn is None
        assert last.via.branch  # send_stateless gave it a branch
    finally:
        await caller.close()
        await callee.close()


async def test_cancel_over_loopback_tcp() -> None:
    caller, _, callee, server, bound = await _pair(Kind.TCP)
    server.auto = [180]
    responses: list[Response] = []
    final = asyncio.Event()

    def on_response(response: Response) -> None:
        responses.append(response)
        if response.status >= 200:
            final.set()
        elif response.status == 180:
            caller.cancel(txn)

    try:
        host, port = caller.local_via("TCP")
        txn = caller.send_request(invite(host, port, "TCP"), bound, on_response)
        await asyncio.wait_for(final.wait(), 5)
        assert responses[-1].status == 487
        assert len(server.cancelled_txns) == 1
    finally:
        await caller.close()
        await callee.close()


async def test_timeout_reports_408() -> None:
    quiet = SipNode(Recorder(), timers=TimerConfig(t1=0.01, t2=0.04))
    node = SipNode(Recorder(), timers=TimerConfig(t1=0.01, t2=0.04))
    failed: list[int] = []
    done = asyncio.Event()

    def on_failure(status: int) -> None:
        failed.append(status)
        done.set()

    try:
        bound = await quiet.listen(Kind.UDP, "127.0.0.1", 0)
        await quiet.layer.close()  # nobody answers there any more
        await node.listen(Kind.UDP, "127.0.0.1", 0)
        host, port = node.local_via("UDP")
        node.send_request(invite(host, port), bound, lambda r: None, on_failure)
        await asyncio.wait_for(done.wait(), 5)
        assert failed == [408]
    finally:
        await node.close()


async def test_connection_that_cannot_be_opened_reports_503_at_once() -> None:
    """RFC 3261 8.1.3.1: a TCP connect refused in the background is a 503 now, not a
    timeout 64*T1 later (a proxy then tries its next target, RFC 3263 4.3)."""
    node = SipNode(Recorder())  # default timers: Timer B would take 32 s
    failed: list[int] = []
    done = asyncio.Event()

    def on_failure(status: int) -> None:
        failed.append(status)
        done.set()

    closed = socket.create_server(("127.0.0.1", 0))
    nobody = Address(Kind.TCP, "127.0.0.1", closed.getsockname()[1])
    closed.close()  # nothing listens there any more: the connect is refused
    try:
        await node.listen(Kind.TCP, "127.0.0.1", 0)
        host, port = node.local_via("TCP")
        txn = node.send_request(invite(host, port, "TCP"), nobody, lambda r: None, on_failure)
        await asyncio.wait_for(done.wait(), 5)
        assert failed == [503]
        assert txn.state.value == "Terminated"
    finally:
        await node.close()


class FakeLayer:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address | int]] = []

    def send(self, data: bytes, destination: Address | int, failed: object = None) -> None:
        self.sent.append((data, destination))


def origin() -> Origin:
    return Origin(
        Kind.UDP, Address(Kind.UDP, "127.0.0.1", 40000), Address(Kind.UDP, "127.0.0.1", 5060)
    )


def test_stray_cancel_gets_481_and_cancel_of_pending_invite_200() -> None:
    now = [0.0]
    layer = FakeLayer()
    handler = Recorder()
    node = SipNode(handler, layer=layer, clock=lambda: now[0])
    request = invite("127.0.0.1", 40000)
    request.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-1")
    node.message_received(request.to_bytes(), origin())
    assert handler.requests[0][0].method == "INVITE"
    cancel = (
        request.to_bytes().replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
    )
    node.message_received(cancel, origin())
    answers = [parse_message(data) for data, _ in layer.sent]
    assert any(isinstance(a, Response) and a.status == 200 for a in answers)
    assert len(handler.cancelled_txns) == 1
    stray = cancel.replace(b"z9hG4bK-1", b"z9hG4bK-2")
    node.message_received(stray, origin())
    last = parse_message(layer.sent[-1][0])
    assert isinstance(last, Response) and last.status == 481


def test_malformed_request_is_answered_from_raw_lines() -> None:
    layer = FakeLayer()
    node = SipNode(Recorder(), layer=layer, clock=lambda: 0.0)
    data = invite("127.0.0.1", 40000).to_bytes().replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE")
    node.message_received(data, origin())
    (sent, destination), *_ = layer.sent
    response = parse_message(sent)
    assert isinstance(response, Response) and response.status == 400
    assert destination == Address(Kind.UDP, "127.0.0.1", 40000)


def test_timers_driven_by_a_fake_clock_retransmit_and_time_out() -> None:
    now = [0.0]
    layer = FakeLayer()
    node = SipNode(Recorder(), layer=layer, clock=lambda: now[0])
    failures: list[int] = []
    request = invite("127.0.0.1", 5060)
    node.send_request(
        request, Address(Kind.UDP, "127.0.0.1", 5070), lambda r: None, failures.append
    )
    assert len(layer.sent) == 1
    while (deadline := node.next_timer()) is not None and not failures:
        now[0] = deadline
        node.on_timer(deadline)
    # RFC 3261 17.1.1.2: Timer A retransmissions, then Timer B -> 408
    assert len(layer.sent) > 3
    assert failures == [408]


class FailingLayer(FakeLayer):
    def send(self, data: bytes, destination: Address | int, failed: object = None) -> None:
        from ivoz.transport import TransportError

        raise TransportError("gone")


def test_transport_error_reports_503_and_stray_responses_reach_the_handler() -> None:
    failures: list[int] = []
    node = SipNode(Recorder(), layer=FailingLayer(), clock=lambda: 0.0)
    node.send_request(
        invite("127.0.0.1", 5060),
        Address(Kind.TCP, "127.0.0.1", 5070),
        lambda r: None,
        failures.append,
    )
    assert failures == [503]  # RFC 3261 8.1.3.1 / 17.1.4

    class Strays(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.strays: list[Response] = []

        def stray_response(self, response: Response, origin: object) -> None:
            self.strays.append(response)

    handler = Strays()
    node = SipNode(handler, layer=FakeLayer(), clock=lambda: 0.0)
    request = invite("127.0.0.1", 40000)
    request.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-unknown")
    node.message_received(make_response(request, 200, to_tag="x").to_bytes(), origin())
    assert [r.status for r in handler.strays] == [200]


def test_cancel_waits_for_a_provisional_response() -> None:
    layer = FakeLayer()
    node = SipNode(Recorder(), layer=layer, clock=lambda: 0.0)
    destination = Address(Kind.UDP, "127.0.0.1", 5070)
    txn = node.send_request(invite("127.0.0.1", 5060), destination, lambda r: None)
    node.cancel(txn)
    assert len(layer.sent) == 1  # RFC 3261 9.1: not before a provisional response
    ringing = make_response(txn.request, 180, to_tag="b")
    node.message_received(ringing.to_bytes(), origin())
    sent = [parse_message(data) for data, _ in layer.sent]
    assert [m.method for m in sent if isinstance(m, Request)] == ["INVITE", "CANCEL"]
    node.cancel(txn)  # once only
    assert len(layer.sent) == 2


def test_requests_over_a_connection_id_and_our_via() -> None:
    layer = FakeLayer()
    node = SipNode(Recorder(), layer=layer, clock=lambda: 0.0)
    node.listening[Kind.TCP] = Address(Kind.TCP, "0.0.0.0", 5080)
    request = Request(
        "OPTIONS",
        "sip:bob@127.0.0.1",
        [
            ("From", "<sip:a@b>;tag=1"),
            ("To", "<sip:bob@127.0.0.1>"),
            ("Call-ID", "c"),
            ("CSeq", "1 OPTIONS"),
            ("Max-Forwards", "70"),
        ],
    )
    node.send_request(request, Address(Kind.TCP, "127.0.0.1", 5090), lambda r: None)
    ((data, _),) = layer.sent
    sent = parse_message(data)
    assert isinstance(sent, Request)
    # no Via given: ours, on the destination's transport, with sent-by of that listener
    assert (sent.via.transport, sent.via.host, sent.via.port) == ("TCP", "127.0.0.1", 5080)
    assert node.local_via("TCP") == ("127.0.0.1", 5080)
    assert (
        SipNode(Recorder(), layer=layer, advertised_host="2001:db8::5").local_via("UDP")[0]
        == "[2001:db8::5]"
    )
