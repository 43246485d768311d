"""Registration against ``ivoz run`` with real phones and a raw digest client.

One platform serves the module (demo client Acme on ``acme.ivoz.test`` plus a second
client, Globex, on ``globex.ivoz.test`` whose terminal ``alice`` has another password).
baresip and linphone register over UDP, TCP and TLS with the demo password; a wrong
password gets 401 again and leaves no binding; credentials of one client never register
an AOR of another client's domain, nor of a domain nobody has.
"""

from __future__ import annotations

import random
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ivoz.sip import Request, Response, make_response, parse_message
from ivoz.sip.auth import challenges
from ivoz.sip.digest import answer_challenge
from support.ivozrun import DOMAIN, Platform, add_company, add_user, company, start_platform
from support.phones import ALICE_HZ, BOB_HZ, Baresip, Linphone, WsPhone
from support.tools import free_port, require_tool

pytestmark = pytest.mark.slow

OTHER_DOMAIN = "globex.ivoz.test"
OTHER_PASSWORD = "globex-only-password"


def _seed(session: Session) -> None:
    globex = add_company(session, "Globex", OTHER_DOMAIN)
    add_user(session, globex, "alice", "1001", password=OTHER_PASSWORD)
    add_user(session, company(session), "wendy", "1020")  # the WebSocket phone


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with start_platform(tmp_path_factory.mktemp("register"), seed=_seed) as running:
        yield running


# -- real phones -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_baresip_registers(platform: Platform, transport: str, tmp_path: Path) -> None:
    phone = Baresip(
        tmp_path,
        "alice",
        tone=ALICE_HZ,
        user="alice",
        password=platform.secret,
        domain=DOMAIN,
        proxy=(platform.host, platform.port(transport)),
        transport=transport,
    )
    with phone:
        phone.wait_registered(15)
        # The binding is live: a query REGISTER (no Contact) lists it.
        contacts = RawClient(platform).register("alice", platform.secret, contact=None)
        assert contacts.status == 200, contacts
        # baresip listens for TLS one port above its UDP/TCP port.
        port = phone.sip_port + (1 if transport == "tls" else 0)
        listed = " ".join(contacts.headers.get_all("Contact"))
        assert f"127.0.0.1:{port}" in listed, listed


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_linphone_registers(platform: Platform, transport: str, tmp_path: Path) -> None:
    phone = Linphone(tmp_path, "bob", tone=BOB_HZ)
    proxy = f"sip:{platform.host}:{platform.port(transport)}"
    if transport != "udp":
        proxy += f";transport={transport}"
    with phone:
        phone.register(f"sip:bob@{DOMAIN}", proxy, platform.secret)
        phone.wait_registered(15)
    contacts = RawClient(platform).register("bob", platform.secret, contact=None)
    assert contacts.status == 200, contacts


# -- a raw digest client ---------------------------------------------------------------


class RawClient:
    """REGISTER over UDP from our own socket, answering the digest challenge."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def _exchange(self, sock: socket.socket, request: str) -> Response:
        sock.sendto(request.encode(), (self.platform.host, self.platform.sip_port))
        while True:
            message = parse_message(sock.recv(65535))
            assert isinstance(message, Response)
            if message.status >= 200:
                return message

    def register(
        self,
        user: str,
        password: str,
        *,
        domain: str = DOMAIN,
        contact: str | None = "default",
        auth_user: str | None = None,
    ) -> Response:
        """The final response to the authenticated REGISTER (or to the first, if not 401)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((self.platform.host, 0))
            sock.settimeout(5)
            port = sock.getsockname()[1]
            call_id = f"{random.getrandbits(64):x}@e2e"
            tag = f"{random.getrandbits(32):x}"
            if contact == "default":
                contact = f"<sip:{user}@{self.platform.host}:{port}>;expires=120"

            def request(cseq: int, authorization: str = "") -> str:
                lines = [
                    f"REGISTER sip:{domain} SIP/2.0",
                    f"Via: SIP/2.0/UDP {self.platform.host}:{port};rport;"
                    f"branch=z9hG4bK{random.getrandbits(48):x}",
                    "Max-Forwards: 70",
                    f"From: <sip:{user}@{domain}>;tag={tag}",
                    f"To: <sip:{user}@{domain}>",
                    f"Call-ID: {call_id}",
                    f"CSeq: {cseq} REGISTER",
                ]
                if contact is not None:
                    lines.append(f"Contact: {contact}")
                if authorization:
                    lines.append(f"Authorization: {authorization}")
                return "\r\n".join([*lines, "Content-Length: 0", "", ""])

            first = self._exchange(sock, request(1))
            if first.status != 401:
                return first
            offered = challenges(first)
            md5 = [c for c in offered if (c.algorithm or "MD5").upper() == "MD5"]
            credentials = answer_challenge(
                (md5 or offered)[0],
                method="REGISTER",
                uri=f"sip:{domain}",
                username=auth_user or user,
                password=password,
            )
            return self._exchange(sock, request(2, str(credentials)))


def test_wrong_password_is_401_and_registers_nothing(platform: Platform) -> None:
    client = RawClient(platform)
    marker = f"<sip:alice@127.0.0.9:{random.randrange(20000, 60000)}>;expires=120"
    refused = client.register("alice", "not-the-password", contact=marker)
    assert refused.status == 401, refused
    assert challenges(refused), "a new challenge comes with the refusal"
    listed = client.register("alice", platform.secret, contact=None)
    assert listed.status == 200, listed
    assert "127.0.0.9" not in " ".join(listed.headers.get_all("Contact")), listed


def test_register_for_another_clients_domain_fails(platform: Platform) -> None:
    client = RawClient(platform)
    # Acme's password for alice does not register alice of Globex...
    refused = client.register("alice", platform.secret, domain=OTHER_DOMAIN)
    assert refused.status in (401, 403), refused
    # ...nor an AOR of a domain no client has.
    unknown = client.register("alice", platform.secret, domain="nobody.ivoz.test")
    assert unknown.status in (403, 404), unknown
    # Globex's own password does (the domain is real and the check is per client).
    accepted = client.register("alice", OTHER_PASSWORD, domain=OTHER_DOMAIN)
    assert accepted.status == 200, accepted


# -- SIPp with a wrong password ----------------------------------------------------------

DATA = Path(__file__).parent / "data" / "calls"


def run_sipp(platform: Platform, scenario: str, workdir: Path, keys: dict[str, str]) -> int:
    """One SIPp call of ``scenario`` (exit status 0: every step matched); SIPp's port."""
    program = require_tool("sipp")
    port = free_port()
    callee = keys.get("callee")
    command = [program, f"{platform.host}:{platform.sip_port}", "-sf", str(DATA / scenario)]
    command += ["-i", platform.host, "-p", str(port), "-m", "1", "-nostdin"]
    command += ["-au", keys["user"], "-ap", "not-the-password", "-timeout", "20s"]
    command += ["-mp", str(free_port(socket.SOCK_DGRAM)), "-trace_err", "-trace_msg"]
    # RFC 3261 22.4: the digest uri is the Request-URI (SIPp adds the "sip:").
    command += ["-auth_uri", f"{callee}@{DOMAIN}" if callee else DOMAIN]
    for key, value in {"domain": DOMAIN, **keys}.items():
        command += ["-key", key, value]
    result = subprocess.run(command, cwd=workdir, capture_output=True, timeout=60)
    traces = "".join(p.read_text(errors="replace") for p in workdir.glob("*_messages.log"))
    assert result.returncode == 0, traces[-4000:]
    return port


def test_sipp_register_wrong_password_gets_401_again(platform: Platform, tmp_path: Path) -> None:
    port = run_sipp(platform, "register_wrong_password.xml", tmp_path, {"user": "bob"})
    # Bob has no binding from it: a query lists no contact on SIPp's address.
    listed = RawClient(platform).register("bob", platform.secret, contact=None)
    assert listed.status == 200, listed
    contacts = " ".join(listed.headers.get_all("Contact"))
    assert f"127.0.0.1:{port}" not in contacts, contacts


def test_sipp_invite_wrong_password_is_refused(platform: Platform, tmp_path: Path) -> None:
    run_sipp(platform, "invite_wrong_password.xml", tmp_path, {"user": "alice", "callee": "1002"})


# -- a WebSocket phone -------------------------------------------------------------------


def ws_register(phone: WsPhone, user: str, password: str) -> Response:
    """REGISTER over the phone's WebSocket, answering the digest challenge."""
    call_id = f"{random.getrandbits(64):x}@{phone.host}"
    tag = f"{random.getrandbits(32):x}"

    def request(cseq: int, authorization: str = "") -> str:
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/{phone.transport} {phone.host};branch=z9hG4bK{random.getrandbits(48):x}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{DOMAIN}>;tag={tag}",
            f"To: <sip:{user}@{DOMAIN}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:{user}@{phone.host};transport=ws>;expires=300",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        return "\r\n".join([*lines, "Content-Length: 0", "", ""])

    phone.send(request(1))
    first = parse_message(phone.receive().encode())
    assert isinstance(first, Response) and first.status == 401, first
    credentials = answer_challenge(
        challenges(first)[0],
        method="REGISTER",
        uri=f"sip:{DOMAIN}",
        username=user,
        password=password,
    )
    phone.send(request(2, str(credentials)))
    final = parse_message(phone.receive().encode())
    assert isinstance(final, Response), final
    return final


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_websocket_phone_registers_and_gets_calls_on_its_connection(
    platform: Platform, secure: bool, tmp_path: Path
) -> None:
    """RFC 7118: the phone can only be reached over the connection it registered on."""
    phone = WsPhone(platform.host, platform.wss_port if secure else platform.ws_port, secure=secure)
    alice = Baresip(
        tmp_path,
        "alice",
        tone=ALICE_HZ,
        user="alice",
        password=platform.secret,
        domain=DOMAIN,
        proxy=(platform.host, platform.sip_port),
    )
    try:
        registered = ws_register(phone, "wendy", platform.secret)
        assert registered.status == 200, registered
        with alice:
            alice.wait_registered(15)
            alice.dial(f"sip:1020@{DOMAIN}")
            while True:  # skip keep-alives and whatever else comes first
                message = parse_message(phone.receive(15).encode())
                if isinstance(message, Request) and message.method == "INVITE":
                    break
            assert message.uri.host == phone.host, message.uri
            # Busy: the refusal travels back over the same connection to Alice.
            phone.send(bytes(make_response(message, 486)).decode())
            closed = alice.wait_event("CALL_CLOSED", 15, fail=("CALL_ESTABLISHED",))
            assert "486" in str(closed.get("param", "")), closed
    finally:
        phone.close()
