"""The B2BUA core on fakes: call flows, SDP pass-through, relaying, CANCEL races, BYE."""

from __future__ import annotations

from appserver_fakes import PROXY, PROXY_RR, SDP_A, SDP_B, Harness

from ivoz.appserver import CallAnswered, CallEnded, CallFailed, CallProgressed
from ivoz.appserver.b2bua import HEADER_CALLEE, HEADER_COMPANY
from ivoz.sip import Via


def answered_call(h: Harness, *, body: bytes = SDP_A):
    a = h.invite("1002", body=body)
    (b,) = h.sip.invites()
    b.respond(180)
    b.respond(200, SDP_B)
    return a, b


def test_basic_call_b_leg_invite_goes_to_proxy_with_contract_headers() -> None:
    h = Harness()
    h.invite("1002")
    (b,) = h.sip.invites()
    r = b.request
    assert b.destination == PROXY
    # the proxy routes by the callee terminal's AOR, told which terminal and tenant
    assert r.request_uri == "sip:bob@acme.ivoz.test"
    assert r.headers.get(HEADER_CALLEE) == "102"
    assert r.headers.get(HEADER_COMPANY) == "1"
    assert r.body == SDP_A and r.headers.get("Content-Type") == "application/sdp"
    # a new dialog: own Call-ID and tag, the caller's identity (AOR) and name
    assert r.call_id != h.a_invite.call_id
    assert r.from_tag != h.a_invite.from_tag
    assert str(r.from_.uri) == "sip:alice@acme.ivoz.test" and r.from_.display == "Alice"
    assert r.to.uri.user == "1002"
    assert r.via.host == "127.0.0.1" and r.via.port == 5062
    assert r.contacts[0].uri.port == 5062


def test_basic_call_ringing_answer_ack_bye_from_caller() -> None:
    h = Harness()
    a = h.invite("1002")
    (b,) = h.sip.invites()
    b.respond(100)
    b.respond(180)
    assert a.statuses == [180]
    ringing = a.responses[0]
    assert ringing.to_tag and ringing.headers.get("Record-Route") == PROXY_RR
    assert ringing.headers.get("Contact") is not None
    b.respond(200, SDP_B)
    ok = a.final
    assert ok.status == 200 and ok.body == SDP_B
    assert ok.to_tag == ringing.to_tag
    assert ok.headers.get("Record-Route") == PROXY_RR
    # offer was in the INVITE: the B-leg is ACKed at once, following the proxy's route
    (ack_b,) = h.sip.acks()
    assert ack_b.cseq.seq == 1 and ack_b.to_tag == b.to_tag
    assert ack_b.headers.get("Route") == PROXY_RR
    assert ack_b.body == b""
    h.ack()
    assert [type(e).__name__ for e in h.events] == [
        "CallProgressed",
        "CallAnswered",
        "CallAnswered",
    ]
    assert h.events[0] == CallProgressed(h.events[0].leg, 180)
    bye = h.a_request("BYE")
    assert bye.final.status == 200
    (bye_b,) = h.sip.requests("BYE")
    assert bye_b.request.to_tag == b.to_tag and bye_b.request.headers.get("Route") == PROXY_RR
    assert bye_b.destination == PROXY
    ended = [e for e in h.events if isinstance(e, CallEnded)]
    assert {e.leg.name for e in ended} == {"a", "b1"}
    assert all(e.by is not None and e.by.name == "a" for e in ended)
    assert not h.b2bua.calls


def test_bye_from_callee_ends_caller_leg() -> None:
    h = Harness()
    _a, b = answered_call(h)
    h.ack()
    callee = h.b_dialog(b)
    bye = callee.create_request("BYE", via=Via("UDP", "127.0.0.1", 5060))
    txn = h.receive(bye)
    assert txn.final.status == 200
    (bye_a,) = h.sip.requests("BYE")
    assert bye_a.request.call_id == h.a_invite.call_id
    assert bye_a.request.to_tag == h.a_invite.from_tag
    assert bye_a.request.request_uri == "sip:alice@127.0.0.1:5070"
    assert bye_a.request.headers.get("Route") == PROXY_RR
    ended = [e for e in h.events if isinstance(e, CallEnded)]
    assert {e.by.name for e in ended} == {"b1"}
    # a request after the end matches no dialog
    assert h.a_request("INFO").final.status == 481


def test_busy_callee_gives_486_to_caller_and_ack_absorbed_by_transaction() -> None:
    h = Harness()
    a = h.invite("1002")
    (b,) = h.sip.invites()
    b.respond(180)
    b.respond(486)
    assert a.final.status == 486
    assert [e for e in h.events if isinstance(e, CallFailed)] == [
        CallFailed(h.events[-2].leg, 486),
        CallFailed(h.events[-1].leg, 486),
    ]
    assert not h.b2bua.calls


def test_timeout_of_b_leg_reported_by_node_is_408_to_caller() -> None:
    h = Harness()
    a = h.invite("1002")
    (b,) = h.sip.invites()
    b.on_failure(408)
    assert a.final.status == 408


def test_unknown_extension_is_404() -> None:
    h = Harness()
    a = h.invite("1999")
    assert a.final.status == 404
    assert not h.sip.sent


def test_external_number_is_404_external_calls_not_available() -> None:
    h = Harness()
    a = h.invite("5000")
    assert (a.final.status, a.final.reason) == (404, "External calls not available")


def test_requests_from_outside_the_proxy_are_refused() -> None:
    h = Harness()
    a = h.invite("1002", host="192.0.2.7")
    assert a.final.status == 403
    assert not h.sip.sent


def test_missing_or_unknown_company_is_refused() -> None:
    h = Harness()
    assert h.invite("1002", company=None).final.status == 403
    assert h.invite("1002", company="99").final.status == 403
    assert h.invite("1002", company="x").final.status == 403
    assert not h.sip.sent


def test_caller_terminal_of_another_company_is_refused() -> None:
    h = Harness()
    # terminal 105 is Eve's, of company 2: it cannot use company 1's extensions
    assert h.invite("1002", caller="105").final.status == 403
    assert not h.sip.sent


def test_company_scopes_the_extension() -> None:
    h = Harness()
    h.invite("1002", company="2", caller="105")
    (b,) = h.sip.invites()
    # company 2's 1002 is Eve's, not Bob's
    assert b.request.request_uri == "sip:eve@other.ivoz.test"
    assert b.request.headers.get(HEADER_CALLEE) == "105"


def test_options_answers_200_with_allow() -> None:
    from ivoz.sip import Request

    h = Harness()
    options = Request(
        "OPTIONS",
        "sip:127.0.0.1:5062",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKping"),
            ("From", "<sip:proxy@127.0.0.1>;tag=p1"),
            ("To", "<sip:127.0.0.1:5062>"),
            ("Call-ID", "probe"),
            ("CSeq", "1 OPTIONS"),
            ("Max-Forwards", "70"),
        ],
    )
    txn = h.receive(options)
    assert txn.final.status == 200
    assert "INVITE" in txn.final.headers.get("Allow")
    # the same capability headers as the users proxy; no option tag, so no Supported
    assert txn.final.headers.get("Accept") == "application/sdp"
    assert txn.final.headers.get("Accept-Encoding") == "identity"
    assert "Supported" not in txn.final.headers


def test_options_requiring_an_extension_gets_420() -> None:
    from ivoz.sip import Request

    h = Harness()
    options = Request(
        "OPTIONS",
        "sip:127.0.0.1:5062",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKping2"),
            ("From", "<sip:proxy@127.0.0.1>;tag=p2"),
            ("To", "<sip:127.0.0.1:5062>"),
            ("Call-ID", "probe-2"),
            ("CSeq", "1 OPTIONS"),
            ("Max-Forwards", "70"),
            ("Require", "100rel"),
        ],
    )
    txn = h.receive(options)
    assert txn.final.status == 420
    assert txn.final.headers.get("Unsupported") == "100rel"


def test_out_of_dialog_bye_is_481_and_unknown_method_501() -> None:
    from ivoz.sip import Request

    h = Harness()
    base = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx1"),
        ("From", "<sip:a@acme.ivoz.test>;tag=p1"),
        ("To", "<sip:b@acme.ivoz.test>"),
        ("Call-ID", "nodialog"),
        ("Max-Forwards", "70"),
    ]
    bye = h.receive(Request("BYE", "sip:b@acme.ivoz.test", [*base, ("CSeq", "1 BYE")]))
    assert bye.final.status == 481
    foo = h.receive(Request("FOO", "sip:b@acme.ivoz.test", [*base, ("CSeq", "1 FOO")]))
    assert foo.final.status == 501


def test_early_media_183_with_sdp_reaches_caller() -> None:
    h = Harness()
    a = h.invite("1002")
    (b,) = h.sip.invites()
    b.respond(183, SDP_B)
    (progress,) = a.responses
    assert progress.status == 183 and progress.body == SDP_B
    assert progress.headers.get("Content-Type") == "application/sdp"
    assert CallProgressed(h.events[0].leg, 183) == h.events[0]


def test_offerless_invite_offer_in_2xx_answer_in_ack() -> None:
    h = Harness()
    a = h.invite("1002", body=b"")
    (b,) = h.sip.invites()
    assert b.request.body == b""
    b.respond(200, SDP_B)  # the callee's offer
    assert a.final.body == SDP_B
    assert h.sip.acks() == []  # the answer is still to come from the caller
    h.ack(SDP_A)
    (ack_b,) = h.sip.acks()
    assert ack_b.body == SDP_A and ack_b.headers.get("Content-Type") == "application/sdp"


def test_2xx_retransmission_from_callee_gets_the_same_ack() -> None:
    h = Harness()
    a, b = answered_call(h)
    b.respond(200, SDP_B)
    acks = h.sip.acks()
    assert len(acks) == 2 and acks[0] is acks[1]
    assert a.statuses.count(200) == 1


def test_caller_2xx_retransmitted_until_ack_then_bye_both_on_timeout() -> None:
    h = Harness()
    a, _b = answered_call(h)
    h.advance(0.5)
    h.advance(1.0)
    assert a.statuses.count(200) == 3  # RFC 3261 13.3.1.4: T1, then 2*T1
    h.advance(40)
    # no ACK after 64*T1: the call ends, both legs get a BYE
    assert len(h.sip.requests("BYE")) == 2
    assert not h.b2bua.calls


def test_ack_stops_retransmissions() -> None:
    h = Harness()
    a, _b = answered_call(h)
    h.ack()
    h.advance(40)
    assert a.statuses.count(200) == 1
    assert h.sip.requests("BYE") == []


def test_cancel_while_b_leg_rings() -> None:
    h = Harness()
    a = h.invite("1002")
    (b,) = h.sip.invites()
    b.respond(180)
    h.b2bua.cancelled(a)
    assert b.cancelled
    assert a.final.status == 487
    b.respond(487)  # the callee's answer to our CANCEL changes nothing
    assert a.statuses == [180, 487]
    assert CallFailed(h.events[-1].leg, 487) == h.events[-1]
    assert not h.b2bua.calls


def test_200_crossing_cancel_is_acked_and_byed() -> None:
    h = Harness()
    a = h.invite("1002")
    (b,) = h.sip.invites()
    b.respond(180)
    h.b2bua.cancelled(a)
    b.respond(200, SDP_B)  # crossed our CANCEL
    (ack,) = h.sip.acks()
    (bye,) = h.sip.requests("BYE")
    assert ack.to_tag == b.to_tag == bye.request.to_tag
    assert a.final.status == 487  # the caller never sees the 200


def test_second_fork_2xx_is_acked_and_byed() -> None:
    h = Harness()
    a = h.invite("1002")
    (b,) = h.sip.invites()
    b.respond(180, to_tag="fork1")
    b.respond(180, to_tag="fork2")
    b.respond(200, SDP_B, to_tag="fork1")
    b.respond(200, SDP_B, to_tag="fork2")
    assert a.statuses.count(200) == 1
    (bye,) = h.sip.requests("BYE")
    assert bye.request.to_tag == "fork2"
    assert len(h.sip.acks()) == 2


def test_reinvite_from_caller_relayed_to_callee_and_back() -> None:
    h = Harness()
    _a, b = answered_call(h)
    h.ack()
    hold = SDP_A.replace(b"RTP/AVP 0\r\n", b"RTP/AVP 0\r\na=sendonly\r\n")
    re = h.a_request("INVITE", hold)
    (out,) = [t for t in h.sip.invites() if t is not b]
    assert out.request.call_id == b.request.call_id and out.request.cseq.seq == 2
    assert out.request.body == hold
    assert out.request.headers.get("Route") == PROXY_RR
    answer = SDP_B.replace(b"RTP/AVP 0\r\n", b"RTP/AVP 0\r\na=recvonly\r\n")
    out.respond(200, answer)
    assert re.final.status == 200 and re.final.body == answer
    assert re.final.headers.get("Contact") is not None
    # the re-INVITE held the offer: the callee side is ACKed at once with CSeq 2
    assert [ack.cseq.seq for ack in h.sip.acks()] == [1, 2]


def test_reinvite_from_callee_relayed_to_caller() -> None:
    h = Harness()
    a, b = answered_call(h)
    h.ack()
    callee = h.b_dialog(b)
    callee.remote_seq = None
    re = callee.create_request(
        "INVITE",
        via=Via("UDP", "127.0.0.1", 5060),
        headers=[("Content-Type", "application/sdp")],
        body=SDP_B,
    )
    txn = h.receive(re)
    (out,) = [t for t in h.sip.invites() if t.request.call_id == h.a_invite.call_id]
    assert out.request.request_uri == "sip:alice@127.0.0.1:5070"
    assert out.request.from_tag == a.final.to_tag
    out.respond(200, SDP_A, contact="<sip:alice@127.0.0.1:5070>")
    assert txn.final.status == 200 and txn.final.body == SDP_A


def test_info_dtmf_relayed_both_ways_with_its_response() -> None:
    h = Harness()
    _a, b = answered_call(h)
    h.ack()
    dtmf = b"Signal=5\r\nDuration=160\r\n"
    info = h.a_request("INFO", dtmf, (("Content-Type", "application/dtmf-relay"),))
    (out,) = h.sip.requests("INFO")
    assert out.request.body == dtmf
    assert out.request.headers.get("Content-Type") == "application/dtmf-relay"
    assert out.request.call_id == b.request.call_id
    out.respond(200)
    assert info.final.status == 200
    # and from the callee
    callee = h.b_dialog(b)
    back = callee.create_request(
        "INFO",
        via=Via("UDP", "127.0.0.1", 5060),
        headers=[("Content-Type", "application/dtmf-relay")],
        body=dtmf,
    )
    txn = h.receive(back)
    out2 = h.sip.requests("INFO")[-1]
    assert out2.request.call_id == h.a_invite.call_id and out2.request.body == dtmf
    out2.respond(200)
    assert txn.final.status == 200


def test_update_relayed_and_error_response_comes_back() -> None:
    h = Harness()
    _a, _b = answered_call(h)
    h.ack()
    update = h.a_request("UPDATE", SDP_A)
    (out,) = h.sip.requests("UPDATE")
    out.respond(488)
    assert update.final.status == 488


def test_relayed_request_timing_out_ends_the_call() -> None:
    h = Harness()
    _a, _b = answered_call(h)
    h.ack()
    info = h.a_request("INFO", b"x", (("Content-Type", "text/plain"),))
    (out,) = h.sip.requests("INFO")
    out.on_failure(408)
    assert info.final.status == 408
    assert not h.b2bua.calls


def test_events_name_their_legs() -> None:
    h = Harness()
    answered_call(h)
    legs = [(type(e).__name__, e.leg.name) for e in h.events]
    assert legs == [("CallProgressed", "b1"), ("CallAnswered", "b1"), ("CallAnswered", "a")]
    assert {e.leg.call for e in h.events} == {h.a_invite.call_id}
    assert isinstance(h.events[1], CallAnswered)


def test_max_forwards_zero_is_483() -> None:
    h = Harness()
    h.invite("1002")
    request = h.a_invite
    request.headers.set("Max-Forwards", "0")
    request.headers.set("Call-ID", "mf0")
    txn = h.receive(request)
    assert txn.final.status == 483
    assert len(h.sip.invites()) == 1


def test_b_leg_invite_has_its_own_branch_and_index_is_cleaned() -> None:
    h = Harness()
    answered_call(h)
    (b,) = h.sip.invites()
    assert b.request.via.is_rfc3261
    h.ack()
    h.a_request("BYE")
    assert not h.b2bua.calls and not h.b2bua._legs and not h.b2bua._invites
    h.invite("1999")
    assert not h.b2bua.calls and not h.b2bua._legs


def test_cancel_after_answer_changes_nothing() -> None:
    h = Harness()
    a, b = answered_call(h)
    h.b2bua.cancelled(a)
    assert not b.cancelled and a.statuses.count(487) == 0
    assert h.b2bua.calls


def test_tcp_caller_gets_a_tcp_contact() -> None:
    from appserver_fakes import AS

    from ivoz.sip import parse_message
    from ivoz.transport import Address, Kind, Origin

    h = Harness()
    h.invite("1002")
    request = parse_message(h.a_invite.to_bytes())
    request.headers.set("Call-ID", "tcp-call")
    origin = Origin(
        Kind.TCP, Address(Kind.TCP, "127.0.0.1", 40000), Address(Kind.TCP, AS.host, AS.port), 7
    )
    from appserver_fakes import ServerTxn

    txn = ServerTxn(request)
    h.b2bua.request_received(request, origin, txn)
    b = h.sip.invites()[-1]
    b.respond(180)
    assert txn.responses[0].headers.get("Contact") == "<sip:ivoz-as@127.0.0.1:5062;transport=tcp>"


def test_untrusted_ack_and_in_dialog_requests_are_ignored_or_refused() -> None:
    h = Harness()
    answered_call(h)
    h.ack()
    # an INFO of the dialog, but from an address that is not the proxy
    dialog = h._a_dialog()
    info = dialog.create_request("INFO", via=Via("UDP", "192.0.2.9", 5060))
    txn = h.receive(info, host="192.0.2.9")
    assert txn.final.status == 403
    assert h.sip.requests("INFO") == []


def test_leg_table_is_documented_and_illegal_moves_raise() -> None:
    from pathlib import Path

    import pytest

    from ivoz.appserver.b2bua import LEG_TABLE, LegInput, LegState, render_leg_table
    from ivoz.sip import LocalError

    docs = Path(__file__).resolve().parents[3] / "docs" / "application-server.md"
    assert render_leg_table() in docs.read_text()
    h = Harness()
    answered_call(h)
    leg = h.b2bua.calls[h.a_invite.call_id].b
    assert leg.state is LegState.ANSWERED
    assert (LegState.ANSWERED, LegInput.CANCEL) not in LEG_TABLE
    with pytest.raises(LocalError):
        leg.move(LegInput.CANCEL)


def test_reinvite_glare_491_and_second_reinvite_500() -> None:
    h = Harness()
    _a, b = answered_call(h)
    h.ack()
    first = h.a_request("INVITE", SDP_A)
    (out,) = [t for t in h.sip.invites() if t is not b]
    # the caller sends another re-INVITE before the first is answered: 500 Retry-After
    second = h.a_request("INVITE", SDP_A)
    assert second.final.status == 500 and second.final.headers.get("Retry-After")
    # the callee's own re-INVITE crosses ours on its dialog: 491
    callee = h.b_dialog(b)
    glare = callee.create_request(
        "INVITE",
        via=Via("UDP", "127.0.0.1", 5060),
        headers=[("Content-Type", "application/sdp")],
        body=SDP_B,
    )
    txn = h.receive(glare)
    assert txn.final.status == 491
    out.respond(200, SDP_B)
    assert first.final.status == 200
    # once answered, a new re-INVITE goes through
    h.a_request("INVITE", SDP_A)
    assert len([t for t in h.sip.invites() if t is not b]) == 2


def test_malformed_response_never_raises_into_the_node() -> None:
    h = Harness()
    h.invite("1002")
    (b,) = h.sip.invites()
    from ivoz.sip import Response

    bad = Response(180, None, [("Via", "garbage"), ("To", "<<<"), ("CSeq", "x")])
    b.on_response(bad)  # logged and dropped
    b.respond(180)
    assert h.a_txn.statuses == [180]


def test_required_extension_is_420() -> None:
    h = Harness()
    a = h.invite("1002", extra=(("Require", "100rel"),))
    assert a.final.status == 420 and a.final.headers.get("Unsupported") == "100rel"
    assert not h.sip.sent
    # merely supported extensions are fine (and not passed on to the callee)
    h.invite("1002", extra=(("Supported", "100rel, timer"),))
    (b,) = h.sip.invites()
    assert b.request.headers.get("Supported") is None
