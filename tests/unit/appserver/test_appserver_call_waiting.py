"""Call waiting limit: a user in as many calls as the limit is busy."""

from __future__ import annotations

from appserver_fakes import SDP_B, Forward, Harness, demo_directory

from ivoz.appserver.features import CallWaitingLimit
from ivoz.appserver.routing import Busy, RouteContext


def test_second_call_to_a_user_with_limit_one_is_busy() -> None:
    directory = demo_directory()
    directory.set_user(2, call_waiting_limit=1)
    h = Harness(directory)
    first = h.invite("1002")
    (b,) = h.sip.invites()
    b.respond(200, SDP_B)
    h.ack()
    assert h.b2bua.active_calls(2) == 1
    second = h.invite("1002", caller="103")
    assert second.final.status == 486
    assert len(h.sip.invites()) == 1
    assert first.final.status == 200


def test_ringing_call_counts_and_ended_call_no_longer() -> None:
    directory = demo_directory()
    directory.set_user(2, call_waiting_limit=1)
    h = Harness(directory)
    h.invite("1002")
    (b,) = h.sip.invites()
    b.respond(180)
    assert h.invite("1002", caller="103").final.status == 486
    b.respond(486)  # the first call fails: Bob is free again
    assert h.b2bua.active_calls(2) == 0
    h.invite("1002", caller="103")
    assert len(h.sip.invites()) == 2


def test_a_user_calling_out_counts_too() -> None:
    directory = demo_directory()
    directory.set_user(1, call_waiting_limit=1)
    h = Harness(directory)
    h.invite("1002")  # Alice (terminal 101) calls Bob
    assert h.b2bua.active_calls(1) == 1
    a = h.invite("1001", caller="103")  # Carol calls Alice
    assert a.final.status == 486


def test_limit_zero_is_unlimited_and_busy_forward_applies() -> None:
    directory = demo_directory()
    h = Harness(directory)
    for caller in ("101", "103", "104"):
        h.invite("1002", caller=caller)
    assert len(h.sip.invites()) == 3
    directory.set_user(2, call_waiting_limit=2)
    directory.forward_list[2] = [Forward("busy", "extension", "1004")]
    h.invite("1002", caller="101")
    assert h.sip.invites()[-1].request.request_uri == "sip:dave@acme.ivoz.test"


def test_plugin_alone() -> None:
    directory = demo_directory()
    directory.set_user(2, call_waiting_limit=2)
    counts = {2: 1}
    ctx = RouteContext(
        company=directory.company(1),
        caller_terminal=None,
        caller_user=None,
        directory=directory,
        active_calls=lambda uid: counts.get(uid, 0),
    )
    feature = CallWaitingLimit()
    assert feature.before_ring(ctx, directory.user(2)) is None
    counts[2] = 2
    assert isinstance(feature.before_ring(ctx, directory.user(2)), Busy)
