"""The appserver role: the asyncio shell on a fake node, then a call over loopback UDP
with the real SipNode and Directory, a test socket playing the users proxy."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from appserver_fakes import SDP_A, SDP_B, FakeSip, Forward, demo_directory

from ivoz.appserver.role import AppServer, proxy_address, trusted_hosts
from ivoz.config import Config
from ivoz.sip import Request, Response, make_response, new_tag, parse_message
from ivoz.transport import Address, Kind, Origin
from ivoz.transport.layer import ConnectionLimits
from support.tools import free_port


class FakeNode(FakeSip):
    def __init__(self, handler: Any) -> None:
        super().__init__()
        self.handler = handler
        self.listening: list[tuple[Kind, str, int]] = []

    async def listen(self, kind: Kind, host: str, port: int, ssl: Any = None) -> None:
        self.listening.append((kind, host, port))


def invite(number: str, company: int, caller: int) -> Request:
    return Request(
        "INVITE",
        f"sip:{number}@acme.ivoz.test",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{new_tag()}"),
            ("Max-Forwards", "69"),
            ("Record-Route", "<sip:127.0.0.1:5060;lr>"),
            ("From", f"<sip:alice@acme.ivoz.test>;tag={new_tag()}"),
            ("To", f"<sip:{number}@acme.ivoz.test>"),
            ("Call-ID", new_tag()),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@127.0.0.1:5070>"),
            ("X-Ivoz-Company", str(company)),
            ("X-Ivoz-Caller-Terminal", str(caller)),
            ("Content-Type", "application/sdp"),
        ],
        SDP_A,
    )


def fresh_invite(company: int, caller: int, proxy_port: int) -> Request:
    request = invite("1002", company, caller)
    request.headers.set("Via", f"SIP/2.0/UDP 127.0.0.1:{proxy_port};branch=z9hG4bK{new_tag()}")
    request.headers.set("Record-Route", f"<sip:127.0.0.1:{proxy_port};lr>")
    return request


def test_proxy_address_and_trust_from_config() -> None:
    config = Config(sip_host="0.0.0.0", sip_udp_port=5999, sip_advertised_host="192.0.2.1")
    assert proxy_address(config) == Address(Kind.UDP, "127.0.0.1", 5999)
    assert trusted_hosts(config) == {"127.0.0.1", "::1", "192.0.2.1"}
    config = Config(appserver_proxy="192.0.2.5:5070")
    assert proxy_address(config) == Address(Kind.UDP, "192.0.2.5", 5070)
    assert "192.0.2.5" in trusted_hosts(config)
    assert proxy_address(Config(appserver_proxy="[::1]:5070")).host == "::1"
    with pytest.raises(ValueError):
        proxy_address(Config(appserver_proxy="nohost"))


async def test_real_node_gets_the_configured_connection_limits() -> None:
    config = Config(sip_max_connections=50, sip_max_connections_per_ip=5, sip_handshake_timeout=2.0)
    server = AppServer(config, demo_directory())
    assert server.node.layer.limits == ConnectionLimits(50, 5, 2.0)
    await server.close()


async def test_shell_listens_routes_and_arms_the_no_answer_timer() -> None:
    directory = demo_directory()
    directory.forward_list[2] = [Forward("noanswer", "extension", "1003", no_answer_timeout=30)]
    config = Config(appserver_host="127.0.0.1", appserver_port=5999)
    server = AppServer(config, directory, node_factory=FakeNode)
    node = server.node
    assert isinstance(node, FakeNode) and node.handler is server
    await server.listen()
    assert node.listening == [(Kind.UDP, "127.0.0.1", 5999), (Kind.TCP, "127.0.0.1", 5999)]
    origin = Origin(
        Kind.UDP, Address(Kind.UDP, "127.0.0.1", 5060), Address(Kind.UDP, "127.0.0.1", 5999)
    )
    request = parse_message(invite("1002", 1, 101).to_bytes())
    assert isinstance(request, Request)
    server.request_received(request, origin, object())
    (b,) = node.invites()
    assert b.request.request_uri == "sip:bob@acme.ivoz.test"
    # the no-answer timer is armed on the loop at the B2BUA's deadline
    assert server._timer_at is not None and server._timer_at == server.b2bua.next_timer()
    await server.close()
    assert server._timer is None


# -- over loopback with the real node ----------------------------------------------


class Peer:
    """A UDP socket playing the users proxy toward the application server."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.port = port

    def send(self, message: Request | Response, port: int) -> None:
        self.sock.sendto(message.to_bytes(), ("127.0.0.1", port))

    async def expect(self, test: Any, timeout: float = 5.0) -> Request | Response:
        loop = asyncio.get_running_loop()

        async def read() -> Request | Response:
            while True:
                data, _ = await loop.sock_recvfrom(self.sock, 65535)
                message = parse_message(data)
                if test(message):
                    return message

        return await asyncio.wait_for(read(), timeout)

    def close(self) -> None:
        self.sock.close()


def is_request(method: str) -> Any:
    return lambda m: isinstance(m, Request) and m.method == method


def is_response(status: int, call_id: str) -> Any:
    return lambda m: isinstance(m, Response) and m.status == status and m.call_id == call_id


async def test_call_over_loopback_with_sip_node(tmp_path: Path) -> None:
    pytest.importorskip("ivoz.transport.node")
    services_module = pytest.importorskip("ivoz.services")
    from ivoz.appserver.role import serve
    from ivoz.domain.commands import prepare

    proxy_port, as_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    config = Config(
        data_dir=tmp_path,
        sip_udp_port=proxy_port,
        appserver_port=as_port,
        demo_secret="secret",
    )
    await prepare(config, demo=True)
    services = await services_module.Services.create(config)
    directory = services.directory
    company = directory.company_by_domain("acme.ivoz.test")
    alice = directory.terminal(company.id, "alice")
    bob = directory.terminal(company.id, "bob")
    peer = Peer(proxy_port)
    task = asyncio.create_task(serve(config, services))
    try:
        # wait until the application server answers OPTIONS (the proxy's probe)
        for _ in range(50):
            probe = Request(
                "OPTIONS",
                f"sip:127.0.0.1:{as_port}",
                [
                    ("Via", f"SIP/2.0/UDP 127.0.0.1:{proxy_port};branch=z9hG4bK{new_tag()}"),
                    ("From", f"<sip:proxy@127.0.0.1>;tag={new_tag()}"),
                    ("To", f"<sip:127.0.0.1:{as_port}>"),
                    ("Call-ID", "probe-" + new_tag()),
                    ("CSeq", "1 OPTIONS"),
                    ("Max-Forwards", "70"),
                ],
            )
            peer.send(probe, as_port)
            try:
                await peer.expect(is_response(200, probe.call_id), timeout=0.2)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the application server never answered OPTIONS")

        a = invite("1002", company.id, alice.id)
        a.headers.set("Via", f"SIP/2.0/UDP 127.0.0.1:{proxy_port};branch=z9hG4bK{new_tag()}")
        a.headers.set("Record-Route", f"<sip:127.0.0.1:{proxy_port};lr>")
        peer.send(a, as_port)
        b = await peer.expect(is_request("INVITE"))
        assert isinstance(b, Request)
        assert b.request_uri == "sip:bob@acme.ivoz.test"
        assert b.headers.get("X-Ivoz-Callee-Terminal") == str(bob.id)
        assert b.body == SDP_A
        tag = new_tag()
        ringing = make_response(b, 180, to_tag=tag)
        ringing.headers.add("Contact", "<sip:bob@127.0.0.1:5071>")
        peer.send(ringing, as_port)
        await peer.expect(is_response(180, a.call_id))
        ok = make_response(b, 200, to_tag=tag)
        ok.headers.add("Contact", "<sip:bob@127.0.0.1:5071>")
        ok.headers.add("Record-Route", f"<sip:127.0.0.1:{proxy_port};lr>")
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = SDP_B
        peer.send(ok, as_port)
        answer = await peer.expect(is_response(200, a.call_id))
        assert answer.body == SDP_B
        ack_b = await peer.expect(is_request("ACK"))
        assert ack_b.call_id == b.call_id
        # the caller hangs up: BYE on the A dialog, through the "proxy"
        bye = Request(
            "BYE",
            "sip:ivoz-as@127.0.0.1",
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{proxy_port};branch=z9hG4bK{new_tag()}"),
                ("Max-Forwards", "70"),
                ("From", a.headers.get("From")),
                ("To", answer.headers.get("To")),
                ("Call-ID", a.call_id),
                ("CSeq", "2 BYE"),
            ],
        )
        peer.send(bye, as_port)
        await peer.expect(is_response(200, a.call_id))
        bye_b = await peer.expect(is_request("BYE"))
        assert bye_b.call_id == b.call_id
        peer.send(make_response(bye_b, 200), as_port)

        # Bob is busy: 486 on the B-leg (ACKed by the node's transaction), 486 to Alice
        busy_a = fresh_invite(company.id, alice.id, proxy_port)
        peer.send(busy_a, as_port)
        busy_b = await peer.expect(is_request("INVITE"))
        peer.send(make_response(busy_b, 486, to_tag=new_tag()), as_port)
        await peer.expect(lambda m: isinstance(m, Request) and m.method == "ACK")
        await peer.expect(is_response(486, busy_a.call_id))

        # Alice hangs up while Bob's phone rings: CANCEL both ways, 487 to Alice
        ring_a = fresh_invite(company.id, alice.id, proxy_port)
        peer.send(ring_a, as_port)
        ring_b = await peer.expect(is_request("INVITE"))
        peer.send(make_response(ring_b, 180, to_tag=new_tag()), as_port)
        await peer.expect(is_response(180, ring_a.call_id))
        cancel = Request(
            "CANCEL",
            ring_a.request_uri,
            [
                ("Via", ring_a.headers.get("Via")),
                ("Max-Forwards", "70"),
                ("From", ring_a.headers.get("From")),
                ("To", ring_a.headers.get("To")),
                ("Call-ID", ring_a.call_id),
                ("CSeq", "1 CANCEL"),
            ],
        )
        peer.send(cancel, as_port)
        await peer.expect(is_response(487, ring_a.call_id))
        cancel_b = await peer.expect(is_request("CANCEL"))
        assert cancel_b.call_id == ring_b.call_id
        peer.send(make_response(cancel_b, 200), as_port)
        peer.send(make_response(ring_b, 487, to_tag=new_tag()), as_port)

        # Bob forwards to Alice (1001) after 1 s without answer: the asyncio shell's
        # timer fires, the ringing leg is CANCELled and Alice's phone is rung
        from ivoz.domain import models as m

        bob_user = directory.user(bob.user_id)
        async with services.database.sessionmaker() as session, session.begin():
            user_row = await session.get(m.User, bob_user.id)
            session.add(
                m.CallForwardSetting(
                    user_id=bob_user.id,
                    company_id=company.id,
                    brand_id=user_row.brand_id,
                    kind="noanswer",
                    target_type="extension",
                    target="1001",
                    no_answer_timeout=1,
                    enabled=True,
                )
            )
        await directory.reload()
        na_a = fresh_invite(company.id, alice.id, proxy_port)
        peer.send(na_a, as_port)
        na_b = await peer.expect(is_request("INVITE"))
        assert na_b.request_uri == "sip:bob@acme.ivoz.test"
        peer.send(make_response(na_b, 180, to_tag=new_tag()), as_port)
        cancel_na = await peer.expect(
            lambda m: is_request("CANCEL")(m) and m.call_id == na_b.call_id
        )
        peer.send(make_response(cancel_na, 200), as_port)
        forwarded = await peer.expect(is_request("INVITE"))
        assert forwarded.request_uri == "sip:alice@acme.ivoz.test"
        assert (forwarded.headers.get("Diversion") or "").startswith("<sip:1002@")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        peer.close()
        await services.close()
