"""Call forwarding through the B2BUA: unconditional, busy, no answer, not registered."""

from __future__ import annotations

from appserver_fakes import SDP_A, SDP_B, Forward, Harness, demo_directory

from ivoz.appserver import CallFailed, RingingTimedOut
from ivoz.appserver.b2bua import HEADER_CALLEE
from ivoz.appserver.features import CallForwarding
from ivoz.appserver.routing import Divert, RouteContext


def harness(*forwards: Forward, user: int = 2) -> Harness:
    directory = demo_directory()
    directory.forward_list[user] = list(forwards)
    return Harness(directory)


def test_unconditional_forward_rings_the_target_only() -> None:
    h = harness(Forward("unconditional", "extension", "1003"))
    h.invite("1002")
    (b,) = h.sip.invites()
    assert b.request.request_uri == "sip:carol@acme.ivoz.test"
    assert b.request.headers.get(HEADER_CALLEE) == "103"
    assert b.request.headers.get("Diversion") == "<sip:1002@acme.ivoz.test>;reason=unknown"


def test_disabled_forward_is_ignored() -> None:
    h = harness(Forward("unconditional", "extension", "1003", enabled=False))
    h.invite("1002")
    (b,) = h.sip.invites()
    assert b.request.request_uri == "sip:bob@acme.ivoz.test"


def test_busy_forward_on_486_from_callee() -> None:
    h = harness(Forward("busy", "extension", "1003"))
    a = h.invite("1002")
    (b1,) = h.sip.invites()
    b1.respond(486)
    assert a.final is None  # the caller keeps waiting
    b2 = h.sip.invites()[-1]
    assert b2.request.request_uri == "sip:carol@acme.ivoz.test"
    assert b2.request.body == SDP_A
    b2.respond(180)
    b2.respond(200, SDP_B)
    assert a.statuses == [180, 200]
    names = [(type(e).__name__, e.leg.name) for e in h.events]
    assert names[0] == ("CallFailed", "b1")
    assert ("CallAnswered", "b2") in names


def test_busy_forward_on_600_and_not_on_603() -> None:
    h = harness(Forward("busy", "extension", "1003"))
    h.invite("1002")
    h.sip.invites()[0].respond(600)
    assert len(h.sip.invites()) == 2
    h2 = harness(Forward("busy", "extension", "1003"))
    a = h2.invite("1002")
    h2.sip.invites()[0].respond(603)
    assert len(h2.sip.invites()) == 1 and a.final.status == 603


def test_no_answer_forward_after_timeout_with_fake_clock() -> None:
    h = harness(Forward("noanswer", "extension", "1003", no_answer_timeout=15))
    a = h.invite("1002")
    (b1,) = h.sip.invites()
    b1.respond(180)
    h.advance(14.9)
    assert not b1.cancelled and len(h.sip.invites()) == 1
    h.advance(0.2)
    # RFC 3261 9.1: the ringing leg is CANCELled and the target rung
    assert b1.cancelled
    b2 = h.sip.invites()[-1]
    assert b2.request.request_uri == "sip:carol@acme.ivoz.test"
    assert any(isinstance(e, RingingTimedOut) and e.after == 15 for e in h.events)
    b1.respond(487)
    assert a.final is None
    b2.respond(200, SDP_B)
    assert a.final.status == 200


def test_no_answer_timer_stops_when_answered() -> None:
    h = harness(Forward("noanswer", "extension", "1003", no_answer_timeout=5))
    a = h.invite("1002")
    (b1,) = h.sip.invites()
    b1.respond(200, SDP_B)
    h.ack()
    h.advance(10)
    assert not b1.cancelled and len(h.sip.invites()) == 1
    assert a.final.status == 200


def test_answer_crossing_the_no_answer_cancel_is_acked_and_byed() -> None:
    h = harness(Forward("noanswer", "extension", "1003", no_answer_timeout=5))
    a = h.invite("1002")
    (b1,) = h.sip.invites()
    b1.respond(180)
    h.advance(6)
    b1.respond(200, SDP_B)  # Bob picked up just as we gave up
    (bye,) = h.sip.requests("BYE")
    assert bye.request.call_id == b1.request.call_id
    assert a.final is None


def test_unregistered_forward_on_480_and_404_from_proxy() -> None:
    for status in (480, 404):
        h = harness(Forward("unregistered", "extension", "1004"))
        a = h.invite("1002")
        h.sip.invites()[0].respond(status)
        b2 = h.sip.invites()[-1]
        assert b2.request.request_uri == "sip:dave@acme.ivoz.test"
        assert a.final is None


def test_not_registered_without_forward_passes_480() -> None:
    h = Harness()
    a = h.invite("1002")
    h.sip.invites()[0].respond(480)
    assert a.final.status == 480


def test_forward_to_external_number_is_404_external_calls_not_available() -> None:
    h = harness(Forward("unconditional", "number", "+34911111111"))
    a = h.invite("1002")
    assert not h.sip.sent
    assert (a.final.status, a.final.reason) == (404, "External calls not available")


def test_forwarding_loop_ends_with_482() -> None:
    directory = demo_directory()
    directory.forward_list[2] = [Forward("unconditional", "extension", "1003")]
    directory.forward_list[3] = [Forward("unconditional", "extension", "1002")]
    h = Harness(directory)
    a = h.invite("1002")
    assert a.final.status == 482
    assert not h.sip.sent


def test_chained_forwards_busy_then_no_answer() -> None:
    directory = demo_directory()
    directory.forward_list[2] = [Forward("busy", "extension", "1003")]
    directory.forward_list[3] = [Forward("noanswer", "extension", "1004", no_answer_timeout=3)]
    h = Harness(directory)
    a = h.invite("1002")
    h.sip.invites()[0].respond(486)
    carol = h.sip.invites()[-1]
    carol.respond(180)
    h.advance(3)
    dave = h.sip.invites()[-1]
    assert dave.request.request_uri == "sip:dave@acme.ivoz.test"
    diversions = dave.request.headers.get_all("Diversion")
    assert [d.split(";")[0] for d in diversions] == [
        "<sip:1002@acme.ivoz.test>",
        "<sip:1003@acme.ivoz.test>",
    ]
    dave.respond(200, SDP_B)
    assert a.final.status == 200


def test_plugin_alone() -> None:
    directory = demo_directory()
    directory.forward_list[2] = [
        Forward("busy", "extension", "1003"),
        Forward("noanswer", "number", "600", no_answer_timeout=0),
        Forward("unregistered", "extension", "1004"),
    ]
    ctx = RouteContext(
        company=directory.company(1), caller_terminal=None, caller_user=None, directory=directory
    )
    bob = directory.user(2)
    feature = CallForwarding()
    assert feature.before_ring(ctx, bob) is None
    assert feature.ring_timeout(ctx, bob) == 1.0  # at least a second
    from ivoz.appserver import LegId

    leg = LegId("c", "b1")
    assert feature.after_failure(ctx, bob, CallFailed(leg, 486)) == Divert(
        "extension", "1003", "busy"
    )
    assert feature.after_failure(ctx, bob, CallFailed(leg, 404)) == Divert(
        "extension", "1004", "unregistered"
    )
    assert feature.after_failure(ctx, bob, CallFailed(leg, 500)) is None
    assert feature.after_failure(ctx, bob, RingingTimedOut(leg, 1.0)) == Divert(
        "number", "600", "noanswer"
    )
