"""The users proxy's answers to requests for itself (issue-2 behaviour), sans-IO.

Issue 5 replaced the issue-2 ``Endpoint`` with ``ivoz.transport.node.SipNode`` running
``ivoz.proxy.role.UsersProxy``; :class:`Endpoint` below drives that pair with a fake
layer and a given clock, so these tests keep checking the same wire behaviour.
REGISTER is served now (the registrar) and INVITEs with a user part are routed, so
they no longer get 405.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivoz.config import Config
from ivoz.proxy import role
from ivoz.proxy.registrar import SUPPORTED as REGISTRAR_SUPPORTED
from ivoz.proxy.role import UsersProxy
from ivoz.sip import Response, parse_message
from ivoz.state.location import MemoryLocationStore
from ivoz.transport import Address, Kind, Origin
from ivoz.transport.layer import ConnectionLimits
from ivoz.transport.node import Reply, SipNode, capabilities, salvage_response
from ivoz.transport.via import ResponseDestination


class NoDirectory:
    def company_by_domain(self, domain: str) -> None:
        return None

    def terminal(self, company_id: int, username: str) -> None:
        return None

    def application_servers(self, set_id: int | None) -> list[object]:
        return []

    def media_relays(self, set_id: int | None) -> list[object]:
        return []

    def is_application_server(self, host: str) -> bool:
        return False


class Services:
    directory = NoDirectory()
    location = MemoryLocationStore()
    relay_owners = None


class Endpoint:
    """SipNode + UsersProxy with a recording layer: bytes and a clock value in, replies out."""

    def __init__(self, config: Config) -> None:
        self.now = 0.0
        self.sent: list[tuple[bytes, Address | int]] = []
        self.node = SipNode(None, layer=self, clock=lambda: self.now)  # type: ignore[arg-type]
        self.proxy = UsersProxy(
            config, Services(), secret=b"s", node=self.node, relay_sets=lambda _: None
        )
        self.node.handler = self.proxy
        self.transactions = self.node.transactions
        self._sent_by = self.node._sent_by

    def send(self, data: bytes, destination: Address | int, failed: object = None) -> None:
        self.sent.append((data, destination))

    def _replies(self) -> list[Reply]:
        out = []
        for data, destination in self.sent:
            if isinstance(destination, int):
                target = ResponseDestination(destination, Address(Kind.TCP, "0.0.0.0", 0))
            else:
                target = ResponseDestination(None, destination)
            out.append(Reply(data, target, None))
        self.sent = []
        return out

    def receive(self, data: bytes, origin: Origin, now: float) -> list[Reply]:
        self.now = now
        self.node.message_received(data, origin)
        return self._replies()

    def next_timer(self) -> float | None:
        return self.node.next_timer()

    def on_timer(self, now: float) -> list[Reply]:
        self.now = now
        self.node.on_timer(now)
        return self._replies()


def origin(kind: Kind = Kind.UDP) -> Origin:
    connection = None if kind is Kind.UDP else 7
    return Origin(
        kind, Address(kind, "127.0.0.1", 40000), Address(kind, "127.0.0.1", 5060), connection
    )


def request(
    method: str = "OPTIONS",
    uri: str = "sip:127.0.0.1",
    *,
    extra: str = "",
    to_tag: str = "",
    cseq_method: str | None = None,
    via: str = "SIP/2.0/UDP 127.0.0.1:5099;rport;branch=z9hG4bK-abc",
) -> bytes:
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "From: <sip:alice@127.0.0.1>;tag=f1\r\n"
        f"To: <sip:127.0.0.1>{to_tag}\r\n"
        "Call-ID: call-1@127.0.0.1\r\n"
        f"CSeq: 1 {cseq_method or method}\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answer(data: bytes, kind: Kind = Kind.UDP) -> tuple[Response, Reply]:
    replies = Endpoint(Config()).receive(data, origin(kind), 0.0)
    assert len(replies) == 1
    (reply,) = replies
    response = parse_message(reply.data)
    assert isinstance(response, Response)
    return response, reply


def test_options_gets_200_with_capabilities() -> None:
    response, reply = answer(request())
    assert response.status == 200
    for name in ("Allow", "Accept", "Supported", "Server", "Accept-Encoding", "Accept-Language"):
        assert name in response.headers
    assert "OPTIONS" in response.headers.get_all("Allow")
    assert response.headers.get("Accept") == "application/sdp"
    assert response.to_tag
    assert response.call_id == "call-1@127.0.0.1"
    # RFC 3581: rport and received filled in; the answer goes to the source port.
    assert response.via.rport == 40000
    assert response.via.received == "127.0.0.1"
    assert reply.destination.address == Address(Kind.UDP, "127.0.0.1", 40000)


def test_proxy_layer_gets_the_configured_connection_limits() -> None:
    config = Config(
        sip_max_connections=100, sip_max_connections_per_ip=0, sip_handshake_timeout=3.5
    )
    proxy = UsersProxy(config, Services(), secret=b"s", relay_sets=lambda _: None)
    assert proxy.node.layer.limits == ConnectionLimits(100, 0, 3.5)


def test_retransmission_gets_the_same_to_tag() -> None:
    first, _ = answer(request())
    second, _ = answer(request())
    assert first.to_tag == second.to_tag


def test_stream_response_goes_back_over_the_connection() -> None:
    data = request(via="SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK-abc")
    response, reply = answer(data, Kind.TCP)
    assert response.status == 200
    assert reply.destination.connection == 7


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("FOO", 501),
        ("INVITE", 405),  # to the proxy itself (no user part)
        ("SUBSCRIBE", 405),
        ("MESSAGE", 405),
        ("CANCEL", 481),  # matches no transaction
        ("BYE", 481),
        ("PRACK", 481),
    ],
)
def test_methods_not_served(method: str, status: int) -> None:
    response, _ = answer(request(method))
    assert response.status == status
    if status == 405:
        assert response.headers.get_all("Allow") == ["OPTIONS", "REGISTER"]


def test_ack_is_never_answered() -> None:
    assert Endpoint(Config()).receive(request("ACK"), origin(), 0.0) == []


def test_in_dialog_request_matching_no_dialog_gets_481() -> None:
    response, _ = answer(request("INVITE", to_tag=";tag=zz"))
    assert response.status == 481


def test_unsupported_require_gets_420_with_unsupported() -> None:
    response, _ = answer(request(extra="Require: foo, 100rel\r\n"))
    assert response.status == 420
    assert response.headers.get_all("Unsupported") == ["foo", "100rel"]


def test_options_lists_the_option_tags_really_supported() -> None:
    # the registrar's path and outbound; never 100rel, timer, replaces or gruu
    response, _ = answer(request())
    assert response.headers.get_all("Supported") == ["path", "outbound"]
    assert response.headers.get_all("Supported") == list(REGISTRAR_SUPPORTED)


@pytest.mark.parametrize("tags", ["path", "outbound", "Path, OUTBOUND"])
def test_require_of_a_supported_tag_is_served(tags: str) -> None:
    response, _ = answer(request(extra=f"Require: {tags}\r\n"))
    assert response.status == 200


@pytest.mark.parametrize("tag", ["100rel", "timer", "replaces", "gruu"])
def test_require_of_an_unimplemented_extension_gets_420(tag: str) -> None:
    response, _ = answer(request(extra=f"Require: path, {tag}\r\n"))
    assert response.status == 420
    assert response.headers.get_all("Unsupported") == [tag]


async def test_register_requiring_path_reaches_the_registrar() -> None:
    # not refused with 420 by the proxy: the registrar answers (404: no such domain here;
    # test_proxy_registrar.py registers with Require: path, outbound)
    endpoint = Endpoint(Config())
    assert (
        endpoint.receive(request("REGISTER", extra="Require: path, outbound\r\n"), origin(), 0.0)
        == []
    )
    await asyncio.gather(*endpoint.proxy._tasks)
    (reply,) = endpoint._replies()
    response = parse_message(reply.data)
    assert isinstance(response, Response) and response.status == 404


def test_empty_supported_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(role, "SUPPORTED", ())
    response, _ = answer(request())
    assert response.status == 200
    assert "Supported" not in response.headers
    assert capabilities(("OPTIONS",), ()) == {
        "Allow": "OPTIONS",
        "Accept": "application/sdp",
        "Accept-Encoding": "identity",
        "Accept-Language": "en",
    }


def test_bad_uri_scheme_gets_416() -> None:
    response, _ = answer(request(uri="http://127.0.0.1/"))
    assert response.status == 416


def test_max_forwards_zero_on_a_request_to_forward_gets_483() -> None:
    data = request("INVITE", "sip:bob@example.com").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    response, _ = answer(data)
    assert response.status == 483
    # OPTIONS with Max-Forwards 0 is answered by the element itself (RFC 3261 11).
    options = request("OPTIONS", "sip:bob@example.com").replace(
        b"Max-Forwards: 70", b"Max-Forwards: 0"
    )
    assert answer(options)[0].status == 200


def test_responses_are_dropped() -> None:
    stray = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n"
    )
    assert Endpoint(Config()).receive(stray, origin(), 0.0) == []


def test_malformed_but_respondable_gets_400_to_the_source() -> None:
    data = request().replace(b"SIP/2.0\r\n", b"SIP/2.0  \r\n", 1)  # malformed request line
    endpoint = Endpoint(Config())
    (reply,) = endpoint.receive(request(cseq_method="INVITE"), origin(), 0.0)
    response = parse_message(reply.data)
    assert isinstance(response, Response) and response.status == 400
    assert reply.destination.address == origin().remote
    # a message nobody can answer is dropped
    assert endpoint.receive(b"\x00\xff garbage", origin(), 0.0) == []
    assert endpoint.receive(data[:20], origin(), 0.0) == []


def test_salvage_from_a_header_block_echoes_the_needed_headers() -> None:
    head = request().split(b"\r\n\r\n")[0].replace(b"Content-Length: 0\r\n", b"")
    reply = salvage_response(head, 400, "Missing Content-Length", origin(Kind.TCP))
    assert reply is not None and reply.destination.connection == 7
    response = parse_message(reply.data)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (400, "Missing Content-Length")
    assert response.cseq.method == "OPTIONS"
    ack = request("ACK").split(b"\r\n\r\n")[0]
    assert salvage_response(ack, 400, "x", origin()) is None
    assert salvage_response(b"SIP/2.0 200 OK\r\nVia: x", 400, "x", origin()) is None


# -- server transactions (ivoz.sip.transaction), fake clock ----------------------------


def status(reply: Reply) -> int:
    response = parse_message(reply.data)
    assert isinstance(response, Response)
    return response.status


def test_retransmitted_options_gets_the_same_response_without_a_new_decision() -> None:
    endpoint = Endpoint(Config())
    decisions = []
    decide = endpoint.proxy.local_answer

    def counting(req: object) -> object:
        decisions.append(req)
        return decide(req)  # type: ignore[arg-type]

    endpoint.proxy.local_answer = counting  # type: ignore[method-assign,assignment]
    (first,) = endpoint.receive(request(), origin(), 0.0)
    (again,) = endpoint.receive(request(), origin(), 0.3)
    assert first.data == again.data
    assert len(decisions) == 1


def test_invite_405_is_retransmitted_over_udp_until_acked() -> None:
    endpoint = Endpoint(Config())
    (reply,) = endpoint.receive(request("INVITE"), origin(), 0.0)
    assert status(reply) == 405
    # RFC 3261 17.2.1: Timer G resends the final response over UDP (T1 = 0.5 s).
    deadline = endpoint.next_timer()
    assert deadline is not None and deadline <= 0.5
    resent = endpoint.on_timer(deadline)
    assert [r.data for r in resent] == [reply.data]
    # the ACK (same branch, To tag from our response) is absorbed: no more resends
    to_tag = parse_message(reply.data).to_tag  # type: ignore[union-attr]
    ack = request("ACK", to_tag=f";tag={to_tag}")
    assert endpoint.receive(ack, origin(), 0.6) == []
    later = endpoint.next_timer()
    assert later is None or endpoint.on_timer(later) == []


def test_cancel_of_a_known_invite_gets_200() -> None:
    endpoint = Endpoint(Config())
    endpoint.receive(request("INVITE"), origin(), 0.0)
    (reply,) = endpoint.receive(request("CANCEL"), origin(), 0.1)
    assert status(reply) == 200


def test_transactions_are_forgotten_after_timer_j() -> None:
    endpoint = Endpoint(Config())
    endpoint.receive(request(), origin(), 0.0)
    assert len(endpoint.transactions) == 1
    now = 0.0
    while (deadline := endpoint.next_timer()) is not None:
        now = deadline
        endpoint.on_timer(now)
    assert len(endpoint.transactions) == 0
    assert now >= 32.0  # RFC 3261 17.2.2: Timer J is 64*T1 for UDP
    assert endpoint._sent_by == {}


def test_over_tcp_the_transaction_ends_at_once() -> None:
    endpoint = Endpoint(Config())
    data = request(via="SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK-tcp")
    (reply,) = endpoint.receive(data, origin(Kind.TCP), 0.0)
    assert status(reply) == 200
    assert len(endpoint.transactions) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_never_raise(data: bytes) -> None:
    endpoint = Endpoint(Config())
    for kind in (Kind.UDP, Kind.TCP):
        for reply in endpoint.receive(data, origin(kind), 0.0):
            assert reply.data.startswith(b"SIP/2.0 ")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_requests_never_raise(data: st.DataObject) -> None:
    message = bytearray(request(data.draw(st.sampled_from(["OPTIONS", "INVITE", "ACK", "FOO"]))))
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(message) - 1))
        message[index] = data.draw(st.integers(0, 255))
    endpoint = Endpoint(Config())
    for reply in endpoint.receive(bytes(message), origin(), 0.0):
        assert isinstance(parse_message(reply.data), Response)
