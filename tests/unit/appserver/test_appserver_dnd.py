"""Do-not-disturb: busy at once, or the busy forward."""

from __future__ import annotations

from appserver_fakes import Forward, Harness, demo_directory

from ivoz.appserver import CallFailed
from ivoz.appserver.features import DoNotDisturb
from ivoz.appserver.routing import Busy, RouteContext


def test_dnd_user_is_busy_without_ringing() -> None:
    directory = demo_directory()
    directory.set_user(2, do_not_disturb=True)
    h = Harness(directory)
    a = h.invite("1002")
    assert a.final.status == 486
    assert not h.sip.sent
    (failed,) = [e for e in h.events if isinstance(e, CallFailed)]
    assert failed.leg.name == "a" and failed.local


def test_dnd_user_with_busy_forward_is_forwarded() -> None:
    directory = demo_directory()
    directory.set_user(2, do_not_disturb=True)
    directory.forward_list[2] = [Forward("busy", "extension", "1003")]
    h = Harness(directory)
    h.invite("1002")
    (b,) = h.sip.invites()
    assert b.request.request_uri == "sip:carol@acme.ivoz.test"


def test_unconditional_forward_wins_over_dnd() -> None:
    directory = demo_directory()
    directory.set_user(2, do_not_disturb=True)
    directory.forward_list[2] = [Forward("unconditional", "extension", "1004")]
    h = Harness(directory)
    h.invite("1002")
    (b,) = h.sip.invites()
    assert b.request.request_uri == "sip:dave@acme.ivoz.test"


def test_plugin_alone() -> None:
    directory = demo_directory()
    ctx = RouteContext(
        company=directory.company(1), caller_terminal=None, caller_user=None, directory=directory
    )
    feature = DoNotDisturb()
    assert feature.before_ring(ctx, directory.user(2)) is None
    directory.set_user(2, do_not_disturb=True)
    assert isinstance(feature.before_ring(ctx, directory.user(2)), Busy)
