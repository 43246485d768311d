"""The router alone: extensions, tenants, decisions, hop limit."""

from __future__ import annotations

from appserver_fakes import Extension, Forward, demo_directory

from ivoz.appserver.routing import MAX_HOPS, Reject, Ring, RouteContext, Router


def context(directory, company: int = 1) -> RouteContext:
    return RouteContext(
        company=directory.company(company),
        caller_terminal=None,
        caller_user=None,
        directory=directory,
    )


def test_extension_to_user_terminal() -> None:
    directory = demo_directory()
    decision, _ = Router().dialled(context(directory), "1002")
    assert isinstance(decision, Ring)
    assert decision.terminal.sip_username == "bob" and decision.dialled == "1002"
    assert decision.no_answer_timeout is None


def test_unknown_and_unroutable_extensions_are_404() -> None:
    directory = demo_directory()
    directory.extensions[(1, "7000")] = Extension("7000", "ivr")
    router = Router()
    assert router.dialled(context(directory), "9999")[0] == Reject(404, "Extension not found")
    assert router.dialled(context(directory), "7000")[0].status == 404


def test_other_company_extension_is_not_visible() -> None:
    directory = demo_directory()
    decision, _ = Router().dialled(context(directory, 2), "1002")
    assert decision.terminal.sip_username == "eve"
    assert Router().dialled(context(directory, 2), "1003")[0].status == 404


def test_user_without_terminal_is_unregistered() -> None:
    directory = demo_directory()
    directory.set_user(2, terminal_id=None)
    assert Router().dialled(context(directory), "1002")[0] == Reject(480)
    directory.forward_list[2] = [Forward("unregistered", "extension", "1003")]
    decision, ctx = Router().dialled(context(directory), "1002")
    assert decision.terminal.sip_username == "carol" and ctx.hops == 1


def test_no_answer_timeout_comes_from_the_forward() -> None:
    directory = demo_directory()
    directory.forward_list[2] = [Forward("noanswer", "extension", "1003", no_answer_timeout=20)]
    decision, _ = Router().dialled(context(directory), "1002")
    assert decision.no_answer_timeout == 20.0


def test_hop_limit() -> None:
    directory = demo_directory()
    # 1001 -> 1002 -> 1003 -> 1004 -> 1001 ... unconditionally
    ring = ["1001", "1002", "1003", "1004"]
    for i, uid in enumerate((1, 2, 3, 4)):
        directory.forward_list[uid] = [Forward("unconditional", "extension", ring[(i + 1) % 4])]
    decision, ctx = Router().dialled(context(directory), "1001")
    assert decision == Reject(482, "Forwarding loop")
    assert ctx.hops == MAX_HOPS
