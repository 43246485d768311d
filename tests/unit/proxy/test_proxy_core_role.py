"""ivoz.proxy.role.UsersProxy policy on a SipNode with a recording layer (no sockets).

Digest 407 for phones, the X-Ivoz-* trust boundary, the route to the application server
and back to the callee's registered contacts (forking, 480), media offer/answer/delete
through a fake relay set, in-dialog requests by Record-Route.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ivoz.config import Config
from ivoz.proxy.role import CALL_TTL, Call, UsersProxy
from ivoz.sip import Request, Response, parse_message
from ivoz.sip.auth import Challenge
from ivoz.sip.digest import answer_challenge
from ivoz.state.location import Binding, MemoryLocationStore
from ivoz.transport import Address, Kind, Origin
from ivoz.transport.node import SipNode

DOMAIN = "acme.ivoz.test"
PROXY = Address(Kind.UDP, "127.0.0.1", 5060)
AS = Address(Kind.UDP, "127.0.0.1", 5062)
ALICE = Address(Kind.UDP, "127.0.0.1", 40001)
BOB1 = Address(Kind.UDP, "192.0.2.21", 5060)
BOB2 = Address(Kind.UDP, "192.0.2.22", 5070)


@dataclass(frozen=True)
class Company:
    id: int = 1
    domain: str = DOMAIN
    media_relay_set_id: int | None = 7
    application_server_set_id: int | None = 1


@dataclass(frozen=True)
class Terminal:
    id: int
    company_id: int
    sip_username: str
    sip_password: str


@dataclass(frozen=True)
class ServerView:
    id: int = 1
    host: str = "127.0.0.1"
    port: int = 5062
    transport: str = "udp"


class Directory:
    def company_by_domain(self, domain: str) -> Company | None:
        return Company() if domain == DOMAIN else None

    def terminal(self, company_id: int, username: str) -> Terminal | None:
        passwords = {"alice": (10, "alice-pw"), "bob": (11, "bob-pw")}
        if company_id != 1 or username not in passwords:
            return None
        terminal_id, password = passwords[username]
        return Terminal(terminal_id, 1, username, password)

    def application_servers(self, set_id: int | None) -> list[ServerView]:
        return [ServerView()]

    def media_relays(self, set_id: int | None) -> list[object]:
        return []

    def is_application_server(self, host: str) -> bool:
        return False


class Services:
    def __init__(self) -> None:
        self.directory = Directory()
        self.location = MemoryLocationStore()
        self.relay_owners = None


class Relays:
    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []

    async def offer(self, call_id: str, from_tag: str, sdp: bytes, **options: Any) -> Any:
        self.commands.append(("offer", call_id))
        return b"v=0\r\nc=IN IP4 relay\r\n", None

    async def answer(
        self, call_id: str, from_tag: str, to_tag: str, sdp: bytes, **options: Any
    ) -> bytes:
        self.commands.append(("answer", call_id))
        return b"v=0\r\nc=IN IP4 relay-answer\r\n"

    async def delete(self, call_id: str, **options: Any) -> Any:
        self.commands.append(("delete", call_id))
        return {}


class Harness:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address | int]] = []
        self.relays = Relays()
        self.services = Services()
        self.node = SipNode(None, layer=self, clock=lambda: 0.0)  # type: ignore[arg-type]
        self.node.listening[Kind.UDP] = PROXY
        self.proxy = UsersProxy(
            Config(),
            self.services,
            secret=b"secret",
            node=self.node,
            wall_clock=lambda: 1000.0,
            relay_sets=lambda _: self.relays,
        )
        self.node.handler = self.proxy

    def send(self, data: bytes, destination: Address | int, failed: object = None) -> None:
        self.sent.append((data, destination))

    async def receive(self, message: Request | Response, source: Address) -> None:
        origin = Origin(source.transport, source, PROXY)
        self.node.message_received(message.to_bytes(), origin)
        for _ in range(5):
            await asyncio.sleep(0)

    def take(self) -> list[tuple[Request | Response, Address | int]]:
        out = [(parse_message(data), where) for data, where in self.sent]
        self.sent = []
        return out

    def responses(self) -> list[int]:
        return [m.status for m, _ in self.take() if isinstance(m, Response)]


def invite(
    ruri: str = f"sip:1002@{DOMAIN}",
    *,
    source: Address = ALICE,
    user: str = "alice",
    extra: list[tuple[str, str]] | None = None,
    branch: str = "z9hG4bK-a1",
) -> Request:
    headers = [
        ("Via", f"SIP/2.0/UDP {source.host}:{source.port};rport;branch={branch}"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{user}@{DOMAIN}>;tag=from-a"),
        ("To", f"<{ruri}>"),
        ("Call-ID", f"call-{branch}"),
        ("CSeq", "1 INVITE"),
        ("Contact", f"<sip:{user}@10.9.9.9:5060>"),
        ("Content-Type", "application/sdp"),
        *(extra or []),
    ]
    return Request("INVITE", ruri, headers, b"v=0\r\nc=IN IP4 10.9.9.9\r\n")


def authorised(request: Request, challenge_text: str, password: str = "alice-pw") -> Request:
    challenge = Challenge.parse(challenge_text)
    credentials = answer_challenge(
        challenge,
        method="INVITE",
        uri=request.request_uri,
        username="alice",
        password=password,
    )
    request.headers.set("Via", (request.headers.get("Via") or "").replace("a1", "a2"))
    request.headers.set("CSeq", "2 INVITE")
    request.headers.add("Proxy-Authorization", str(credentials))
    return request


async def challenged(h: Harness) -> str:
    await h.receive(invite(), ALICE)
    ((response, where),) = [(m, w) for m, w in h.take() if isinstance(m, Response)][-1:]
    assert isinstance(response, Response) and response.status == 407
    assert where == ALICE
    value = response.headers.get("Proxy-Authenticate")
    assert value is not None and f'realm="{DOMAIN}"' in value
    return value


async def test_invite_from_a_phone_is_challenged_then_sent_to_the_application_server() -> None:
    h = Harness()
    challenge = await challenged(h)
    forged = [("X-Ivoz-Callee-Terminal", "99"), ("X-Ivoz-Company", "2")]
    await h.receive(authorised(invite(extra=forged), challenge), ALICE)
    out = h.take()
    requests = [(m, w) for m, w in out if isinstance(m, Request)]
    assert len(requests) == 1
    forwarded, where = requests[0]
    assert where == AS
    assert isinstance(forwarded, Request)
    headers = forwarded.headers
    # the trust boundary: forged headers gone, ours added
    assert headers.get_all("X-Ivoz-Company") == ["1"]
    assert headers.get_all("X-Ivoz-Caller-Terminal") == ["10"]
    assert "X-Ivoz-Callee-Terminal" not in headers
    assert "Proxy-Authorization" not in headers  # consumed (RFC 3261 22.3)
    assert forwarded.request_uri == f"sip:1002@{DOMAIN}"
    assert headers.get_all("Record-Route") == ["<sip:127.0.0.1:5060;lr>"]
    # NAT: Contact fixed to the source, SDP through the relay
    assert "127.0.0.1:40001" in (headers.get("Contact") or "")
    assert b"relay" in forwarded.body
    assert h.relays.commands == [("offer", "call-z9hG4bK-a1")]
    assert h.proxy.dispatcher.load(1) == 1


async def test_wrong_password_is_403_and_unknown_domain_403() -> None:
    h = Harness()
    challenge = await challenged(h)
    await h.receive(authorised(invite(), challenge, password="nope"), ALICE)
    assert 403 in h.responses()
    request = invite(branch="z9hG4bK-o3").to_bytes().replace(DOMAIN.encode(), b"other.test")
    h.node.message_received(request, Origin(Kind.UDP, ALICE, PROXY))
    assert 403 in h.responses()


async def test_callee_header_from_a_phone_is_not_trusted() -> None:
    h = Harness()
    # from a phone's address: treated as a phone call, so it must authenticate
    await h.receive(invite(extra=[("X-Ivoz-Callee-Terminal", "11")]), ALICE)
    assert h.responses() == [407]


async def test_from_the_application_server_no_binding_is_480() -> None:
    h = Harness()
    request = invite(f"sip:bob@{DOMAIN}", source=AS, extra=[("X-Ivoz-Callee-Terminal", "11")])
    await h.receive(request, AS)
    out = [m for m, _ in h.take() if isinstance(m, Response)]
    assert [m.status for m in out] == [100, 480]
    assert out[1].to_tag  # RFC 3261 8.2.6.2: the proxy's own final response has a To tag


def binding(contact: str, received: Address, q: float = 1.0) -> Binding:
    return Binding(
        aor=f"bob@{DOMAIN}",
        contact=contact,
        expires_at=5000.0,
        received=str(received),
        q=q,
        terminal_id=11,
        company_id=1,
        nat=True,
    )


async def test_from_the_application_server_forks_to_every_binding() -> None:
    h = Harness()
    await h.services.location.save(binding("sip:bob@10.0.0.5:5060", BOB1))
    await h.services.location.save(binding("sip:bob@10.0.0.6:5070", BOB2, 0.5))
    extra = [("X-Ivoz-Callee-Terminal", "11"), ("X-Ivoz-Company", "1")]
    await h.receive(invite(f"sip:bob@{DOMAIN}", source=AS, extra=extra), AS)
    requests = [(m, w) for m, w in h.take() if isinstance(m, Request)]
    assert {w for _, w in requests} == {BOB1, BOB2}
    for request, _ in requests:
        assert isinstance(request, Request)
        names = request.headers.keys()
        assert not [k for k in names if k.startswith("x-ivoz-")]
        assert request.request_uri.startswith("sip:bob@10.0.0.")
        assert request.headers.get_all("Record-Route") == ["<sip:127.0.0.1:5060;lr>"]
    assert h.relays.commands == [("offer", "call-z9hG4bK-a1")]
    # Bob's first phone answers with SDP: ng answer, and the 200 goes to the AS
    first, _ = requests[0]
    assert isinstance(first, Request)
    ok = (
        "SIP/2.0 200 OK\r\n"
        + "".join(f"Via: {v}\r\n" for v in first.headers.get_all("Via"))
        + f"From: {first.headers.get('From')}\r\nTo: {first.headers.get('To')};tag=bob\r\n"
        f"Call-ID: {first.call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@10.0.0.5:5060>\r\n"
        "Content-Type: application/sdp\r\n\r\nv=0\r\n"
    ).encode()
    h.node.message_received(ok, Origin(Kind.UDP, BOB1, PROXY))
    for _ in range(10):
        await asyncio.sleep(0)
    out = h.take()
    answered = [m for m, w in out if isinstance(m, Response) and m.status == 200]
    assert answered and b"relay-answer" in answered[0].body
    assert ("answer", "call-z9hG4bK-a1") in h.relays.commands
    # the other branch is cancelled (RFC 3261 16.7 step 10) once it rang
    assert all(w == AS for m, w in out if isinstance(m, Response))


async def test_in_dialog_bye_follows_our_route_and_frees_the_relay() -> None:
    h = Harness()
    h.proxy.calls["call-bye"] = Call(7, True)
    bye = Request(
        "BYE",
        "sip:bob@192.0.2.21:5060",
        [
            ("Via", f"SIP/2.0/UDP {AS.host}:{AS.port};branch=z9hG4bK-bye"),
            ("Route", "<sip:127.0.0.1:5060;lr>"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:1001@{DOMAIN}>;tag=x"),
            ("To", f"<sip:bob@{DOMAIN}>;tag=bob"),
            ("Call-ID", "call-bye"),
            ("CSeq", "2 BYE"),
        ],
    )
    await h.receive(bye, AS)
    requests = [(m, w) for m, w in h.take() if isinstance(m, Request)]
    ((forwarded, where),) = requests
    assert where == BOB1
    assert isinstance(forwarded, Request) and "Route" not in forwarded.headers
    assert ("delete", "call-bye") in h.relays.commands


async def test_in_dialog_request_without_our_route_gets_481() -> None:
    h = Harness()
    request = invite(extra=[])
    request.headers.set("To", f"<sip:1002@{DOMAIN}>;tag=zz")
    await h.receive(request, ALICE)
    assert h.responses() == [481]


async def test_options_to_the_proxy_and_register_is_served() -> None:
    h = Harness()
    options = Request(
        "OPTIONS",
        "sip:127.0.0.1:5060",
        [
            ("Via", f"SIP/2.0/UDP {ALICE.host}:{ALICE.port};branch=z9hG4bK-o"),
            ("Max-Forwards", "70"),
            ("From", "<sip:x@127.0.0.1>;tag=o"),
            ("To", "<sip:127.0.0.1:5060>"),
            ("Call-ID", "o1"),
            ("CSeq", "1 OPTIONS"),
        ],
    )
    await h.receive(options, ALICE)
    assert h.responses() == [200]
    register = Request(
        "REGISTER",
        f"sip:{DOMAIN}",
        [
            ("Via", f"SIP/2.0/UDP {ALICE.host}:{ALICE.port};branch=z9hG4bK-r"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@{DOMAIN}>;tag=r"),
            ("To", f"<sip:alice@{DOMAIN}>"),
            ("Call-ID", "r1"),
            ("CSeq", "1 REGISTER"),
            ("Contact", "<sip:alice@127.0.0.1:40001>"),
        ],
    )
    await h.receive(register, ALICE)
    assert h.responses() == [401]  # the registrar's digest challenge


def response_to(request: Request, status: int, to_tag: str, body: bytes = b"") -> bytes:
    vias = "".join(f"Via: {v}\r\n" for v in request.headers.get_all("Via"))
    content_type = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"SIP/2.0 {status} X\r\n{vias}From: {request.headers.get('From')}\r\n"
        f"To: {request.headers.get('To')};tag={to_tag}\r\nCall-ID: {request.call_id}\r\n"
        f"CSeq: 1 INVITE\r\nContact: <sip:bob@10.0.0.5:5060>\r\n{content_type}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def test_late_offer_is_anchored_on_the_2xx_and_answered_in_the_ack() -> None:
    h = Harness()
    await h.services.location.save(binding("sip:bob@10.0.0.5:5060", BOB1))
    request = invite(f"sip:bob@{DOMAIN}", source=AS, extra=[("X-Ivoz-Callee-Terminal", "11")])
    request.body = b""
    request.headers.remove("Content-Type")
    await h.receive(request, AS)
    assert h.relays.commands == []  # nothing to offer yet
    ((forwarded, _),) = [(m, w) for m, w in h.take() if isinstance(m, Request)]
    assert isinstance(forwarded, Request)
    ok = response_to(forwarded, 200, "bob", b"v=0\r\nc=IN IP4 10.0.0.5\r\n")
    for _ in range(2):  # the 2xx and a retransmission of it
        h.node.message_received(ok, Origin(Kind.UDP, BOB1, PROXY))
        for _ in range(10):
            await asyncio.sleep(0)
    bodies = [m.body for m, _ in h.take() if isinstance(m, Response) and m.status == 200]
    assert bodies == [b"v=0\r\nc=IN IP4 relay\r\n"] * 2
    assert h.relays.commands == [("offer", "call-z9hG4bK-a1")]  # once, not per retransmission
    ack = Request(
        "ACK",
        "sip:bob@127.0.0.1:" + str(BOB1.port),
        [
            ("Via", f"SIP/2.0/UDP {AS.host}:{AS.port};branch=z9hG4bK-ack"),
            ("Route", "<sip:127.0.0.1:5060;lr>"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@{DOMAIN}>;tag=from-a"),
            ("To", f"<sip:bob@{DOMAIN}>;tag=bob"),
            ("Call-ID", "call-z9hG4bK-a1"),
            ("CSeq", "1 ACK"),
            ("Content-Type", "application/sdp"),
        ],
        b"v=0\r\nc=IN IP4 relay-a\r\n",
    )
    await h.receive(ack, AS)
    ((sent, _),) = [(m, w) for m, w in h.take() if isinstance(m, Request)]
    assert isinstance(sent, Request) and sent.method == "ACK"
    assert sent.body == b"v=0\r\nc=IN IP4 relay-answer\r\n"
    assert h.relays.commands[-1] == ("answer", "call-z9hG4bK-a1")


def test_calls_nobody_ended_are_forgotten_after_their_ttl() -> None:
    h = Harness()
    h.proxy.calls["old"] = Call(1, True, started=0.0)
    h.proxy.calls["new"] = Call(1, True, started=CALL_TTL)
    h.proxy.dispatcher.call_started(1, "old")
    h.proxy._forget_stale_calls(CALL_TTL + 1.0)
    assert list(h.proxy.calls) == ["new"]
    assert h.proxy.dispatcher.load(1) == 0


async def test_a_failing_task_still_answers_500() -> None:
    h = Harness()

    async def broken(*args: object) -> Response:
        raise RuntimeError("store down")

    h.proxy.registrar.handle = broken  # type: ignore[method-assign,assignment]
    register = Request(
        "REGISTER",
        f"sip:{DOMAIN}",
        [
            ("Via", f"SIP/2.0/UDP {ALICE.host}:{ALICE.port};branch=z9hG4bK-r5"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@{DOMAIN}>;tag=r"),
            ("To", f"<sip:alice@{DOMAIN}>"),
            ("Call-ID", "r5"),
            ("CSeq", "1 REGISTER"),
        ],
    )
    await h.receive(register, ALICE)
    assert h.responses() == [500]


async def test_a_websocket_phone_is_reached_over_its_registration_connection() -> None:
    h = Harness()
    ws = Address(Kind.WS, "127.0.0.1", 51000)
    h.node.listening[Kind.WS] = Address(Kind.WS, "127.0.0.1", 8080)
    h.origin = lambda connection: Origin(Kind.WS, ws, PROXY, connection)  # type: ignore[attr-defined]
    await h.services.location.save(
        Binding(
            aor=f"bob@{DOMAIN}",
            contact="sip:x1@abc.invalid;transport=ws",
            expires_at=5000.0,
            received=str(ws),
            connection_id=42,
            transport="WS",
            terminal_id=11,
            company_id=1,
            nat=True,
        )
    )
    request = invite(f"sip:bob@{DOMAIN}", source=AS, extra=[("X-Ivoz-Callee-Terminal", "11")])
    await h.receive(request, AS)
    ((forwarded, where),) = [(m, w) for m, w in h.take() if isinstance(m, Request)]
    assert where == 42  # the connection the phone registered on (RFC 5626 5.3, RFC 7118)
    assert isinstance(forwarded, Request)
    assert forwarded.via.transport == "WS"
    # UDP in from the application server, WS out to the phone: double Record-Route
    assert forwarded.headers.get_all("Record-Route") == [
        "<sip:127.0.0.1:8080;transport=ws;lr;r2=on>",
        "<sip:127.0.0.1:5060;lr;r2=on>",
    ]
