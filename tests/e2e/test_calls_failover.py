"""Killing an application server: new calls go to the other server of the set.

The platform process runs the users proxy, the relay and the portal; two application
servers run as processes of their own (``ivoz run --role appserver`` on 127.0.0.2 and
127.0.0.3), both in the client's application server set. Calls work with both up; then
one server is killed (SIGKILL, no goodbye) and within a few seconds new calls are
answered again, through the survivor, and keep being answered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ivozrun import DOMAIN, Platform, start_platform
from support.phones import ALICE_HZ, BOB_HZ, Baresip, BaresipError

pytestmark = pytest.mark.slow

RECOVERY_SECONDS = 15.0  # "within a few seconds": OPTIONS probing plus a call's set-up


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with start_platform(
        tmp_path_factory.mktemp("calls-failover"),
        extra_appservers=2,
        roles=("proxy-users", "relay", "portal"),
    ) as running:
        running.start_appserver(0)
        running.start_appserver(1)
        yield running


def phone(platform: Platform, workdir: Path, user: str, tone: float) -> Baresip:
    return Baresip(
        workdir,
        user,
        tone=tone,
        user=user,
        password=platform.secret,
        domain=DOMAIN,
        proxy=(platform.host, platform.sip_port),
        regint=600,
    )


def one_call(alice: Baresip, bob: Baresip, timeout: float = 10.0) -> None:
    """Alice calls 1002, Bob answers, Alice hangs up: raises if any step fails."""
    alice.dial(f"sip:1002@{DOMAIN}")
    bob.wait_event("CALL_INCOMING", timeout, fail=())
    bob.accept()
    alice.wait_event("CALL_ESTABLISHED", timeout, fail=("CALL_CLOSED",))
    bob.wait_event("CALL_ESTABLISHED", timeout)
    alice.hangup()
    alice.wait_event("CALL_CLOSED", timeout)
    bob.wait_event("CALL_CLOSED", timeout)


def test_calls_survive_an_application_server_kill(platform: Platform, tmp_path: Path) -> None:
    with (
        phone(platform, tmp_path, "alice", ALICE_HZ) as alice,
        phone(platform, tmp_path, "bob", BOB_HZ) as bob,
    ):
        alice.wait_registered(15)
        bob.wait_registered(15)
        servers = platform.appservers
        before = [server.cpu_seconds() for server in servers]
        for _ in range(3):
            one_call(alice, bob)
        used = [server.cpu_seconds() - b for server, b in zip(servers, before, strict=True)]
        print(f"application servers' CPU seconds over 3 calls: {used}")

        # Kill the server that did the most of the work so far (SIGKILL, no goodbye).
        victim, survivor = servers if used[0] >= used[1] else servers[::-1]
        victim.kill()
        assert survivor.running

        # New calls are answered again within a few seconds...
        killed_at = time.monotonic()
        deadline = killed_at + RECOVERY_SECONDS
        failures = []
        while True:
            try:
                one_call(alice, bob, timeout=8.0)
                break
            except BaresipError as exc:
                failures.append(str(exc).splitlines()[0])
                if time.monotonic() > deadline:
                    raise AssertionError(f"no call got through: {failures}") from exc
                # Clear what the failed attempt left (a ringing Bob, a pending call).
                alice.hangup()
                bob.hangup()
                time.sleep(1.0)
                alice.drain()
                bob.drain()
        print(
            f"first call answered {time.monotonic() - killed_at:.1f} s after the kill: {failures}"
        )
        # ...and keep being answered, every one of them.
        for _ in range(3):
            one_call(alice, bob)
        assert survivor.running
