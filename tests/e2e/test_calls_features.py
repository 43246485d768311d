"""Routing features of the application server with real phones, verified by what rings.

The last test changes Bob's configuration through the REST API (client level) while the
platform runs: DND on, an unconditional forward created, then deleted; each change
applies to the next call.

The module's platform is seeded before it starts (users, extensions, forwards written to
its database; the directory loads them at start):

| user  | ext  | configuration                                   |
|-------|------|-------------------------------------------------|
| carol | 1003 | forward on busy to 1004                         |
| dave  | 1004 | the forward target                              |
| erin  | 1005 | do not disturb                                  |
| frank | 1006 | forward on no answer after 2 s to 1004          |
| grace | 1007 | forward when not registered to 1004 (never registers) |
| henry | 1008 | nothing (never registers)                       |
| ivan  | 1010 | forward unconditionally to 1004                 |
| judy  | 1011 | call waiting limit 1                            |
| kate  | 1012 | a second caller                                 |
| leo   | 1013 | forward unconditionally to an external number   |

and a second client, Globex, with ``yuri`` on extension 1002 (the same number as Acme's
Bob) and ``zed`` on 1009 (a number Acme does not have): a terminal of Acme reaches Bob
on 1002, never Yuri, and never Zed on 1009.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from ivoz.domain import models as m
from support.ivozrun import (
    DOMAIN,
    Platform,
    add_company,
    add_user,
    company,
    demo_user,
    start_platform,
)
from support.phones import ALICE_HZ, BOB_HZ, Baresip, BaresipError, assert_hears

pytestmark = pytest.mark.slow

OTHER_DOMAIN = "globex.ivoz.test"
NO_ANSWER_SECONDS = 2


def _forward(
    session: Session,
    user: m.User,
    kind: str,
    target: str,
    timeout: int = 10,
    target_type: str = "extension",
) -> None:
    session.add(
        m.CallForwardSetting(
            user_id=user.id,
            company_id=user.company_id,
            brand_id=user.brand_id,
            kind=kind,
            target_type=target_type,
            target=target,
            no_answer_timeout=timeout,
            enabled=True,
        )
    )


def _seed(session: Session) -> None:
    acme = company(session)
    carol = add_user(session, acme, "carol", "1003")
    add_user(session, acme, "dave", "1004")
    add_user(session, acme, "erin", "1005", do_not_disturb=True)
    frank = add_user(session, acme, "frank", "1006")
    grace = add_user(session, acme, "grace", "1007")
    add_user(session, acme, "henry", "1008")
    ivan = add_user(session, acme, "ivan", "1010")
    add_user(session, acme, "judy", "1011", call_waiting_limit=1)
    add_user(session, acme, "kate", "1012")
    leo = add_user(session, acme, "leo", "1013")
    _forward(session, ivan, "unconditional", "1004")
    _forward(session, leo, "unconditional", "+34911234567", target_type="number")
    _forward(session, carol, "busy", "1004")
    _forward(session, frank, "noanswer", "1004", NO_ANSWER_SECONDS)
    _forward(session, grace, "unregistered", "1004")
    globex = add_company(session, "Globex", OTHER_DOMAIN)
    add_user(session, globex, "yuri", "1002")
    add_user(session, globex, "zed", "1009")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with start_platform(tmp_path_factory.mktemp("calls-features"), seed=_seed) as running:
        yield running


class Phones:
    """Registered baresip phones of one test, stopped together."""

    def __init__(self, platform: Platform, workdir: Path, stack: ExitStack) -> None:
        self.platform = platform
        self.workdir = workdir
        self.stack = stack

    def __call__(self, user: str, tone: float = BOB_HZ, domain: str = DOMAIN) -> Baresip:
        phone = Baresip(
            self.workdir,
            f"{user}-{domain.split('.')[0]}",
            tone=tone,
            user=user,
            password=self.platform.secret,
            domain=domain,
            proxy=(self.platform.host, self.platform.sip_port),
        )
        self.stack.enter_context(phone)
        phone.wait_registered(15)
        return phone


@pytest.fixture
def phones(platform: Platform, tmp_path: Path) -> Iterator[Phones]:
    with ExitStack() as stack:
        yield Phones(platform, tmp_path, stack)


def never_rings(*idle: Baresip) -> None:
    for phone in idle:
        assert "CALL_INCOMING" not in phone.events, (phone.name, phone.events)


def answer_and_talk(alice: Baresip, callee: Baresip) -> None:
    """``callee`` rings, answers, audio both ways, Alice hangs up, both legs end."""
    callee.wait_event("CALL_INCOMING", 15, fail=("CALL_CLOSED",))
    callee.accept()
    alice.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
    callee.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
    time.sleep(2.0)
    alice.hangup()
    alice.wait_event("CALL_CLOSED", 10)
    callee.wait_event("CALL_CLOSED", 10)
    assert_hears(callee.recording(), ALICE_HZ, callee.name)
    assert_hears(alice.recording(), BOB_HZ, "alice")


def call_fails(alice: Baresip) -> str:
    """The caller's call ends without being answered; the reason baresip gives."""
    try:
        closed = alice.wait_event("CALL_CLOSED", 20, fail=("CALL_ESTABLISHED",))
    except BaresipError as exc:
        raise AssertionError(f"the call did not fail as it should: {exc}") from exc
    return str(closed.get("param", ""))


def test_forward_on_busy(phones: Phones) -> None:
    alice, carol, dave = phones("alice", ALICE_HZ), phones("carol"), phones("dave")
    alice.dial(f"sip:1003@{DOMAIN}")
    carol.wait_event("CALL_INCOMING", 15, fail=("CALL_CLOSED",))
    carol.hangup()  # rejecting a ringing call: 486 Busy Here
    answer_and_talk(alice, dave)


def test_forward_on_no_answer(phones: Phones) -> None:
    alice, frank, dave = phones("alice", ALICE_HZ), phones("frank"), phones("dave")
    alice.dial(f"sip:1006@{DOMAIN}")
    frank.wait_event("CALL_INCOMING", 15, fail=("CALL_CLOSED",))
    # Nobody answers Frank's phone: after the timeout it stops ringing, Dave's rings.
    answer_and_talk(alice, dave)
    frank.wait_event("CALL_CLOSED", 5)


def test_do_not_disturb(phones: Phones) -> None:
    alice, erin = phones("alice", ALICE_HZ), phones("erin")
    alice.dial(f"sip:1005@{DOMAIN}")
    reason = call_fails(alice)
    never_rings(erin)
    assert reason, "the caller is told why"


def test_forward_when_not_registered(phones: Phones) -> None:
    alice, dave = phones("alice", ALICE_HZ), phones("dave")
    alice.dial(f"sip:1007@{DOMAIN}")
    answer_and_talk(alice, dave)


def test_unregistered_user_without_forward(phones: Phones) -> None:
    alice, dave = phones("alice", ALICE_HZ), phones("dave")
    alice.dial(f"sip:1008@{DOMAIN}")
    reason = call_fails(alice)
    assert "480" in reason or "404" in reason, reason
    never_rings(dave)


def test_extension_never_crosses_clients(phones: Phones) -> None:
    alice, bob = phones("alice", ALICE_HZ), phones("bob")
    yuri = phones("yuri", domain=OTHER_DOMAIN)
    zed = phones("zed", domain=OTHER_DOMAIN)
    # 1009 exists only at Globex: Acme's Alice cannot reach it.
    alice.dial(f"sip:1009@{DOMAIN}")
    call_fails(alice)
    # Even naming Globex's domain in the Request-URI does not leave Acme.
    alice.dial(f"sip:1009@{OTHER_DOMAIN}")
    call_fails(alice)
    # 1002 is Bob at Acme (Yuri has the same number at Globex).
    alice.dial(f"sip:1002@{DOMAIN}")
    answer_and_talk(alice, bob)
    never_rings(yuri, zed)


def test_forward_unconditional(phones: Phones) -> None:
    alice, ivan, dave = phones("alice", ALICE_HZ), phones("ivan"), phones("dave")
    alice.dial(f"sip:1010@{DOMAIN}")
    answer_and_talk(alice, dave)
    never_rings(ivan)


def test_forward_to_an_external_number_fails_clearly(phones: Phones) -> None:
    # No trunks yet: a forward to a number outside the client ends the call with a
    # clear 404/480 and rings nobody.
    alice, leo = phones("alice", ALICE_HZ), phones("leo")
    alice.dial(f"sip:1013@{DOMAIN}")
    reason = call_fails(alice)
    assert "480" in reason or "404" in reason, reason
    never_rings(leo)


def test_call_waiting_limit(phones: Phones) -> None:
    alice, kate, judy = phones("alice", ALICE_HZ), phones("kate"), phones("judy")
    alice.dial(f"sip:1011@{DOMAIN}")
    judy.wait_event("CALL_INCOMING", 15, fail=("CALL_CLOSED",))
    judy.accept()
    alice.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
    judy.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
    # Judy already has one call: a second one is refused as busy, her phone silent.
    kate.dial(f"sip:1011@{DOMAIN}")
    reason = call_fails(kate)
    assert "486" in reason or "Busy" in reason, reason
    assert judy.events.count("CALL_INCOMING") == 1, judy.events
    alice.hangup()
    alice.wait_event("CALL_CLOSED", 10)
    judy.wait_event("CALL_CLOSED", 10)


# -- configuration changed through the REST API while the platform runs ----------------


@contextmanager
def _client_api(platform: Platform) -> Iterator[httpx.Client]:
    """The client level of the API, logged in as Acme's administrator."""
    with httpx.Client(
        base_url=f"{platform.api_url}/api/client",
        headers={"Host": f"acme.localhost:{platform.api_port}"},
        timeout=10,
    ) as client:
        r = client.post("/login", json={"username": "acme", "password": platform.secret})
        assert r.status_code == 200, r.text
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield client


def test_dnd_and_forward_set_through_the_api_apply_to_the_next_call(
    platform: Platform, phones: Phones
) -> None:
    with platform.session() as session:
        bob_id = demo_user(session, "bob").id
    alice, bob, dave = phones("alice", ALICE_HZ), phones("bob"), phones("dave")
    with _client_api(platform) as api:
        r = api.patch(f"/users/{bob_id}", json={"do_not_disturb": True})
        assert r.status_code == 200, r.text
        time.sleep(0.5)  # the change event reaches the SIP roles' directory
        alice.dial(f"sip:1002@{DOMAIN}")
        call_fails(alice)
        never_rings(bob)

        r = api.patch(f"/users/{bob_id}", json={"do_not_disturb": False})
        assert r.status_code == 200, r.text
        forward = {"user_id": bob_id, "kind": "unconditional", "target_type": "extension"}
        r = api.post("/call-forward-settings", json={**forward, "target": "1004"})
        assert r.status_code == 201, r.text
        forward_id = r.json()["id"]
        time.sleep(0.5)
        alice.drain()
        alice.dial(f"sip:1002@{DOMAIN}")
        answer_and_talk(alice, dave)
        never_rings(bob)

        r = api.delete(f"/call-forward-settings/{forward_id}")
        assert r.status_code == 204, r.text
        time.sleep(1.1)  # the change event, and baresip names recordings by the second
        alice.drain()
        alice.dial(f"sip:1002@{DOMAIN}")
        answer_and_talk(alice, bob)
