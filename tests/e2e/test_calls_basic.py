"""Alice calls Bob by extension through ``ivoz run``: real phones, real audio, DTMF, BYE.

One platform serves the module. Each test starts its own phones: Alice (baresip,
playing 440 Hz) registers, Bob (baresip or linphone, playing 880 Hz) registers, Alice
dials 1002. The call goes phone -> users proxy -> application server -> users proxy ->
phone, its media through the relay. Bob's phone rings, Alice hears ringing, Bob
answers; each side's recording must hold the other's tone; an RFC 4733 digit from Alice
arrives at Bob; whichever side hangs up, both legs end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ivozrun import DOMAIN, Platform, start_platform
from support.phones import ALICE_HZ, BOB_HZ, Baresip, Linphone, assert_hears

pytestmark = pytest.mark.slow

TALK_SECONDS = 2.0  # of audio before the DTMF and the hang-up


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with start_platform(tmp_path_factory.mktemp("calls-basic")) as running:
        yield running


def baresip_phone(
    platform: Platform, workdir: Path, user: str, tone: float, transport: str = "udp"
) -> Baresip:
    return Baresip(
        workdir,
        user,
        tone=tone,
        user=user,
        password=platform.secret,
        domain=DOMAIN,
        proxy=(platform.host, platform.port(transport)),
        transport=transport,
    )


@pytest.mark.parametrize(
    ("alice_transport", "bob_transport", "who_hangs_up"),
    [("udp", "udp", "alice"), ("tcp", "udp", "bob"), ("udp", "tls", "alice")],
    ids=["udp-udp-alice-hangs-up", "tcp-udp-bob-hangs-up", "udp-tls-alice-hangs-up"],
)
def test_baresip_calls_baresip(
    platform: Platform,
    tmp_path: Path,
    alice_transport: str,
    bob_transport: str,
    who_hangs_up: str,
) -> None:
    alice = baresip_phone(platform, tmp_path, "alice", ALICE_HZ, alice_transport)
    bob = baresip_phone(platform, tmp_path, "bob", BOB_HZ, bob_transport)
    with alice, bob:
        alice.wait_registered(15)
        bob.wait_registered(15)
        alice.dial(f"sip:1002@{DOMAIN}")
        incoming = bob.wait_event("CALL_INCOMING", 10, fail=("CALL_CLOSED",))
        # The callee sees the caller's identity, not the application server's.
        assert "alice" in str(incoming.get("peeruri", "")), incoming
        alice.wait_event("CALL_RINGING", 10, fail=("CALL_CLOSED",))
        bob.accept()
        alice.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
        bob.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
        # Both legs (phone-proxy-application server, and back) are anchored on the relay.
        assert len(platform.relay_calls()) == 2, platform.relay_calls()
        packets = platform.relayed_packets()
        time.sleep(TALK_SECONDS)
        assert platform.relayed_packets() > packets + 50 * TALK_SECONDS, "RTP not relayed"
        alice.send_dtmf("5")
        dtmf = bob.wait_event("CALL_DTMF_START", 10, fail=("CALL_CLOSED",))
        assert dtmf.get("param") == "5", dtmf
        time.sleep(0.5)
        (alice if who_hangs_up == "alice" else bob).hangup()
        alice.wait_event("CALL_CLOSED", 10)
        bob.wait_event("CALL_CLOSED", 10)
    wait_relay_empty(platform)
    assert_hears(alice.recording(), BOB_HZ, "alice")
    assert_hears(bob.recording(), ALICE_HZ, "bob")


def wait_relay_empty(platform: Platform, timeout: float = 5.0) -> None:
    """Both legs' relay sessions are deleted once the call ended."""
    deadline = time.monotonic() + timeout
    while platform.relay_calls():
        assert time.monotonic() < deadline, f"relay sessions left: {platform.relay_calls()}"
        time.sleep(0.2)


def test_baresip_calls_linphone(platform: Platform, tmp_path: Path) -> None:
    alice = baresip_phone(platform, tmp_path, "alice", ALICE_HZ, "udp")
    bob = Linphone(tmp_path, "bob", tone=BOB_HZ)
    with alice, bob:
        bob.register(
            f"sip:bob@{DOMAIN}", f"sip:{platform.host}:{platform.sip_port}", platform.secret
        )
        alice.wait_registered(15)
        bob.wait_registered(15)
        alice.dial(f"sip:1002@{DOMAIN}")
        bob.wait_incoming(10)
        alice.wait_event("CALL_RINGING", 10, fail=("CALL_CLOSED",))
        bob.answer()
        alice.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
        bob.wait_connected(10)
        time.sleep(TALK_SECONDS)
        alice.send_dtmf("7")
        assert bob.wait_dtmf(10) == "7"
        bob.hangup()
        alice.wait_event("CALL_CLOSED", 10)
        bob.wait_ended(10)
    wait_relay_empty(platform)
    assert_hears(alice.recording(), BOB_HZ, "alice")
    assert_hears(bob.record, ALICE_HZ, "bob (linphone)")


def test_linphone_calls_baresip_over_tcp(platform: Platform, tmp_path: Path) -> None:
    proxy = f"sip:{platform.host}:{platform.sip_port};transport=tcp"
    account = (f"sip:alice@{DOMAIN}", proxy, platform.secret)
    alice = Linphone(tmp_path, "alice", tone=ALICE_HZ, account=account)
    bob = baresip_phone(platform, tmp_path, "bob", BOB_HZ, "udp")
    with alice, bob:
        alice.wait_registered(15)
        bob.wait_registered(15)
        alice.call(f"sip:1002@{DOMAIN}")
        bob.wait_event("CALL_INCOMING", 10, fail=("CALL_CLOSED",))
        bob.accept()
        bob.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
        alice.wait_connected(10)
        time.sleep(TALK_SECONDS)
        alice.send_dtmf("9")
        dtmf = bob.wait_event("CALL_DTMF_START", 10, fail=("CALL_CLOSED",))
        assert dtmf.get("param") == "9", dtmf
        alice.hangup()
        bob.wait_event("CALL_CLOSED", 10)
        alice.wait_ended(10)
    wait_relay_empty(platform)
    assert_hears(alice.record, BOB_HZ, "alice (linphone)")
    assert_hears(bob.recording(), ALICE_HZ, "bob")


def test_caller_gives_up_while_ringing(platform: Platform, tmp_path: Path) -> None:
    """CANCEL crosses proxy and application server: Bob's phone stops ringing."""
    alice = baresip_phone(platform, tmp_path, "alice", ALICE_HZ)
    bob = baresip_phone(platform, tmp_path, "bob", BOB_HZ)
    with alice, bob:
        alice.wait_registered(15)
        bob.wait_registered(15)
        alice.dial(f"sip:1002@{DOMAIN}")
        bob.wait_event("CALL_INCOMING", 10, fail=("CALL_CLOSED",))
        alice.wait_event("CALL_RINGING", 10, fail=("CALL_CLOSED",))
        alice.hangup()
        alice.wait_event("CALL_CLOSED", 10)
        bob.wait_event("CALL_CLOSED", 10, fail=("CALL_ESTABLISHED",))
    wait_relay_empty(platform)


def test_two_phones_of_one_user_ring_in_parallel(platform: Platform, tmp_path: Path) -> None:
    """Bob registered twice (UDP and TCP): both ring, the one that answers wins,
    the other stops ringing."""
    alice = baresip_phone(platform, tmp_path / "a", "alice", ALICE_HZ)
    desk = baresip_phone(platform, tmp_path / "desk", "bob", BOB_HZ, "udp")
    mobile = baresip_phone(platform, tmp_path / "mobile", "bob", BOB_HZ, "tcp")
    with alice, desk, mobile:
        alice.wait_registered(15)
        desk.wait_registered(15)
        mobile.wait_registered(15)
        alice.dial(f"sip:1002@{DOMAIN}")
        desk.wait_event("CALL_INCOMING", 10, fail=("CALL_CLOSED",))
        mobile.wait_event("CALL_INCOMING", 10, fail=("CALL_CLOSED",))
        mobile.accept()
        alice.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
        mobile.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
        desk.wait_event("CALL_CLOSED", 10, fail=("CALL_ESTABLISHED",))
        time.sleep(TALK_SECONDS)
        alice.hangup()
        alice.wait_event("CALL_CLOSED", 10)
        mobile.wait_event("CALL_CLOSED", 10)
    wait_relay_empty(platform)
    assert_hears(alice.recording(), BOB_HZ, "alice")
    assert_hears(mobile.recording(), ALICE_HZ, "bob's second phone")


def test_hold_and_resume_cross_both_legs(platform: Platform, tmp_path: Path) -> None:
    """Alice's re-INVITEs (hold: sendonly, resume: sendrecv) reach Bob through the
    application server and their answers come back; the relay stops and restarts."""
    alice = baresip_phone(platform, tmp_path, "alice", ALICE_HZ)
    bob = baresip_phone(platform, tmp_path, "bob", BOB_HZ)
    with alice, bob:
        alice.wait_registered(15)
        bob.wait_registered(15)
        alice.dial(f"sip:1002@{DOMAIN}")
        bob.wait_event("CALL_INCOMING", 10, fail=("CALL_CLOSED",))
        bob.accept()
        alice.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
        bob.wait_event("CALL_ESTABLISHED", 10, fail=("CALL_CLOSED",))
        time.sleep(1.0)
        alice.drain()
        bob.drain()
        alice.command("hold")
        bob.wait_event("CALL_REMOTE_SDP", 10, fail=("CALL_CLOSED",))  # the offer crossed
        alice.wait_event("CALL_REMOTE_SDP", 10, fail=("CALL_CLOSED",))  # its answer came back
        time.sleep(0.5)
        before = platform.relayed_packets()
        time.sleep(2.0)
        on_hold = platform.relayed_packets() - before
        alice.command("resume")
        bob.wait_event("CALL_REMOTE_SDP", 10, fail=("CALL_CLOSED",))
        alice.wait_event("CALL_REMOTE_SDP", 10, fail=("CALL_CLOSED",))
        time.sleep(0.5)
        before = platform.relayed_packets()
        time.sleep(2.0)
        resumed = platform.relayed_packets() - before
        # 20 ms packets both ways on both legs: about 400 in 2 s when talking.
        assert resumed > 100 and resumed > on_hold, (on_hold, resumed)
        bob.hangup()
        alice.wait_event("CALL_CLOSED", 10)
        bob.wait_event("CALL_CLOSED", 10)
    wait_relay_empty(platform)
