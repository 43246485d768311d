"""Dialogs (RFC 3261 section 12): creation, route sets, CSeq, in-dialog requests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivoz import sip
from ivoz.sip.dialog import Dialog, DialogId, DialogState, dialog_id_of

INVITE = (
    "INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK74bf9\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.com>\r\n"
    "From: Alice <sip:alice@atlanta.com>;tag=9fxced76sl\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 2 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.com>\r\n"
    "{extra}"
    "Content-Length: 0\r\n\r\n"
)

RECORD_ROUTES = "Record-Route: <sip:p2.biloxi.com;lr>\r\nRecord-Route: <sip:p1.atlanta.com;lr>\r\n"


def invite(extra: str = "") -> sip.Request:
    message = sip.parse_message(INVITE.format(extra=extra).encode())
    assert isinstance(message, sip.Request)
    return message


def reply(
    req: sip.Request,
    status: int,
    *,
    tag: str | None = "8321234356",
    contact: str | None = "<sip:bob@192.0.2.4>",
    record_routes: list[str] | None = None,
) -> sip.Response:
    resp = sip.make_response(req, status, to_tag=tag)
    for rr in record_routes or []:
        resp.headers.add("Record-Route", rr)
    if contact is not None:
        resp.headers.add("Contact", contact)
    parsed = sip.parse_message(resp.to_bytes())
    assert isinstance(parsed, sip.Response)
    return parsed


def test_uac_dialog_from_2xx_reverses_record_route() -> None:
    req = invite()
    resp = reply(req, 200, record_routes=["<sip:p1.atlanta.com;lr>", "<sip:p2.biloxi.com;lr>"])
    d = Dialog.from_uac(req, resp)
    assert d.state is DialogState.CONFIRMED
    assert d.id == DialogId("3848276298220188511@atlanta.example.com", "9fxced76sl", "8321234356")
    assert d.id == dialog_id_of(resp, received=True)
    # RFC 3261 12.1.2: reverse order of Record-Route
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.biloxi.com;lr", "sip:p1.atlanta.com;lr"]
    assert str(d.remote_target) == "sip:bob@192.0.2.4"
    assert (d.local_seq, d.remote_seq) == (2, None)
    assert not d.secure


def test_uas_dialog_keeps_record_route_order() -> None:
    req = invite(RECORD_ROUTES)
    resp = sip.make_response(req, 180, to_tag="b0b")
    d = Dialog.from_uas(req, resp)
    assert d.state is DialogState.EARLY
    assert d.id == DialogId(req.call_id, "b0b", "9fxced76sl")
    assert d.id == dialog_id_of(resp, received=False)
    # the caller's next request carries our tag in To
    assert d.id == dialog_id_of(d_request_from_caller(d, "PRACK", 3), received=True)
    # RFC 3261 12.1.1: Record-Route in order
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.biloxi.com;lr", "sip:p1.atlanta.com;lr"]
    assert str(d.remote_target) == "sip:alice@pc33.atlanta.com"
    assert (d.local_seq, d.remote_seq) == (None, 2)
    d.send_response(sip.make_response(req, 200, to_tag="b0b"))
    assert d.state is DialogState.CONFIRMED


def test_uas_early_dialog_ends_on_failure_response() -> None:
    req = invite()
    d = Dialog.from_uas(req, sip.make_response(req, 183, to_tag="b0b"))
    d.send_response(sip.make_response(req, 486, to_tag="b0b"))
    assert d.state is DialogState.TERMINATED


def test_no_dialog_without_to_tag_or_from_a_failure() -> None:
    req = invite()
    with pytest.raises(sip.LocalError):
        Dialog.from_uac(req, reply(req, 180, tag=None))
    with pytest.raises(sip.LocalError):
        Dialog.from_uac(req, reply(req, 486))
    with pytest.raises(sip.LocalError):
        Dialog.from_uac(req, reply(req, 100))


def test_early_dialog_from_1xx_is_confirmed_by_2xx_with_recomputed_route_set() -> None:
    req = invite()
    early = reply(req, 183, contact="<sip:bob@early.example>", record_routes=["<sip:a;lr>"])
    d = Dialog.from_uac(req, early)
    assert d.state is DialogState.EARLY
    assert str(d.remote_target) == "sip:bob@early.example"
    d.receive_response(reply(req, 180, contact="<sip:bob@ringing.example>"))
    assert d.state is DialogState.EARLY
    assert str(d.remote_target) == "sip:bob@ringing.example"
    ok = reply(req, 200, record_routes=["<sip:x.example;lr>", "<sip:y.example;lr>"])
    d.receive_response(ok)
    assert d.state is DialogState.CONFIRMED
    # RFC 3261 13.2.2.4: the route set is recomputed from the 2xx
    assert [str(r.uri) for r in d.route_set] == ["sip:y.example;lr", "sip:x.example;lr"]
    assert str(d.remote_target) == "sip:bob@192.0.2.4"


def test_early_dialog_ends_on_failure() -> None:
    req = invite()
    d = Dialog.from_uac(req, reply(req, 180))
    d.receive_response(reply(req, 603))
    assert d.state is DialogState.TERMINATED
    with pytest.raises(sip.LocalError):
        d.create_request("BYE")


def test_in_dialog_request_loose_routing() -> None:
    req = invite()
    d = Dialog.from_uac(req, reply(req, 200, record_routes=["<sip:p1.example.com;lr>"]))
    via = sip.Via("UDP", "pc33.atlanta.com", 5060)
    bye = d.create_request("BYE", via=via)
    parsed = sip.parse_message(bye.to_bytes())
    assert isinstance(parsed, sip.Request)
    # RFC 3261 12.2.1.1: Request-URI = remote target, Route = route set
    assert parsed.request_uri == "sip:bob@192.0.2.4"
    assert [str(r.uri) for r in parsed.routes] == ["sip:p1.example.com;lr"]
    assert parsed.from_tag == "9fxced76sl" and parsed.to_tag == "8321234356"
    assert str(parsed.from_.uri) == "sip:alice@atlanta.com"
    assert str(parsed.to.uri) == "sip:bob@biloxi.com"
    assert parsed.call_id == req.call_id
    assert (parsed.cseq.seq, parsed.cseq.method) == (3, "BYE")
    assert parsed.via.branch is not None and parsed.via.branch.startswith("z9hG4bK")
    assert parsed.max_forwards == 70
    assert "Contact" not in parsed.headers  # BYE is not a target refresh
    assert d.state is DialogState.TERMINATED


def test_in_dialog_request_strict_routing() -> None:
    req = invite()
    d = Dialog.from_uac(
        req,
        reply(
            req,
            200,
            record_routes=["<sip:p2.example.com;lr>", "<sip:strict.example.com;method=INVITE>"],
        ),
    )
    reinvite = d.create_request(
        "INVITE", body=b"v=0\r\n", headers=[("Content-Type", "application/sdp")]
    )
    # RFC 3261 12.2.1.1: strict router first: its URI is the Request-URI (without the
    # parameters not allowed there), then the rest of the route set, then the remote target
    assert reinvite.request_uri == "sip:strict.example.com"
    assert [str(r.uri) for r in reinvite.routes] == ["sip:p2.example.com;lr", "sip:bob@192.0.2.4"]
    assert reinvite.cseq.seq == 3
    assert reinvite.headers.get("Contact") == "<sip:alice@pc33.atlanta.com>"
    assert reinvite.body == b"v=0\r\n"


def test_empty_route_set_and_ack_for_2xx() -> None:
    req = invite()
    d = Dialog.from_uac(req, reply(req, 200))
    ack = d.create_request("ACK", cseq=req.cseq.seq)
    # RFC 3261 13.2.2.4: the ACK for a 2xx carries the INVITE's CSeq number
    assert (ack.cseq.seq, ack.cseq.method) == (2, "ACK")
    assert ack.request_uri == "sip:bob@192.0.2.4" and ack.routes == []
    assert d.local_seq == 2  # the ACK does not move the sequence
    with pytest.raises(sip.LocalError):
        d.create_request("ACK")
    assert d.create_request("INFO").cseq.seq == 3
    assert d.create_request("OPTIONS").cseq.seq == 4
    with pytest.raises(sip.LocalError):
        d.create_request("INFO", cseq=4)


def test_uas_side_cseq_tracking_rejects_lower_cseq_with_500() -> None:
    req = invite()
    d = Dialog.from_uas(req, sip.make_response(req, 200, to_tag="b0b"))
    later = d_request_from_caller(d, "INFO", 5)
    d.receive_request(later)
    assert d.remote_seq == 5
    # RFC 3261 12.2.2: a lower CSeq is out of order: 500
    with pytest.raises(sip.RemoteError) as info:
        d.receive_request(d_request_from_caller(d, "INFO", 4))
    assert info.value.status == 500
    # the ACK for the INVITE carries the (lower) INVITE number and is fine
    d.receive_request(d_request_from_caller(d, "ACK", 2))
    assert d.remote_seq == 5


def test_uas_local_sequence_starts_when_empty() -> None:
    req = invite()
    d = Dialog.from_uas(req, sip.make_response(req, 200, to_tag="b0b"))
    bye = d.create_request("BYE")
    assert bye.cseq.seq == 1
    # the callee's BYE goes From the callee (local) To the caller (remote)
    assert bye.from_tag == "b0b" and bye.to_tag == "9fxced76sl"
    assert bye.request_uri == "sip:alice@pc33.atlanta.com"


def d_request_from_caller(
    d: Dialog, method: str, seq: int, contact: str | None = None
) -> sip.Request:
    """A request the remote party sends in dialog ``d`` (as the UAS sees it)."""
    headers = [
        ("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK" + str(seq) + method),
        ("From", str(d.remote_uri.with_tag(d.id.remote_tag))),
        ("To", str(d.local_uri.with_tag(d.id.local_tag))),
        ("Call-ID", d.id.call_id),
        ("CSeq", f"{seq} {method}"),
    ]
    if contact is not None:
        headers.append(("Contact", contact))
    message = sip.parse_message(sip.Request(method, str(d.local_uri.uri), headers).to_bytes())
    assert isinstance(message, sip.Request)
    return message


def test_target_refresh_by_received_reinvite_and_bye() -> None:
    req = invite()
    d = Dialog.from_uas(req, sip.make_response(req, 200, to_tag="b0b"))
    d.receive_request(d_request_from_caller(d, "INVITE", 3, contact="<sip:alice@new.example>"))
    assert str(d.remote_target) == "sip:alice@new.example"
    # INFO is not a target refresh: its Contact (if any) is ignored
    d.receive_request(d_request_from_caller(d, "INFO", 4, contact="<sip:alice@other.example>"))
    assert str(d.remote_target) == "sip:alice@new.example"
    d.receive_request(d_request_from_caller(d, "BYE", 5))
    assert d.state is DialogState.TERMINATED
    with pytest.raises(sip.RemoteError) as info:
        d.receive_request(d_request_from_caller(d, "INFO", 6))
    assert info.value.status == 481


def test_target_refresh_by_2xx_to_our_reinvite_and_481_ends() -> None:
    req = invite()
    d = Dialog.from_uac(req, reply(req, 200))
    reinvite = d.create_request("INVITE")
    d.receive_response(reply(reinvite, 200, contact="<sip:bob@moved.example>"))
    assert str(d.remote_target) == "sip:bob@moved.example"
    assert d.state is DialogState.CONFIRMED
    # RFC 3311 5.2: a 2xx to UPDATE refreshes the target too
    update = d.create_request("UPDATE")
    assert update.headers.get("Contact") == "<sip:alice@pc33.atlanta.com>"
    d.receive_response(reply(update, 200, contact="<sip:bob@updated.example>"))
    assert str(d.remote_target) == "sip:bob@updated.example"
    # a 2xx to a request that is not a target refresh leaves the target alone
    info_ok = d.create_request("INFO")
    d.receive_response(reply(info_ok, 200, contact="<sip:bob@ignored.example>"))
    assert str(d.remote_target) == "sip:bob@updated.example"
    # a failed re-INVITE leaves the dialog as it was
    again = d.create_request("INVITE")
    d.receive_response(reply(again, 488))
    assert d.state is DialogState.CONFIRMED
    # RFC 3261 12.2.1.2: 481 to an in-dialog request ends the dialog
    info = d.create_request("INFO")
    d.receive_response(reply(info, 481))
    assert d.state is DialogState.TERMINATED
    d.receive_response(reply(info, 200))  # late: ignored
    assert d.state is DialogState.TERMINATED


def test_sips_request_uri_makes_a_secure_dialog() -> None:
    text = INVITE.format(extra="").replace("INVITE sip:bob", "INVITE sips:bob")
    req = sip.parse_message(text.encode())
    assert isinstance(req, sip.Request)
    d = Dialog.from_uac(req, reply(req, 200))
    assert d.secure
    assert not Dialog.from_uac(req, reply(req, 200), tls=False).secure


def test_bad_contact_in_dialog_creating_request() -> None:
    req = invite().headers
    req.set("Contact", "*")
    message = sip.Request("INVITE", "sip:bob@biloxi.com", req)
    with pytest.raises(sip.RemoteError):
        Dialog.from_uas(message, sip.make_response(message, 200, to_tag="b0b"))
    req.remove("Contact")
    message = sip.Request("INVITE", "sip:bob@biloxi.com", req)
    with pytest.raises(sip.RemoteError):
        Dialog.from_uas(message, sip.make_response(message, 200, to_tag="b0b"))


def test_ack_wait_retransmits_2xx_until_ack() -> None:
    from ivoz.sip.dialog import AckWait

    req = invite()
    ok = sip.make_response(req, 200, to_tag="b0b")
    wait = AckWait(ok, 10.0)
    times = []
    while (deadline := wait.next_timer()) is not None and deadline < 14.0:
        wait.on_timer(deadline)
        times.extend(deadline for _ in wait.responses_to_send())
    # RFC 3261 13.3.1.4: T1, doubling to T2: 10.5, 11.5, 13.5
    assert times == [10.5, 11.5, 13.5]
    assert not wait.receive_ack(d_request_from_caller(Dialog.from_uas(req, ok), "ACK", 7))
    assert wait.receive_ack(d_request_from_caller(Dialog.from_uas(req, ok), "ACK", 2))
    assert wait.acked and wait.next_timer() is None


def test_ack_wait_gives_up_after_64_t1() -> None:
    from ivoz.sip.dialog import AckWait

    req = invite()
    wait = AckWait(sip.make_response(req, 200, to_tag="b0b"), 0.0)
    sent_at: list[float] = []
    while (deadline := wait.next_timer()) is not None:
        wait.on_timer(deadline)
        sent_at.extend(deadline for _ in wait.responses_to_send())
    assert wait.timed_out and not wait.acked
    gaps = [b - a for a, b in zip([0.0, *sent_at], sent_at, strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and set(gaps[3:]) == {4.0}
    assert sent_at[-1] < 32.0
    with pytest.raises(sip.LocalError):
        AckWait(sip.make_response(req, 486, to_tag="b0b"), 0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["INFO", "UPDATE", "ACK", "BYE"]), st.integers(0, 20))))
def test_remote_cseq_never_goes_backwards(steps: list[tuple[str, int]]) -> None:
    req = invite()
    d = Dialog.from_uas(req, sip.make_response(req, 200, to_tag="b0b"))
    highest = 2
    for method, seq in steps:
        try:
            d.receive_request(d_request_from_caller(d, method, seq))
        except sip.RemoteError as exc:
            # RFC 3261 12.2.2: 500 for out of order, 481 once the dialog ended
            assert exc.status in (500, 481)
            assert (exc.status == 481) == d.terminated
            continue
        if method != "ACK":
            assert seq >= highest
            highest = seq
        assert d.remote_seq == highest
