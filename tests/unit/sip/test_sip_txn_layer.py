"""The transaction layer: matching (RFC 3261 17.1.3, 17.2.3), CANCEL (9), timers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivoz import sip
from ivoz.sip.timers import TimerConfig
from ivoz.sip.transaction import (
    ClientInviteTransaction,
    RequestReceived,
    ResponseReceived,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    StrayResponseReceived,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    make_cancel,
)

SOURCE = ("192.0.2.10", 5060)


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK74bf9",
    sent_by: str = "pc33.atlanta.com",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    uri: str = "sip:bob@biloxi.com",
) -> sip.Request:
    via_params = f";branch={branch}" if branch is not None else ""
    to = "<sip:bob@biloxi.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {sent_by}{via_params}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        "From: <sip:alice@atlanta.com>;tag=9fxced76sl\r\n"
        "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = sip.parse_message(text.encode())
    assert isinstance(message, sip.Request)
    return message


def answer(req: sip.Request, status: int, tag: str = "314159") -> sip.Response:
    return sip.make_response(req, status, to_tag=tag)


def reparse(message: sip.Request | sip.Response) -> sip.Request | sip.Response:
    """What the peer sees: the message after a trip over the wire."""
    return sip.parse_message(message.to_bytes())


def drain(layer: TransactionLayer) -> tuple[list[object], list[sip.Request | sip.Response]]:
    return list(layer.next_events()), [t.message for t in layer.messages_to_send()]


# -- server side --------------------------------------------------------------------


def test_new_request_creates_a_server_transaction_and_retransmissions_match_it() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, 0.0, reliable=False, source=SOURCE)
    [event] = layer.next_events()
    assert isinstance(event, RequestReceived)
    txn = event.transaction
    assert isinstance(txn, ServerInviteTransaction)
    assert event.source == SOURCE
    assert len(layer) == 1
    ringing = answer(invite, 180)
    layer.send_response(txn, ringing, 0.05)
    [out] = layer.messages_to_send()
    assert out.message is ringing and out.destination == SOURCE
    # the same INVITE again (a new parse of it) is a retransmission: 180 resent
    layer.receive(request(), 0.5, reliable=False, source=SOURCE)
    assert layer.next_events() == []
    assert [t.message for t in layer.messages_to_send()] == [ringing]
    assert len(layer) == 1


def test_sent_by_and_method_are_part_of_the_key() -> None:
    layer = TransactionLayer()
    layer.receive(request(), 0.0, reliable=False)
    # same branch, other sent-by: RFC 3261 17.2.3 says another transaction
    layer.receive(request(sent_by="other.example.com"), 0.0, reliable=False)
    # same branch, other method (not ACK/CANCEL semantics apply: OPTIONS)
    layer.receive(request("OPTIONS", cseq_method="OPTIONS"), 0.0, reliable=False)
    events = layer.next_events()
    assert [type(e) for e in events] == [RequestReceived] * 3
    assert len(layer) == 3


def test_ack_for_failure_matches_the_invite_and_is_absorbed() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, 0.0, reliable=False)
    [event] = layer.next_events()
    txn = event.transaction  # type: ignore[union-attr]
    assert isinstance(txn, ServerInviteTransaction)
    layer.send_response(txn, answer(invite, 486), 0.1)
    drain(layer)
    ack = request("ACK", to_tag="314159", cseq_method="ACK")
    layer.receive(ack, 0.2, reliable=False)
    assert txn.state is State.CONFIRMED
    layer.receive(ack, 0.3, reliable=False)
    assert drain(layer) == ([], [])


def test_ack_for_2xx_goes_to_the_tu_without_a_transaction() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, 0.0, reliable=False)
    [event] = layer.next_events()
    assert isinstance(event, RequestReceived) and event.transaction is not None
    layer.send_response(event.transaction, answer(invite, 200), 0.1)
    drain(layer)
    # RFC 3261 13.2.2.4: the ACK for a 2xx is a new transaction (new branch)
    ack = request("ACK", branch="z9hG4bKnewbranch", to_tag="314159")
    layer.receive(ack, 0.2, reliable=False, source=SOURCE)
    [event] = layer.next_events()
    assert isinstance(event, RequestReceived)
    assert event.transaction is None and event.request is ack and event.source == SOURCE
    assert len(layer) == 1  # no transaction made for the ACK


def test_cancel_finds_the_invite_and_the_487_flow() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, 0.0, reliable=False)
    [event] = layer.next_events()
    invite_txn = event.transaction
    assert isinstance(invite_txn, ServerInviteTransaction)
    layer.send_response(invite_txn, answer(invite, 180), 0.1)
    drain(layer)
    cancel = request("CANCEL")
    layer.receive(cancel, 0.5, reliable=False)
    [event] = layer.next_events()
    assert isinstance(event, RequestReceived)
    cancel_txn = event.transaction
    # RFC 3261 9.2: the CANCEL is a transaction of its own ...
    assert isinstance(cancel_txn, ServerNonInviteTransaction)
    assert cancel_txn is not invite_txn
    # ... and refers to the INVITE's
    assert layer.find_cancelled(cancel) is invite_txn
    assert invite_txn.state is State.PROCEEDING
    layer.send_response(cancel_txn, answer(cancel, 200), 0.5)
    layer.send_response(invite_txn, answer(invite, 487), 0.5)
    _, out = drain(layer)
    assert [(m.status, m.cseq.method) for m in out] == [(200, "CANCEL"), (487, "INVITE")]  # type: ignore[union-attr]
    layer.receive(request("ACK", to_tag="314159", cseq_method="ACK"), 0.6, reliable=False)
    assert invite_txn.state is State.CONFIRMED


def test_cancel_after_the_final_response_still_finds_the_transaction() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive(invite, 0.0, reliable=False)
    [event] = layer.next_events()
    txn = event.transaction
    assert isinstance(txn, ServerInviteTransaction)
    layer.send_response(txn, answer(invite, 200), 0.1)
    cancel = request("CANCEL")
    layer.receive(cancel, 0.2, reliable=False)
    # RFC 3261 9.2: a final response was sent already: the CANCEL has no effect; the TU
    # answers it 200 and leaves the INVITE alone
    found = layer.find_cancelled(cancel)
    assert found is txn and found.state is State.ACCEPTED
    with pytest.raises(sip.LocalError):
        layer.send_response(txn, answer(invite, 487), 0.2)


def test_cancel_without_invite_finds_nothing() -> None:
    layer = TransactionLayer()
    cancel = request("CANCEL")
    layer.receive(cancel, 0.0, reliable=False)
    assert layer.find_cancelled(cancel) is None  # the TU answers 481 (RFC 3261 9.2)
    with pytest.raises(sip.LocalError):
        layer.find_cancelled(request("BYE"))


def test_rfc2543_fallback_matching() -> None:
    layer = TransactionLayer()
    invite = request(branch=None)
    layer.receive(invite, 0.0, reliable=False)
    [event] = layer.next_events()
    txn = event.transaction
    assert isinstance(txn, ServerInviteTransaction) and txn.key is None
    # RFC 3261 17.2.3: same Request-URI, tags, Call-ID, CSeq and top Via: retransmission
    layer.receive(request(branch=None), 0.1, reliable=False)
    assert layer.next_events() == []
    # another CSeq is another transaction
    layer.receive(request(branch=None, cseq=2), 0.1, reliable=False)
    assert len(layer.next_events()) == 1
    # a CANCEL for the first INVITE
    cancel = request("CANCEL", branch=None)
    assert layer.find_cancelled(cancel) is txn
    layer.send_response(txn, answer(invite, 404, tag="legacytag"), 0.2)
    drain(layer)
    # the ACK matches through the To tag of our response
    layer.receive(request("ACK", branch=None, to_tag="othertag"), 0.3, reliable=False)
    [stray] = layer.next_events()
    assert isinstance(stray, RequestReceived) and stray.transaction is None
    layer.receive(request("ACK", branch=None, to_tag="legacytag"), 0.3, reliable=False)
    assert layer.next_events() == []
    assert txn.state is State.CONFIRMED


def test_terminated_transactions_leave_the_table() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS")
    layer.receive(req, 0.0, reliable=True)
    [event] = layer.next_events()
    assert event.transaction is not None  # type: ignore[union-attr]
    layer.send_response(event.transaction, answer(req, 200), 0.1)  # type: ignore[union-attr, arg-type]
    events, _ = drain(layer)
    assert [type(e) for e in events] == [TransactionTerminated]
    assert len(layer) == 0
    # a retransmission now makes a new transaction (the TU will answer it again)
    layer.receive(request("OPTIONS"), 0.2, reliable=True)
    assert len(layer) == 1


def test_request_with_cseq_method_mismatch_is_refused() -> None:
    layer = TransactionLayer()
    with pytest.raises(sip.RemoteError) as info:
        layer.receive(request("INVITE", cseq_method="BYE"), 0.0, reliable=False)
    assert info.value.status == 400


# -- client side --------------------------------------------------------------------


def test_responses_match_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = request()
    txn = layer.send_request(invite, 0.0, reliable=False, destination=SOURCE)
    assert isinstance(txn, ClientInviteTransaction)
    [out] = layer.messages_to_send()
    assert out.message is invite and out.destination == SOURCE
    layer.receive(reparse(answer(invite, 180)), 0.1, reliable=False)
    [event] = layer.next_events()
    assert isinstance(event, ResponseReceived) and event.transaction is txn
    # a response with the INVITE's branch but method CANCEL does not belong to it
    cancel = make_cancel(invite)
    cancel_txn = layer.send_request(cancel, 0.2, reliable=False)
    layer.receive(reparse(answer(cancel, 200)), 0.3, reliable=False)
    [event] = layer.next_events()
    assert isinstance(event, ResponseReceived) and event.transaction is cancel_txn
    # a response with an unknown branch is stray
    other = request(branch="z9hG4bKunknown")
    layer.receive(reparse(answer(other, 200)), 0.3, reliable=False, source=SOURCE)
    [event] = layer.next_events()
    assert isinstance(event, StrayResponseReceived) and event.source == SOURCE


def test_client_cancel_race_487_gets_acked() -> None:
    layer = TransactionLayer()
    invite = request()
    txn = layer.send_request(invite, 0.0, reliable=False)
    assert isinstance(txn, ClientInviteTransaction)
    assert not txn.cancellable  # RFC 3261 9.1: wait for a provisional response
    layer.receive(reparse(answer(invite, 180)), 0.1, reliable=False)
    assert txn.cancellable
    cancel = make_cancel(invite)
    # RFC 3261 9.1: same branch, Request-URI, Call-ID, From, To, CSeq number; method CANCEL
    assert cancel.via.branch == invite.via.branch
    assert cancel.request_uri == invite.request_uri
    assert (cancel.cseq.seq, cancel.cseq.method) == (invite.cseq.seq, "CANCEL")
    assert cancel.to_tag is None and cancel.from_tag == invite.from_tag
    layer.send_request(cancel, 1.0, reliable=False)
    drain(layer)
    layer.receive(reparse(answer(cancel, 200)), 1.1, reliable=False)
    layer.receive(reparse(answer(invite, 487)), 1.2, reliable=False)
    events, out = drain(layer)
    assert [m.method for m in out] == ["ACK"]  # type: ignore[union-attr]
    assert txn.state is State.COMPLETED and not txn.cancellable
    statuses = [e.response.status for e in events if isinstance(e, ResponseReceived)]
    assert statuses == [200, 487]


def test_client_cancel_race_200_wins() -> None:
    layer = TransactionLayer()
    invite = request()
    txn = layer.send_request(invite, 0.0, reliable=False)
    layer.send_request(make_cancel(invite), 1.0, reliable=False)
    # the callee answered before the CANCEL arrived: 200 to INVITE, 481 to CANCEL
    layer.receive(reparse(answer(invite, 200)), 1.1, reliable=False)
    assert txn.state is State.ACCEPTED  # the TU must ACK and then BYE
    with pytest.raises(sip.LocalError):
        make_cancel(request("ACK"))


def test_layer_multiplexes_timers() -> None:
    layer = TransactionLayer(TimerConfig())
    layer.send_request(request(), 0.0, reliable=False)
    layer.send_request(request("OPTIONS", branch="z9hG4bKopt"), 0.1, reliable=False)
    drain(layer)
    assert layer.next_timer() == 0.5
    layer.on_timer(0.5)
    _, out = drain(layer)
    assert [m.method for m in out] == ["INVITE"]  # type: ignore[union-attr]
    assert layer.next_timer() == pytest.approx(0.6)
    layer.on_timer(0.6)
    _, out = drain(layer)
    assert [m.method for m in out] == ["OPTIONS"]  # type: ignore[union-attr]
    # run everything out
    while (deadline := layer.next_timer()) is not None:
        layer.on_timer(deadline)
    events, _ = drain(layer)
    assert sum(isinstance(e, TransactionTimedOut) for e in events) == 2
    assert len(layer) == 0
    with pytest.raises(sip.LocalError):
        layer.send_request(request(branch="nocookie"), 0.0, reliable=False)


_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["INVITE", "ACK", "CANCEL", "OPTIONS", "resp"]),
        st.sampled_from([100, 180, 200, 404, 487]),
        st.floats(min_value=0, max_value=5),
        st.booleans(),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(_STEPS)
def test_network_input_never_raises(steps: list[tuple[str, int, float, bool]]) -> None:
    """Whatever order messages arrive in, the layer neither raises nor loses its table."""
    layer = TransactionLayer()
    client = request("INVITE", branch="z9hG4bKclient")
    client_txn = layer.send_request(client, 0.0, reliable=False)
    now = 0.0
    servers: list[ServerInviteTransaction | ServerNonInviteTransaction] = []
    for kind, status, delta, legacy in steps:
        now += delta
        if kind == "resp":
            layer.receive(reparse(answer(client, status)), now, reliable=False)
        else:
            branch = None if legacy else "z9hG4bK74bf9"
            layer.receive(
                request(kind, branch=branch, to_tag="314159" if kind == "ACK" else None),
                now,
                reliable=False,
            )
        for event in layer.next_events():
            if isinstance(event, RequestReceived) and event.transaction is not None:
                txn = event.transaction
                servers.append(txn)  # type: ignore[arg-type]
                try:
                    layer.send_response(
                        txn, answer(txn.request, status if status > 100 else 180), now
                    )
                except sip.LocalError:
                    pass
        layer.messages_to_send()
        layer.on_timer(now)
    # a server transaction waits for its TU's final response: give every one of them one
    for txn in servers:
        if txn.state in (State.TRYING, State.PROCEEDING):
            layer.send_response(txn, answer(txn.request, 500), now)
    # RFC 3261 17.1.1.2: no timer runs in Proceeding: the TU cancels (here: a 487 comes)
    if client_txn.state is State.PROCEEDING:
        layer.receive(reparse(answer(client, 487)), now, reliable=False)
    while (deadline := layer.next_timer()) is not None:
        layer.on_timer(deadline)
    assert len(layer) == 0
