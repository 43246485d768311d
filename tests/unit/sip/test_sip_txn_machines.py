"""The four transaction state machines (RFC 3261 17, RFC 6026) under a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivoz import sip
from ivoz.sip.timers import TimerConfig
from ivoz.sip.transaction import (
    CLIENT_INVITE_TABLE,
    CLIENT_NON_INVITE_TABLE,
    SERVER_INVITE_TABLE,
    SERVER_NON_INVITE_TABLE,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    RequestReceived,
    ResponseReceived,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    Timer,
    Transaction,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)

BRANCH = "z9hG4bK776asdhds"


def request(method: str = "INVITE", *, branch: str = BRANCH, routes: bool = False) -> sip.Request:
    route = "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n" if routes else ""
    text = (
        f"{method} sip:bob@biloxi.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP pc33.atlanta.com;branch={branch}\r\n"
        "Via: SIP/2.0/UDP older.example.com;branch=z9hG4bKolder\r\n"
        f"{route}"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.com>\r\n"
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
        f"CSeq: 314159 {method}\r\n"
        "Contact: <sip:alice@pc33.atlanta.com>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = sip.parse_message(text.encode())
    assert isinstance(message, sip.Request)
    return message


def response(req: sip.Request, status: int, *, tag: str | None = "a6c85cf") -> sip.Response:
    return sip.make_response(req, status, to_tag=tag if status > 100 else None)


def sent(txn: Transaction) -> list[sip.Request | sip.Response]:
    return [t.message for t in txn.messages_to_send()]


def run_until(txn: Transaction, end: float) -> list[tuple[float, sip.Request | sip.Response]]:
    """Fire timers up to ``end``; return (time, message) for everything sent."""
    out: list[tuple[float, sip.Request | sip.Response]] = []
    while (deadline := txn.next_timer()) is not None and deadline <= end:
        txn.on_timer(deadline)
        out.extend((deadline, m) for m in sent(txn))
    return out


def event_types(txn: Transaction) -> list[type]:
    return [type(e) for e in txn.next_events()]


# -- client INVITE ------------------------------------------------------------------


def test_client_invite_timer_a_doubles_until_timer_b() -> None:
    txn = ClientInviteTransaction(request(), 0.0, reliable=False)
    assert txn.state is State.CALLING
    assert [m.method for m in sent(txn)] == ["INVITE"]  # type: ignore[union-attr]
    fired = run_until(txn, 100.0)
    times = [t for t, _ in fired]
    # RFC 3261 17.1.1.2: retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5; B at 64*T1 = 32
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert txn.state is State.TERMINATED
    events = txn.next_events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer is Timer.B
    assert isinstance(events[1], TransactionTerminated)
    assert txn.next_timer() is None


def test_client_invite_reliable_does_not_retransmit() -> None:
    txn = ClientInviteTransaction(request(), 10.0, reliable=True)
    sent(txn)
    assert txn.next_timer() == 10.0 + 32.0  # only Timer B
    assert run_until(txn, 100.0) == []
    assert txn.state is State.TERMINATED


def test_client_invite_provisional_stops_retransmissions_and_timer_b() -> None:
    req = request()
    txn = ClientInviteTransaction(req, 0.0, reliable=False)
    sent(txn)
    txn.receive(response(req, 180), 0.2)
    assert txn.state is State.PROCEEDING
    [event] = txn.next_events()
    assert isinstance(event, ResponseReceived) and event.response.status == 180
    assert txn.next_timer() is None  # the TU decides when to give up (CANCEL / Timer C)
    txn.receive(response(req, 183), 0.3)
    assert event_types(txn) == [ResponseReceived]


def test_client_invite_failure_generates_ack_and_absorbs_retransmissions() -> None:
    req = request(routes=True)
    txn = ClientInviteTransaction(req, 0.0, reliable=False)
    sent(txn)
    busy = response(req, 486)
    txn.receive(busy, 1.0)
    assert txn.state is State.COMPLETED
    assert event_types(txn) == [ResponseReceived]
    [ack] = sent(txn)
    assert isinstance(ack, sip.Request)
    # RFC 3261 17.1.1.3: how the ACK is built
    assert ack.method == "ACK"
    assert ack.request_uri == req.request_uri
    assert [str(v) for v in ack.vias] == [str(req.via)]
    assert ack.via.branch == BRANCH
    assert ack.call_id == req.call_id
    assert ack.from_tag == req.from_tag
    assert ack.to_tag == "a6c85cf"
    assert (ack.cseq.seq, ack.cseq.method) == (314159, "ACK")
    assert [str(r.uri) for r in ack.routes] == [str(r.uri) for r in req.routes]
    assert txn.ack is ack
    # a retransmitted final response re-sends the ACK and is not passed up again
    txn.receive(busy, 2.0)
    assert sent(txn) == [ack]
    assert txn.next_events() == []
    # a late provisional response is discarded
    txn.receive(response(req, 180), 2.5)
    assert sent(txn) == [] and txn.next_events() == []
    # RFC 3261 17.1.1.2: Timer D, at least 32 s over UDP
    assert txn.next_timer() == 33.0
    run_until(txn, 33.0)
    assert txn.state is State.TERMINATED
    assert event_types(txn) == [TransactionTerminated]


def test_client_invite_failure_over_reliable_terminates_at_once() -> None:
    req = request()
    txn = ClientInviteTransaction(req, 0.0, reliable=True)
    sent(txn)
    txn.receive(response(req, 404), 1.0)
    assert txn.state is State.TERMINATED
    assert [m.method for m in sent(txn)] == ["ACK"]  # type: ignore[union-attr]
    assert event_types(txn) == [ResponseReceived, TransactionTerminated]


def test_client_invite_2xx_goes_to_accepted_and_passes_every_2xx_up() -> None:
    req = request()
    txn = ClientInviteTransaction(req, 0.0, reliable=False)
    sent(txn)
    ok = response(req, 200)
    txn.receive(ok, 1.0)
    # RFC 6026 7.2: Accepted, Timer M; the TU (not the transaction) ACKs a 2xx
    assert txn.state is State.ACCEPTED
    assert sent(txn) == []
    assert txn.timer_deadline(Timer.M) == 33.0
    assert event_types(txn) == [ResponseReceived]
    txn.receive(ok, 2.0)  # retransmission
    txn.receive(response(req, 200, tag="otherfork"), 2.5)  # another branch of a fork
    assert event_types(txn) == [ResponseReceived, ResponseReceived]
    assert sent(txn) == []
    run_until(txn, 40.0)
    assert txn.state is State.TERMINATED


def test_client_invite_transport_error() -> None:
    txn = ClientInviteTransaction(request(), 0.0, reliable=False)
    txn.on_transport_error(0.1)
    assert txn.state is State.TERMINATED
    assert event_types(txn) == [TransportErrorOccurred, TransactionTerminated]


def test_client_transaction_refuses_bad_requests() -> None:
    with pytest.raises(sip.LocalError):
        ClientInviteTransaction(request(branch="1234"), 0.0, reliable=False)
    with pytest.raises(sip.LocalError):
        ClientInviteTransaction(request("OPTIONS"), 0.0, reliable=False)
    with pytest.raises(sip.LocalError):
        ClientNonInviteTransaction(request("INVITE"), 0.0, reliable=False)
    with pytest.raises(sip.LocalError):
        ClientNonInviteTransaction(request("ACK"), 0.0, reliable=False)


def test_custom_t1_scales_the_timers() -> None:
    config = TimerConfig(t1=1.0, t2=8.0)
    txn = ClientInviteTransaction(request(), 0.0, reliable=False, config=config)
    sent(txn)
    assert [t for t, _ in run_until(txn, 100.0)] == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0]


# -- client non-INVITE --------------------------------------------------------------


def test_client_non_invite_timer_e_doubles_to_t2_until_timer_f() -> None:
    txn = ClientNonInviteTransaction(request("OPTIONS"), 0.0, reliable=False)
    sent(txn)
    times = [t for t, _ in run_until(txn, 100.0)]
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    # RFC 3261 17.1.2.2: E = T1, then min(2E, T2); F = 64*T1 = 32 s
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert set(gaps[3:]) == {4.0}
    assert times[-1] < 32.0
    assert txn.state is State.TERMINATED
    events = txn.next_events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer is Timer.F


def test_client_non_invite_proceeding_retransmits_every_t2() -> None:
    req = request("REGISTER")
    txn = ClientNonInviteTransaction(req, 0.0, reliable=False)
    sent(txn)
    txn.receive(response(req, 100), 0.1)
    assert txn.state is State.PROCEEDING
    # RFC 3261 17.1.2.2: in Proceeding, Timer E is reset to T2 when it fires
    times = [t for t, _ in run_until(txn, 12.0)]
    assert times == [0.5, 4.5, 8.5]


def test_client_non_invite_final_then_timer_k() -> None:
    req = request("BYE")
    txn = ClientNonInviteTransaction(req, 0.0, reliable=False)
    sent(txn)
    ok = response(req, 200)
    txn.receive(ok, 0.7)
    assert txn.state is State.COMPLETED
    assert event_types(txn) == [ResponseReceived]
    txn.receive(ok, 0.8)  # buffered, not passed up
    assert txn.next_events() == [] and sent(txn) == []
    assert txn.next_timer() == pytest.approx(5.7)  # Timer K = T4
    run_until(txn, 6.0)
    assert txn.state is State.TERMINATED


def test_client_non_invite_reliable_terminates_on_final() -> None:
    req = request("BYE")
    txn = ClientNonInviteTransaction(req, 0.0, reliable=True)
    assert txn.timer_deadline(Timer.E) is None
    txn.receive(response(req, 481), 0.1)
    assert txn.state is State.TERMINATED


def test_client_non_invite_late_response_after_timeout_is_ignored() -> None:
    req = request("OPTIONS")
    txn = ClientNonInviteTransaction(req, 0.0, reliable=True)
    run_until(txn, 40.0)
    txn.next_events()
    txn.receive(response(req, 200), 41.0)
    assert txn.next_events() == [] and txn.state is State.TERMINATED


# -- server INVITE ------------------------------------------------------------------


def test_server_invite_sends_100_after_200ms() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=False)
    [event] = txn.next_events()
    assert isinstance(event, RequestReceived) and event.request is req
    assert sent(txn) == []
    assert txn.next_timer() == pytest.approx(0.2)
    [(_, trying)] = run_until(txn, 0.2)
    assert isinstance(trying, sip.Response) and trying.status == 100
    assert trying.to_tag is None
    # RFC 3261 17.2.1: a retransmitted INVITE gets the last provisional response again
    txn.receive(req, 0.5)
    assert sent(txn) == [trying]


def test_server_invite_tu_answering_first_suppresses_the_100() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=False)
    ringing = response(req, 180)
    txn.send_response(ringing, 0.1)
    assert sent(txn) == [ringing]
    assert txn.next_timer() is None
    txn.receive(req, 0.5)
    assert sent(txn) == [ringing]


def test_server_invite_immediate_100_when_configured() -> None:
    txn = ServerInviteTransaction(request(), 0.0, reliable=True, config=TimerConfig(trying_delay=0))
    [trying] = sent(txn)
    assert isinstance(trying, sip.Response) and trying.status == 100


def test_server_invite_failure_timer_g_and_h() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=False)
    txn.next_events()
    busy = response(req, 486)
    txn.send_response(busy, 0.1)
    assert txn.state is State.COMPLETED
    assert sent(txn) == [busy]
    fired = run_until(txn, 100.0)
    assert all(m is busy for _, m in fired)
    times = [t for t, _ in fired]
    gaps = [round(b - a, 6) for a, b in zip([0.1, *times], times, strict=False)]
    # RFC 3261 17.2.1: G = T1, then min(2G, T2); H = 64*T1
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert times[-1] < 32.1
    assert txn.state is State.TERMINATED
    events = txn.next_events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer is Timer.H


def test_server_invite_ack_confirms_and_is_absorbed() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=False)
    txn.next_events()
    busy = response(req, 486)
    txn.send_response(busy, 0.1)
    sent(txn)
    txn.receive(req, 0.3)  # INVITE retransmission in Completed: final response again
    assert sent(txn) == [busy]
    ack = request("ACK")
    txn.receive(ack, 0.4)
    assert txn.state is State.CONFIRMED
    assert txn.timer_deadline(Timer.G) is None and txn.timer_deadline(Timer.H) is None
    # RFC 3261 17.2.1: retransmitted ACKs are absorbed, not passed up, nothing sent
    txn.receive(ack, 0.6)
    txn.receive(ack, 1.0)
    assert sent(txn) == [] and txn.next_events() == []
    # Timer I = T4
    assert txn.next_timer() == pytest.approx(5.4)
    run_until(txn, 6.0)
    assert txn.state is State.TERMINATED


def test_server_invite_ack_over_reliable_terminates() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=True)
    txn.send_response(response(req, 603), 0.1)
    assert txn.timer_deadline(Timer.G) is None
    txn.receive(request("ACK"), 0.2)
    assert txn.state is State.TERMINATED


def test_server_invite_accepted_absorbs_invites_and_passes_2xx_and_ack() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=False)
    txn.next_events()
    ok = response(req, 200)
    txn.send_response(ok, 0.1)
    assert txn.state is State.ACCEPTED
    assert sent(txn) == [ok]
    # RFC 6026 7.1: the transaction does not retransmit the 2xx itself
    assert txn.next_timer() == pytest.approx(32.1)  # Timer L only
    txn.receive(req, 0.6)  # INVITE retransmission: absorbed
    assert sent(txn) == [] and txn.next_events() == []
    txn.send_response(ok, 0.6)  # the TU's own 2xx retransmission goes out
    assert sent(txn) == [ok]
    ack = request("ACK")
    txn.receive(ack, 0.7)  # RFC 6026 7.1: an ACK here is passed to the TU
    [event] = txn.next_events()
    assert isinstance(event, RequestReceived) and event.request is ack
    with pytest.raises(sip.LocalError):
        txn.send_response(response(req, 486), 0.8)
    run_until(txn, 40.0)
    assert txn.state is State.TERMINATED


def test_server_invite_illegal_moves_raise_local_error() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=False)
    txn.send_response(response(req, 486), 0.1)
    with pytest.raises(sip.LocalError):
        txn.send_response(response(req, 180), 0.2)
    with pytest.raises(sip.LocalError):
        txn.send_response(response(req, 200), 0.2)
    with pytest.raises(sip.LocalError):
        ServerInviteTransaction(request("OPTIONS"), 0.0, reliable=False)
    with pytest.raises(sip.LocalError):
        ServerNonInviteTransaction(request("ACK"), 0.0, reliable=False)


def test_server_invite_transport_error() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=True)
    txn.next_events()
    txn.send_response(response(req, 180), 0.1)
    txn.on_transport_error(0.1)
    assert txn.state is State.TERMINATED
    assert event_types(txn) == [TransportErrorOccurred, TransactionTerminated]


# -- server non-INVITE --------------------------------------------------------------


def test_server_non_invite_absorbs_then_resends_final_until_timer_j() -> None:
    req = request("OPTIONS")
    txn = ServerNonInviteTransaction(req, 0.0, reliable=False)
    assert event_types(txn) == [RequestReceived]
    txn.receive(req, 0.1)  # RFC 3261 17.2.2: discarded in Trying
    assert sent(txn) == [] and txn.next_events() == []
    ok = response(req, 200)
    txn.send_response(ok, 0.2)
    assert txn.state is State.COMPLETED
    assert sent(txn) == [ok]
    txn.receive(req, 0.5)
    assert sent(txn) == [ok]
    assert txn.next_timer() == pytest.approx(32.2)  # Timer J = 64*T1
    with pytest.raises(sip.LocalError):
        txn.send_response(response(req, 500), 0.6)
    run_until(txn, 40.0)
    assert txn.state is State.TERMINATED
    assert event_types(txn) == [TransactionTerminated]


def test_server_non_invite_proceeding_resends_provisional() -> None:
    req = request("SUBSCRIBE")
    txn = ServerNonInviteTransaction(req, 0.0, reliable=True)
    # RFC 4320 4.1: no provisional response other than 100 to a non-INVITE request
    with pytest.raises(sip.LocalError):
        txn.send_response(response(req, 183), 0.05)
    provisional = response(req, 100)
    txn.send_response(provisional, 0.1)
    assert txn.state is State.PROCEEDING
    sent(txn)
    txn.receive(req, 0.5)
    assert sent(txn) == [provisional]
    txn.send_response(response(req, 202), 0.7)
    assert txn.state is State.TERMINATED  # reliable: Timer J is zero


def test_server_refuses_a_response_to_another_request() -> None:
    txn = ServerNonInviteTransaction(request("OPTIONS"), 0.0, reliable=False)
    with pytest.raises(sip.LocalError):
        txn.send_response(response(request("OPTIONS", branch="z9hG4bKother"), 200), 0.1)
    with pytest.raises(sip.LocalError):
        txn.send_response(response(request("BYE"), 200), 0.1)
    assert txn.state is State.TRYING


def test_server_non_invite_reliable_terminates_on_final() -> None:
    req = request("OPTIONS")
    txn = ServerNonInviteTransaction(req, 0.0, reliable=True)
    txn.send_response(response(req, 200), 0.1)
    assert txn.state is State.TERMINATED


def test_late_transport_errors_are_discarded() -> None:
    req = request()
    txn = ServerInviteTransaction(req, 0.0, reliable=False)
    txn.send_response(response(req, 486), 0.1)
    txn.receive(request("ACK"), 0.2)
    assert txn.state is State.CONFIRMED
    txn.next_events()
    # the transport reports a failed 486 retransmission after the ACK came: nothing to do
    txn.on_transport_error(0.3)
    assert txn.state is State.CONFIRMED and txn.next_events() == []
    run_until(txn, 10.0)
    txn.on_transport_error(11.0)
    assert txn.state is State.TERMINATED


# -- properties over random event sequences -----------------------------------------

_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "recv_1xx",
                "recv_2xx",
                "recv_4xx",
                "recv_req",
                "recv_ack",
                "send_1xx",
                "send_2xx",
                "send_4xx",
                "error",
                "time",
            ]
        ),
        st.floats(min_value=0, max_value=10),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["ci", "cn", "si", "sn"]), st.booleans(), _OPS)
def test_random_inputs_keep_the_machines_sound(
    kind: str, reliable: bool, ops: list[tuple[str, float]]
) -> None:
    invite = kind in ("ci", "si")
    req = request("INVITE" if invite else "OPTIONS")
    txn: Transaction
    if kind == "ci":
        txn = ClientInviteTransaction(req, 0.0, reliable=reliable)
    elif kind == "cn":
        txn = ClientNonInviteTransaction(req, 0.0, reliable=reliable)
    elif kind == "si":
        txn = ServerInviteTransaction(req, 0.0, reliable=reliable)
    else:
        txn = ServerNonInviteTransaction(req, 0.0, reliable=reliable)
    client = kind.startswith("c")
    now = 0.0
    terminated = 0
    for op, delta in ops:
        if op == "time":
            now += delta
            txn.on_timer(now)
        elif op == "error":
            txn.on_transport_error(now)
        elif op.startswith("recv_") and client:
            if op in ("recv_1xx", "recv_2xx", "recv_4xx"):
                status = {"recv_1xx": 180, "recv_2xx": 200, "recv_4xx": 404}[op]
                txn.receive(response(req, status), now)  # type: ignore[arg-type]
        elif op in ("recv_req", "recv_ack") and not client:
            if op == "recv_ack" and not invite:
                continue
            txn.receive(request("ACK") if op == "recv_ack" else req, now)  # type: ignore[arg-type]
        elif op.startswith("send_") and not client:
            status = {"send_1xx": 100, "send_2xx": 200, "send_4xx": 404}[op]
            try:
                txn.send_response(response(req, status), now)  # type: ignore[attr-defined]
            except sip.LocalError:
                pass  # an illegal TU command, refused: the state is unchanged
        deadline = txn.next_timer()
        assert deadline is None or deadline >= now
        for event in txn.next_events():
            terminated += isinstance(event, TransactionTerminated)
        sent(txn)
        if txn.state is State.TERMINATED:
            assert txn.next_timer() is None
    assert terminated == (1 if txn.state is State.TERMINATED else 0)
    # every state the machine reached is one its table knows
    tables = {
        "ci": CLIENT_INVITE_TABLE,
        "cn": CLIENT_NON_INVITE_TABLE,
        "si": SERVER_INVITE_TABLE,
        "sn": SERVER_NON_INVITE_TABLE,
    }
    known = {state for state, _ in tables[kind]} | {row.next for row in tables[kind].values()}
    assert txn.state in known | {type(txn).INITIAL}
