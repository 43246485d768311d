"""A phone behind NAT still gets its calls and its audio.

Bob's baresip talks SIP to the platform through a small UDP NAT box (a thread in the
test): everything Bob sends leaves from the box's own "public" socket, and the box
rewrites what a NAT-unaware phone behind a real NAT would carry, i.e. addresses where
nothing answers: the Via sent-by, the Contact and the SDP connection address and port
all name 127.0.0.99 (private, from the platform's point of view). Bob's RTP goes straight to
the relay from his real RTP port, which is not the one his SDP names.

So the platform must answer to the source (rport/received), reach Bob's registration
at the address his REGISTER came from (the box's public socket) rather than at his
Contact, and latch Bob's media on where his RTP comes from. Alice (no NAT) calls Bob,
Bob answers, both hear each other; then Bob calls Alice and that works too.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.ivozrun import DOMAIN, Platform, start_platform
from support.phones import ALICE_HZ, BOB_HZ, Baresip, assert_hears

pytestmark = pytest.mark.slow

FAKE_HOST = "127.0.0.99"  # where Bob's messages claim he is; nothing listens there
FAKE_SIP_PORT = 5999
FAKE_RTP_PORT = 10009  # as many digits as a real one: body lengths stay simple


class NatBox:
    """The phone's only way out: a UDP NAT mapping with a NAT-unaware phone behind it.

    Bob knows the box's inside socket as "the proxy": the box swaps the proxy's address
    for its own in what it passes to Bob (Via, Record-Route), and back in what Bob sends,
    so that Bob's requests, responses and in-dialog requests all leave through the
    box's one outside socket. What Bob sends carries his private view (``masquerade``).
    """

    def __init__(self, proxy: tuple[str, int]) -> None:
        self.proxy = proxy
        self.inside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.inside.bind(("127.0.0.1", 0))  # the phone's outbound proxy
        self.outside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.outside.bind(("127.0.0.1", 0))  # the NAT's public address and port
        self.phone: tuple[str, int] | None = None
        self.requests_in: list[str] = []  # request lines the platform sent to the phone
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def port(self) -> int:
        port: int = self.inside.getsockname()[1]
        return port

    def __enter__(self) -> NatBox:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(2)
        self.inside.close()
        self.outside.close()

    def _swap(self, data: bytes, old: str, new: str) -> bytes:
        head, sep, body = data.partition(b"\r\n\r\n")
        return head.replace(old.encode(), new.encode()) + sep + body

    def _run(self) -> None:
        proxy = f"{self.proxy[0]}:{self.proxy[1]}"
        mine = f"127.0.0.1:{self.port}"
        while not self.stop.is_set():
            ready, _, _ = select.select([self.inside, self.outside], [], [], 0.1)
            for sock in ready:
                try:
                    data, source = sock.recvfrom(65535)
                except OSError:
                    return
                if sock is self.inside:
                    self.phone = source
                    data = masquerade(self._swap(data, mine, proxy))
                    self.outside.sendto(data, self.proxy)
                elif self.phone is not None:
                    first = data.split(b"\r\n", 1)[0].decode(errors="replace")
                    if not first.startswith("SIP/2.0"):
                        self.requests_in.append(first)
                    self.inside.sendto(self._swap(data, proxy, mine), self.phone)


def masquerade(data: bytes) -> bytes:
    """What a NAT-unaware phone behind NAT sends: its private addresses everywhere."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return data  # keep-alive
    lines = head.decode().split("\r\n")
    # A request's top Via is the phone's own; a response's is the proxy's.
    via_done = lines[0].startswith("SIP/2.0")
    for index, line in enumerate(lines):
        name = line.split(":", 1)[0].strip().lower()
        if name in ("via", "v") and not via_done:
            lines[index] = re.sub(
                r"(SIP/2\.0/UDP\s+)[^;\s]+", rf"\g<1>{FAKE_HOST}:{FAKE_SIP_PORT}", line
            )
            via_done = True
        elif name in ("contact", "m"):
            lines[index] = re.sub(
                r"(sips?:(?:[^@>;]*@)?)[^;>\s]+", rf"\g<1>{FAKE_HOST}:{FAKE_SIP_PORT}", line
            )
    if body:
        body = re.sub(rb"c=IN IP4 [0-9.]+", f"c=IN IP4 {FAKE_HOST}".encode(), body)
        body = re.sub(rb"m=audio \d+", f"m=audio {FAKE_RTP_PORT}".encode(), body)
        body = re.sub(rb"a=rtcp:\d+[^\r\n]*", f"a=rtcp:{FAKE_RTP_PORT + 1}".encode(), body)
        lines = [
            f"Content-Length: {len(body)}"
            if line.split(":", 1)[0].strip().lower() in ("content-length", "l")
            else line
            for line in lines
        ]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def registered_contacts(platform: Platform, sip_username: str) -> list[dict[str, Any]]:
    """The registration status API (client level) for one terminal of Acme."""
    host = {"Host": f"acme.localhost:{platform.api_port}"}
    with httpx.Client(base_url=f"{platform.api_url}/api/client", headers=host, timeout=10) as api:
        r = api.post("/login", json={"username": "acme", "password": platform.secret})
        assert r.status_code == 200, r.text
        token = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = api.get("/registrations", params={"per_page": 500}, headers=token)
        assert r.status_code == 200, r.text
    rows = [row for row in r.json() if row["sip_username"] == sip_username]
    return [contact for row in rows for contact in row["contacts"]]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with start_platform(tmp_path_factory.mktemp("calls-nat")) as running:
        yield running


def test_phone_behind_nat_gets_calls_and_audio(platform: Platform, tmp_path: Path) -> None:
    alice = Baresip(
        tmp_path,
        "alice",
        tone=ALICE_HZ,
        user="alice",
        password=platform.secret,
        domain=DOMAIN,
        proxy=(platform.host, platform.sip_port),
    )
    with NatBox((platform.host, platform.sip_port)) as nat:
        bob = Baresip(
            tmp_path,
            "bob",
            tone=BOB_HZ,
            user="bob",
            password=platform.secret,
            domain=DOMAIN,
            proxy=("127.0.0.1", nat.port),
        )
        with alice, bob:
            alice.wait_registered(15)
            bob.wait_registered(15)
            # What the registrar knows: Bob's private Contact, reached at the NAT's side.
            contacts = registered_contacts(platform, "bob")
            assert contacts, "bob is not registered"
            assert any(
                FAKE_HOST in c["contact"]
                and c["nat"]
                and str(c["source"]).endswith(f":{nat.outside.getsockname()[1]}")
                for c in contacts
            ), contacts

            # Alice calls Bob: the INVITE must reach him through the NAT mapping.
            alice.dial(f"sip:1002@{DOMAIN}")
            bob.wait_event("CALL_INCOMING", 10, fail=("CALL_CLOSED",))
            assert any(line.startswith("INVITE ") for line in nat.requests_in), nat.requests_in
            bob.accept()
            alice.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
            bob.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
            time.sleep(3.0)
            alice.hangup()  # the BYE reaches Bob through the NAT too
            bob.wait_event("CALL_CLOSED", 10)
            alice.wait_event("CALL_CLOSED", 10)
            assert_hears(bob.recording(), ALICE_HZ, "bob behind NAT")
            assert_hears(alice.recording(), BOB_HZ, "alice")

            # Bob calls Alice: responses find their way back through the mapping.
            time.sleep(1.1)  # recordings are named by the second
            bob.dial(f"sip:1001@{DOMAIN}")
            alice.wait_event("CALL_INCOMING", 10, fail=("CALL_CLOSED",))
            alice.accept()
            bob.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
            alice.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
            time.sleep(3.0)
            bob.hangup()
            alice.wait_event("CALL_CLOSED", 10)
            bob.wait_event("CALL_CLOSED", 10)
            assert_hears(bob.recording(), ALICE_HZ, "bob behind NAT (calling)")
            assert_hears(alice.recording(), BOB_HZ, "alice (called)")
