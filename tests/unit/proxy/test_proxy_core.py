"""ivoz.proxy.core: RFC 3261 section 16 with a fake SIP port and a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ivoz.proxy.core import TIMER_C, Proxy, Target, choose_best, validate
from ivoz.sip import URI, Request, Response, make_response
from ivoz.transport import Address, Kind, Origin

HOST = "10.0.0.1"
PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 8080, "WSS": 8443}


@dataclass(eq=False)
class FakeTxn:
    request: Request
    destination: Address | int
    on_response: Callable[[Response], None]
    on_failure: Callable[[int], None] | None
    cancelled: bool = False

    def respond(self, status: int, *, to_tag: str | None = "t1", body: bytes = b"") -> Response:
        response = make_response(self.request, status, to_tag=to_tag if status > 100 else None)
        response.body = body
        self.on_response(response)
        return response


@dataclass
class FakePort:
    sent: list[FakeTxn] = field(default_factory=list)
    upstream: list[Response] = field(default_factory=list)
    stateless: list[tuple[Request | Response, Address | int]] = field(default_factory=list)

    def respond(self, transaction: Any, response: Response) -> None:
        self.upstream.append(response)

    def send_request(
        self,
        request: Request,
        destination: Address | int,
        on_response: Callable[[Response], None],
        on_failure: Callable[[int], None] | None = None,
    ) -> FakeTxn:
        txn = FakeTxn(request, destination, on_response, on_failure)
        self.sent.append(txn)
        return txn

    def send_stateless(self, message: Request | Response, destination: Address | int) -> None:
        self.stateless.append((message, destination))

    def cancel(self, transaction: Any) -> None:
        transaction.cancelled = True

    def local_via(self, transport: str) -> tuple[str, int]:
        return HOST, PORTS[transport.upper()]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_proxy() -> tuple[Proxy, FakePort, Clock]:
    port, clock = FakePort(), Clock()
    return Proxy(port, clock=clock, local_hosts=frozenset({HOST})), port, clock


def invite(
    uri: str = "sip:bob@example.com", *, method: str = "INVITE", extra: list[Any] | None = None
) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-caller;received=192.0.2.1"),
        ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "call-1"),
        ("CSeq", f"1 {method}"),
        ("Contact", "<sip:alice@192.0.2.1>"),
        *(extra or []),
    ]
    return Request(method, uri, headers)


ORIGIN = Origin(Kind.UDP, Address(Kind.UDP, "192.0.2.1", 5060), Address(Kind.UDP, HOST, 5060))
PHONE_B = Address(Kind.UDP, "192.0.2.2", 5060)
PHONE_C = Address(Kind.UDP, "192.0.2.3", 5060)


def targets(*addresses: Address) -> list[Target]:
    return [Target(URI("sip", "bob", None, a.host, a.port), a, a.transport) for a in addresses]


def test_forwarded_copy_follows_16_6() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "server-txn", ORIGIN, targets(PHONE_B))
    (txn,) = port.sent
    request = txn.request
    assert request.request_uri == "sip:bob@192.0.2.2:5060"  # step 2
    assert request.max_forwards == 69  # step 3
    assert request.headers.get_all("Record-Route") == [f"<sip:{HOST}:5060;lr>"]  # step 4
    vias = request.vias  # step 8: ours on top, with a fresh branch and rport
    assert (vias[0].host, vias[0].port) == (HOST, 5060)
    assert vias[0].branch and vias[0].branch.startswith("z9hG4bK")
    assert "rport" in vias[0].params
    assert vias[1].branch == "z9hG4bK-caller"
    assert txn.destination == PHONE_B


def test_transport_change_gives_double_record_route() -> None:
    proxy, port, _ = make_proxy()
    tcp = Address(Kind.TCP, "192.0.2.2", 5070)
    target = Target(URI("sip", "bob", None, "192.0.2.2", 5070), tcp, Kind.TCP)
    proxy.forward(invite(), "txn", ORIGIN, [target])
    routes = port.sent[0].request.headers.get_all("Record-Route")
    # RFC 5658: outbound-facing on top, inbound-facing below, both marked r2=on
    assert routes == [
        f"<sip:{HOST}:5060;transport=tcp;lr;r2=on>",
        f"<sip:{HOST}:5060;lr;r2=on>",
    ]
    assert port.sent[0].request.via.transport == "TCP"


def test_parallel_fork_best_response_and_cancel_after_2xx() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B, PHONE_C))
    b, c = port.sent
    assert b.request.via.branch != c.request.via.branch
    b.respond(100)
    assert port.upstream == []  # RFC 3261 16.7 step 5: 100 is not forwarded
    b.respond(180, to_tag="b")
    assert [r.status for r in port.upstream] == [180]
    # our Via is gone from what goes upstream (16.7 step 3)
    assert port.upstream[0].vias[0].branch == "z9hG4bK-caller"
    c.respond(200, to_tag="c")
    assert [r.status for r in port.upstream] == [180, 200]
    assert b.cancelled and not c.cancelled  # 16.7 step 10
    b.respond(487, to_tag="b")
    assert [r.status for r in port.upstream] == [180, 200]  # nothing after the 2xx
    # a retransmitted 2xx is forwarded again (the UAC must ACK each one)
    c.respond(200, to_tag="c")
    assert [r.status for r in port.upstream] == [180, 200, 200]


def test_every_2xx_of_a_forked_invite_is_forwarded() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B, PHONE_C))
    b, c = port.sent
    b.respond(200, to_tag="b")
    c.respond(200, to_tag="c")
    assert [(r.status, r.to_tag) for r in port.upstream] == [(200, "b"), (200, "c")]


def test_best_final_response_waits_for_every_branch() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B, PHONE_C))
    b, c = port.sent
    b.respond(486, to_tag="b")
    assert port.upstream == []
    c.respond(503, to_tag="c")
    assert [r.status for r in port.upstream] == [486]


def test_503_becomes_500_and_6xx_wins_and_cancels() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B))
    port.sent[0].respond(503)
    assert [r.status for r in port.upstream] == [500]  # RFC 3261 16.7 step 6

    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B, PHONE_C))
    b, c = port.sent
    c.respond(180)
    b.respond(603)
    assert c.cancelled
    c.respond(487)
    assert [r.status for r in port.upstream] == [180, 603]


def test_choose_best_prefers_6xx_then_lowest_class() -> None:
    request = invite()
    r = [make_response(request, s) for s in (503, 486, 302)]
    assert choose_best(r).status == 302
    assert choose_best([*r, make_response(request, 600)]).status == 600
    assert choose_best([make_response(request, s) for s in (408, 404)]).status == 404


def test_challenges_of_all_branches_are_merged() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B, PHONE_C))
    b, c = port.sent
    for txn, realm in ((b, "b.example"), (c, "c.example")):
        response = make_response(txn.request, 407, to_tag="x")
        response.headers.add("Proxy-Authenticate", f'Digest realm="{realm}", nonce="n"')
        txn.on_response(response)
    (final,) = port.upstream
    assert final.status == 407
    assert len(final.headers.get_lines("Proxy-Authenticate")) == 2  # 16.7 step 7


def test_cancel_cancels_every_pending_branch() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B, PHONE_C))
    b, c = port.sent
    b.respond(180)
    assert proxy.cancelled("txn")  # RFC 3261 16.10
    assert b.cancelled and c.cancelled
    b.respond(487)
    c.respond(487)
    assert [r.status for r in port.upstream] == [180, 487]
    assert not proxy.cancelled("txn")  # the context is gone: nothing matches


def test_timer_c_cancels_a_ringing_branch_and_408_without_answer() -> None:
    proxy, port, clock = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B))
    (b,) = port.sent
    b.respond(180)
    deadline = proxy.next_timer()
    assert deadline == pytest.approx(TIMER_C)
    clock.now = deadline
    proxy.on_timer(clock.now)
    assert b.cancelled  # RFC 3261 16.8
    # no 487 ever comes: the branch is given up as 408
    while (deadline := proxy.next_timer()) is not None:
        clock.now = deadline
        proxy.on_timer(deadline)
    assert [r.status for r in port.upstream] == [180, 408]


def test_no_response_at_all_is_408_and_alternates_are_tried() -> None:
    proxy, port, clock = make_proxy()
    first, second = targets(PHONE_B, PHONE_C)
    proxy.forward(invite(), "txn", ORIGIN, [first], alternates=[second])
    assert len(port.sent) == 1
    clock.now = proxy.next_timer() or 0.0
    proxy.on_timer(clock.now)
    # the first never answered: serial failover to the alternate
    assert len(port.sent) == 2 and port.sent[1].destination == PHONE_C
    port.sent[1].respond(200)
    assert [r.status for r in port.upstream] == [200]


def test_transport_failure_reported_by_the_node_is_503_then_500() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B))
    failure = port.sent[0].on_failure
    assert failure is not None
    failure(503)
    assert [r.status for r in port.upstream] == [500]


def test_validation_max_forwards_and_proxy_require() -> None:
    request = invite()
    request.headers.set("Max-Forwards", "0")
    rejected = validate(request)
    assert rejected is not None and rejected.status == 483
    rejected = validate(invite(extra=[("Proxy-Require", "foo")]))
    assert rejected is not None and rejected.status == 420
    assert rejected.headers.get("Unsupported") == "foo"
    assert validate(invite()) is None


def test_loose_routing_removes_our_route_and_keeps_the_request_uri() -> None:
    proxy, _, _ = make_proxy()
    request = invite(
        "sip:bob@192.0.2.2",
        method="BYE",
        extra=[("Route", f"<sip:{HOST}:5060;lr>, <sip:192.0.2.50;lr>")],
    )
    proxy.preprocess_routes(request)
    assert request.headers.get_all("Route") == ["<sip:192.0.2.50;lr>"]
    assert str(proxy.next_hop(request)) == "sip:192.0.2.50;lr"


def test_double_record_route_values_are_both_removed() -> None:
    proxy, _, _ = make_proxy()
    request = invite(
        "sip:bob@192.0.2.2",
        method="BYE",
        extra=[
            ("Route", f"<sip:{HOST}:5060;transport=tcp;lr;r2=on>"),
            ("Route", f"<sip:{HOST}:5060;lr;r2=on>"),
        ],
    )
    proxy.preprocess_routes(request)
    assert request.headers.get_all("Route") == []
    assert str(proxy.next_hop(request)) == "sip:bob@192.0.2.2"


def test_strict_router_before_us_is_undone() -> None:
    proxy, _, _ = make_proxy()
    # RFC 3261 16.4: the Request-URI is our Record-Route; the real one is the last Route
    request = invite(f"sip:{HOST}:5060;lr", method="BYE", extra=[("Route", "<sip:bob@192.0.2.2>")])
    proxy.preprocess_routes(request)
    assert request.request_uri == "sip:bob@192.0.2.2"
    assert request.headers.get_all("Route") == []


def test_strict_next_hop_takes_the_request_uri() -> None:
    proxy, port, _ = make_proxy()
    request = invite("sip:bob@192.0.2.2", extra=[("Route", "<sip:192.0.2.60>")])
    proxy.forward(request, "txn", ORIGIN, [Target(None, PHONE_B)], record_route=False)
    sent = port.sent[0].request
    # RFC 3261 16.6 step 6: the strict route becomes the Request-URI, the old one last
    assert sent.request_uri == "sip:192.0.2.60"
    assert sent.headers.get_all("Route") == ["<sip:bob@192.0.2.2>"]


def test_ack_for_2xx_goes_statelessly_with_our_via() -> None:
    proxy, port, _ = make_proxy()
    ack = invite("sip:bob@192.0.2.2", method="ACK")
    proxy.forward_stateless(ack, PHONE_B, Kind.UDP)
    ((sent, destination),) = port.stateless
    assert destination == PHONE_B
    assert isinstance(sent, Request) and sent.max_forwards == 69
    assert sent.via.host == HOST and len(sent.vias) == 2


def test_stray_2xx_with_our_via_is_forwarded_to_the_next_via() -> None:
    proxy, port, _ = make_proxy()
    request = invite()
    request.headers.add("Via", f"SIP/2.0/UDP {HOST}:5060;branch=z9hG4bK-ours", first=True)
    response = make_response(request, 200, to_tag="b")
    proxy.stray_response(response, lambda via: Address(Kind.UDP, via.host, via.port or 5060))
    ((sent, destination),) = port.stateless
    assert isinstance(sent, Response) and len(sent.vias) == 1
    assert destination == Address(Kind.UDP, "192.0.2.1", 5060)
    # not ours on top: dropped
    proxy.stray_response(make_response(invite(), 200), lambda via: None)
    assert len(port.stateless) == 1


def test_response_hook_can_hold_and_rewrite_a_response() -> None:
    proxy, port, _ = make_proxy()
    held: list[tuple[Response, Callable[[Response], None]]] = []

    def hook(context: Any, branch: Any, response: Response, deliver: Any) -> None:
        held.append((response, deliver))

    proxy.forward(invite(), "txn", ORIGIN, targets(PHONE_B), on_response=hook)
    port.sent[0].respond(200, body=b"v=0\r\n")
    assert port.upstream == []
    response, deliver = held[0]
    response.body = b"rewritten"
    deliver(response)
    assert port.upstream[0].body == b"rewritten"


def test_non_invite_gets_no_timer_c_and_the_final_once() -> None:
    proxy, port, _ = make_proxy()
    proxy.forward(invite(method="MESSAGE"), "txn", ORIGIN, targets(PHONE_B, PHONE_C))
    b, c = port.sent
    b.respond(200, to_tag="b")
    c.respond(200, to_tag="c")
    assert [r.status for r in port.upstream] == [200]
    assert not b.cancelled and not c.cancelled  # CANCEL is for INVITEs only
