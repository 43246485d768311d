"""Fakes for the application server's unit tests: a directory, a SIP port, a clock.

``Harness`` wires a B2BUA to them and plays both the users proxy's side of the A-leg
(the caller's INVITE, ACK, BYE...) and the callee side of the B-legs (responses to the
INVITEs the B2BUA sends). Nothing opens a socket; time is a number we move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ivoz.appserver.b2bua import B2BUA
from ivoz.appserver.events import CallEvent
from ivoz.sip import Request, Response, make_response, new_tag, parse_message
from ivoz.sip.dialog import Dialog
from ivoz.transport import Address, Kind, Origin

PROXY = Address(Kind.UDP, "127.0.0.1", 5060)
AS = Address(Kind.UDP, "127.0.0.1", 5062)
PROXY_RR = "<sip:127.0.0.1:5060;lr>"
SDP_A = b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 13000 RTP/AVP 0\r\n"
SDP_B = b"v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 13002 RTP/AVP 0\r\n"


@dataclass(frozen=True)
class Company:
    id: int
    domain: str
    brand_id: int = 1
    name: str = "Acme"


@dataclass(frozen=True)
class Terminal:
    id: int
    company_id: int
    sip_username: str
    user_id: int | None


@dataclass(frozen=True)
class User:
    id: int
    company_id: int
    name: str
    extension_number: str | None
    terminal_id: int | None
    do_not_disturb: bool = False
    call_waiting_limit: int = 0


@dataclass(frozen=True)
class Extension:
    number: str
    route_type: str
    user_id: int | None = None
    number_value: str | None = None


@dataclass(frozen=True)
class Forward:
    kind: str
    target_type: str
    target: str
    no_answer_timeout: int = 10
    enabled: bool = True


@dataclass
class FakeDirectory:
    companies: dict[int, Company] = field(default_factory=dict)
    terminals: dict[int, Terminal] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    extensions: dict[tuple[int, str], Extension] = field(default_factory=dict)
    forward_list: dict[int, list[Forward]] = field(default_factory=dict)

    def company(self, company_id: int) -> Company | None:
        return self.companies.get(company_id)

    def terminal_by_id(self, terminal_id: int) -> Terminal | None:
        return self.terminals.get(terminal_id)

    def user(self, user_id: int) -> User | None:
        return self.users.get(user_id)

    def extension(self, company_id: int, number: str) -> Extension | None:
        return self.extensions.get((company_id, number))

    def forwards(self, user_id: int) -> list[Forward]:
        return self.forward_list.get(user_id, [])

    def add_user(self, company: int, uid: int, name: str, number: str, **kw: object) -> User:
        terminal = Terminal(uid + 100, company, name.lower(), uid)
        user = User(uid, company, name, number, terminal.id, **kw)  # type: ignore[arg-type]
        self.terminals[terminal.id] = terminal
        self.users[uid] = user
        self.extensions[(company, number)] = Extension(number, "user", uid)
        return user

    def set_user(self, uid: int, **kw: object) -> None:
        from dataclasses import replace

        self.users[uid] = replace(self.users[uid], **kw)  # type: ignore[arg-type]


def demo_directory() -> FakeDirectory:
    """Acme (company 1): Alice 1001, Bob 1002, Carol 1003, Dave 1004; Other (company 2):
    Eve 1002. Terminal ids are user id + 100."""
    d = FakeDirectory()
    d.companies[1] = Company(1, "acme.ivoz.test")
    d.companies[2] = Company(2, "other.ivoz.test", name="Other")
    d.add_user(1, 1, "Alice", "1001")
    d.add_user(1, 2, "Bob", "1002")
    d.add_user(1, 3, "Carol", "1003")
    d.add_user(1, 4, "Dave", "1004")
    d.add_user(2, 5, "Eve", "1002")
    d.extensions[(1, "5000")] = Extension("5000", "number", number_value="+34911111111")
    return d


class ServerTxn:
    """What the node gives with a request: the B2BUA answers through it."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.responses: list[Response] = []

    @property
    def final(self) -> Response | None:
        finals = [r for r in self.responses if r.status >= 200]
        return finals[-1] if finals else None

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]


class ClientTxn:
    """A request the B2BUA sent, with its callbacks."""

    def __init__(
        self,
        request: Request,
        destination: Address | int,
        on_response: Callable[[Response], None],
        on_failure: Callable[[int], None] | None,
    ) -> None:
        self.request = request
        self.destination = destination
        self.on_response = on_response
        self.on_failure = on_failure
        self.cancelled = False
        self.to_tag = new_tag()

    def respond(
        self,
        status: int,
        body: bytes = b"",
        *,
        to_tag: str | None = None,
        contact: str | None = "<sip:bob@127.0.0.1:5070>",
        record_route: str | None = PROXY_RR,
    ) -> Response:
        """The callee (through the proxy) answers; the response is fed to the B2BUA."""
        tag = to_tag or self.to_tag
        response = make_response(self.request, status, to_tag=tag if status > 100 else None)
        if 100 < status < 300:
            if record_route:
                response.headers.add("Record-Route", record_route)
            if contact:
                response.headers.add("Contact", contact)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        # through the wire and back, as the node would give it
        parsed = parse_message(response.to_bytes())
        assert isinstance(parsed, Response)
        self.on_response(parsed)
        return parsed


class FakeSip:
    def __init__(self) -> None:
        self.sent: list[ClientTxn] = []
        self.stateless: list[tuple[Request | Response, Address | int]] = []
        self.cancels: list[ClientTxn] = []
        self.responded: list[tuple[object, Response]] = []

    def respond(self, transaction: object, response: Response) -> None:
        self.responded.append((transaction, response))
        if isinstance(transaction, ServerTxn):
            transaction.responses.append(response)

    def send_request(
        self,
        request: Request,
        destination: Address | int,
        on_response: Callable[[Response], None],
        on_failure: Callable[[int], None] | None = None,
    ) -> ClientTxn:
        txn = ClientTxn(request, destination, on_response, on_failure)
        self.sent.append(txn)
        return txn

    def send_stateless(self, message: Request | Response, destination: Address | int) -> None:
        self.stateless.append((message, destination))

    def cancel(self, transaction: object) -> None:
        assert isinstance(transaction, ClientTxn)
        transaction.cancelled = True
        self.cancels.append(transaction)

    def local_via(self, transport: str) -> tuple[str, int]:
        return (AS.host, AS.port)

    # views
    def requests(self, method: str) -> list[ClientTxn]:
        return [t for t in self.sent if t.request.method == method]

    def invites(self) -> list[ClientTxn]:
        return self.requests("INVITE")

    def acks(self) -> list[Request]:
        return [m for m, _ in self.stateless if isinstance(m, Request) and m.method == "ACK"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def proxy_origin(host: str = "127.0.0.1") -> Origin:
    return Origin(Kind.UDP, Address(Kind.UDP, host, 5060), AS)


class Harness:
    """A B2BUA on fakes, with the caller's side played by ``invite``/``ack``/``bye``."""

    def __init__(self, directory: FakeDirectory | None = None) -> None:
        self.directory = directory or demo_directory()
        self.sip = FakeSip()
        self.clock = Clock()
        self.b2bua = B2BUA(
            self.sip,
            self.directory,
            proxy=PROXY,
            trusted_hosts=["127.0.0.1"],
            clock=self.clock,
        )
        self.events: list[CallEvent] = []
        self.b2bua.subscribe(self.events.append)
        self.a_invite: Request | None = None
        self.a_txn: ServerTxn | None = None
        self.a_dialog: Dialog | None = None
        self.a_cseq = 1

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        deadline = self.b2bua.next_timer()
        while deadline is not None and deadline <= self.clock.now:
            self.b2bua.on_timer(deadline)
            deadline = self.b2bua.next_timer()

    def receive(self, request: Request, host: str = "127.0.0.1") -> ServerTxn | None:
        parsed = parse_message(request.to_bytes())
        assert isinstance(parsed, Request)
        txn = None if parsed.method == "ACK" else ServerTxn(parsed)
        self.b2bua.request_received(parsed, proxy_origin(host), txn)
        return txn

    def invite(
        self,
        number: str = "1002",
        *,
        company: str | None = "1",
        caller: str | None = "101",
        body: bytes = SDP_A,
        host: str = "127.0.0.1",
        extra: tuple[tuple[str, str], ...] = (),
    ) -> ServerTxn:
        """Alice's INVITE as the proxy relays it (Record-Route, X-Ivoz-* headers)."""
        headers = [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy" + new_tag()),
            ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKalice;rport=5070"),
            ("Max-Forwards", "69"),
            ("Record-Route", PROXY_RR),
            ("From", f'"Alice" <sip:alice@acme.ivoz.test>;tag={new_tag()}'),
            ("To", f"<sip:{number}@acme.ivoz.test>"),
            ("Call-ID", "call-" + new_tag()),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@127.0.0.1:5070>"),
        ]
        if company is not None:
            headers.append(("X-Ivoz-Company", company))
        if caller is not None:
            headers.append(("X-Ivoz-Caller-Terminal", caller))
        headers += list(extra)
        if body:
            headers.append(("Content-Type", "application/sdp"))
        request = Request("INVITE", f"sip:{number}@acme.ivoz.test", headers, body)
        txn = self.receive(request, host)
        assert txn is not None
        self.a_invite = txn.request
        self.a_txn = txn
        return txn

    def _a_dialog(self) -> Dialog:
        if self.a_dialog is None:
            assert self.a_invite is not None and self.a_txn is not None
            ok = self.a_txn.final
            assert ok is not None and ok.status == 200
            parsed = parse_message(ok.to_bytes())
            assert isinstance(parsed, Response)
            self.a_dialog = Dialog.from_uac(self.a_invite, parsed, tls=False)
        return self.a_dialog

    def a_request(
        self, method: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
    ) -> ServerTxn | None:
        """The caller sends an in-dialog request (through the proxy)."""
        from ivoz.sip import Via

        dialog = self._a_dialog()
        assert self.a_invite is not None
        seq = self.a_invite.cseq.seq if method == "ACK" else None
        extra = list(headers)
        if body and not any(n.lower() == "content-type" for n, _ in extra):
            extra.append(("Content-Type", "application/sdp"))
        request = dialog.create_request(
            method, via=Via("UDP", "127.0.0.1", 5060), cseq=seq, headers=extra, body=body
        )
        return self.receive(request)

    def ack(self, body: bytes = b"") -> None:
        self.a_request("ACK", body)

    def b_dialog(self, txn: ClientTxn) -> Dialog:
        """The callee's view of a B-leg: the UAS dialog of its answered INVITE."""
        ok = make_response(txn.request, 200, to_tag=txn.to_tag)
        ok.headers.add("Contact", "<sip:bob@127.0.0.1:5070>")
        return Dialog.from_uas(txn.request, ok, tls=False)
