"""SIP transactions (RFC 3261 section 17, with RFC 6026's fixes), sans-IO.

Four state machines, one class each: :class:`ClientInviteTransaction`,
:class:`ClientNonInviteTransaction`, :class:`ServerInviteTransaction` and
:class:`ServerNonInviteTransaction`. Each is a plain object driven by calls that carry
the current time (an injected clock; nothing here reads one):

* ``receive(message, now)``: a response (client) or a retransmitted request / ACK (server)
  that the :class:`TransactionLayer` matched to this transaction;
* ``send_response(response, now)``: the TU answers (server transactions);
* ``on_timer(now)``: call when ``now >= next_timer()``;
* ``on_transport_error(now)``: the transport could not send our last message.

Outputs are drained with ``messages_to_send()`` (each a :class:`Transmit` with the
destination the caller gave) and ``next_events()`` (``ResponseReceived``,
``RequestReceived``, ``TransactionTimedOut``, ``TransportErrorOccurred``,
``TransactionTerminated``). ``next_timer()`` is the absolute time of the earliest armed
timer, or None.

Every legal move is a row of the machine's ``TABLE``: ``(state, input) -> Row(next
state, actions, timers to stop, timers to start)``. The code only consults the table. A
command from our own TU that has no row (a second final response, say) raises
:class:`ivoz.sip.LocalError`; a network input or transport error without a row (a 1xx
arriving after the final response, an error about a retransmission the transaction has
moved past) is discarded, as RFC 3261 17.1.3 and 17.2.3 discard unmatched messages.

:class:`TransactionLayer` holds the transactions, matches incoming messages to them
(17.1.3, 17.2.3, with the RFC 2543 fallback), creates server transactions for new
requests, finds the INVITE a CANCEL refers to (9.2) and multiplexes the timers.

100 Trying: the INVITE server transaction sends it ``TimerConfig.trying_delay`` (200 ms)
after the INVITE arrived unless the TU has responded by then (RFC 3261 17.2.1); set the
delay to 0 to send it at once, as a proxy should (RFC 3261 16.2).
"""

from __future__ import annotations

import enum
import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import ClassVar

from ivoz.sip.errors import LocalError, RemoteError
from ivoz.sip.headers import Headers
from ivoz.sip.message import Request, Response, make_response
from ivoz.sip.timers import TimerConfig
from ivoz.sip.values import MAGIC_COOKIE

__all__ = [
    "Action",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ClientTransaction",
    "Event",
    "Input",
    "RequestReceived",
    "ResponseReceived",
    "Row",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "ServerTransaction",
    "State",
    "StrayResponseReceived",
    "Timer",
    "Transaction",
    "TransactionKey",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "Transmit",
    "TransportErrorOccurred",
    "make_cancel",
]


class State(enum.Enum):
    """Transaction states (RFC 3261 figures 5-8, RFC 6026 figures 3 and 5)."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Timer(enum.Enum):
    """RFC 3261 Table 4 timers, RFC 6026's L and M, and the 100 Trying delay (17.2.1)."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "100 Trying"


class Input(enum.Enum):
    """What can happen to a transaction: network input, TU command, timer, transport."""

    PROVISIONAL = "1xx received"
    SUCCESS = "2xx received"
    FAILURE = "300-699 received"
    REQUEST = "request retransmission received"
    ACK = "ACK received"
    SEND_PROVISIONAL = "TU sends 1xx"
    SEND_SUCCESS = "TU sends 2xx"
    SEND_FAILURE = "TU sends 300-699"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "Timer A fires"
    TIMER_B = "Timer B fires"
    TIMER_D = "Timer D fires"
    TIMER_E = "Timer E fires"
    TIMER_F = "Timer F fires"
    TIMER_G = "Timer G fires"
    TIMER_H = "Timer H fires"
    TIMER_I = "Timer I fires"
    TIMER_J = "Timer J fires"
    TIMER_K = "Timer K fires"
    TIMER_L = "Timer L fires"
    TIMER_M = "Timer M fires"
    TIMER_TRYING = "100 Trying delay ends"


_TIMER_INPUT: dict[Timer, Input] = {
    timer: Input["TIMER_" + timer.name] for timer in Timer if timer is not Timer.TRYING
}
_TIMER_INPUT[Timer.TRYING] = Input.TIMER_TRYING
# What the network and the transport do to us: without a row, these are discarded (a
# late response, a transport error about a message the transaction has moved past)
_DISCARDABLE = frozenset(
    {
        Input.PROVISIONAL,
        Input.SUCCESS,
        Input.FAILURE,
        Input.REQUEST,
        Input.ACK,
        Input.TRANSPORT_ERROR,
    }
)


class Action(enum.Enum):
    """What a row does, in order, before it moves to the next state."""

    PASS_TO_TU = "pass to TU"
    RETRANSMIT_REQUEST = "retransmit request"
    SEND_ACK = "send ACK"
    RESEND_ACK = "resend ACK"
    SEND_RESPONSE = "send response"
    RESEND_RESPONSE = "resend last response"
    SEND_TRYING = "send 100 Trying"
    REPORT_TIMEOUT = "inform TU: timeout"
    REPORT_TRANSPORT_ERROR = "inform TU: transport error"


class Interval(enum.Enum):
    """How a (re)started timer gets its duration."""

    INITIAL = "initial"  # the RFC 3261 Table 4 value
    DOUBLE = "2x"  # RFC 3261 17.1.1.2: Timer A doubles without bound
    DOUBLE_CAP_T2 = "min(2x, T2)"  # RFC 3261 17.1.2.2 (E), 17.2.1 (G)
    T2 = "T2"  # RFC 3261 17.1.2.2: Timer E in Proceeding is reset to T2


@dataclass(frozen=True, slots=True)
class Row:
    """One legal move: the next state, actions, timers stopped and then started."""

    next: State
    actions: tuple[Action, ...] = ()
    stop: tuple[Timer, ...] = ()
    start: tuple[tuple[Timer, Interval], ...] = ()


_Table = Mapping[tuple[State, Input], Row]

S = State
I = Input  # noqa: E741
A = Action
T = Timer
_INITIAL = Interval.INITIAL

# RFC 3261 17.1.1 (figure 5) as amended by RFC 6026 7.2 (figure 5: "Accepted" state)
CLIENT_INVITE_TABLE: _Table = {
    # RFC 3261 17.1.1.2: Timer A fires: retransmit, and reset with twice the value
    (S.CALLING, I.TIMER_A): Row(
        S.CALLING, (A.RETRANSMIT_REQUEST,), start=((T.A, Interval.DOUBLE),)
    ),
    # RFC 3261 17.1.1.2: Timer B fires in Calling: inform the TU of the timeout
    (S.CALLING, I.TIMER_B): Row(S.TERMINATED, (A.REPORT_TIMEOUT,)),
    # RFC 3261 17.1.1.2: a provisional response moves to Proceeding; stop retransmitting
    (S.CALLING, I.PROVISIONAL): Row(S.PROCEEDING, (A.PASS_TO_TU,), stop=(T.A, T.B)),
    # RFC 6026 7.2: a 2xx moves to Accepted and starts Timer M
    (S.CALLING, I.SUCCESS): Row(
        S.ACCEPTED, (A.PASS_TO_TU,), stop=(T.A, T.B), start=((T.M, _INITIAL),)
    ),
    # RFC 3261 17.1.1.2: 300-699: pass up, send ACK, Completed, start Timer D
    (S.CALLING, I.FAILURE): Row(
        S.COMPLETED, (A.PASS_TO_TU, A.SEND_ACK), stop=(T.A, T.B), start=((T.D, _INITIAL),)
    ),
    # RFC 3261 17.1.4: a transport failure informs the TU and terminates
    (S.CALLING, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.1.1.2: further provisional responses go to the TU
    (S.PROCEEDING, I.PROVISIONAL): Row(S.PROCEEDING, (A.PASS_TO_TU,)),
    (S.PROCEEDING, I.SUCCESS): Row(S.ACCEPTED, (A.PASS_TO_TU,), start=((T.M, _INITIAL),)),
    (S.PROCEEDING, I.FAILURE): Row(
        S.COMPLETED, (A.PASS_TO_TU, A.SEND_ACK), start=((T.D, _INITIAL),)
    ),
    (S.PROCEEDING, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.1.1.2: a retransmitted final response re-sends the ACK, not passed up
    (S.COMPLETED, I.FAILURE): Row(S.COMPLETED, (A.RESEND_ACK,)),
    (S.COMPLETED, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.1.1.2: Timer D fires: Terminated
    (S.COMPLETED, I.TIMER_D): Row(S.TERMINATED),
    # RFC 6026 7.2: 2xx retransmissions and 2xx from other forks go to the TU
    (S.ACCEPTED, I.SUCCESS): Row(S.ACCEPTED, (A.PASS_TO_TU,)),
    # RFC 6026 7.2: Timer M fires: Terminated
    (S.ACCEPTED, I.TIMER_M): Row(S.TERMINATED),
}

# RFC 3261 17.1.2 (figure 6)
_CNI_FINAL = Row(S.COMPLETED, (A.PASS_TO_TU,), stop=(T.E, T.F), start=((T.K, _INITIAL),))
CLIENT_NON_INVITE_TABLE: _Table = {
    # RFC 3261 17.1.2.2: Timer E fires in Trying: retransmit, E = min(2E, T2)
    (S.TRYING, I.TIMER_E): Row(
        S.TRYING, (A.RETRANSMIT_REQUEST,), start=((T.E, Interval.DOUBLE_CAP_T2),)
    ),
    # RFC 3261 17.1.2.2: Timer F fires: inform the TU of the timeout
    (S.TRYING, I.TIMER_F): Row(S.TERMINATED, (A.REPORT_TIMEOUT,)),
    (S.TRYING, I.PROVISIONAL): Row(S.PROCEEDING, (A.PASS_TO_TU,)),
    # RFC 3261 17.1.2.2: a final response moves to Completed and starts Timer K
    (S.TRYING, I.SUCCESS): _CNI_FINAL,
    (S.TRYING, I.FAILURE): _CNI_FINAL,
    (S.TRYING, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.1.2.2: Timer E fires in Proceeding: retransmit, E = T2
    (S.PROCEEDING, I.TIMER_E): Row(
        S.PROCEEDING, (A.RETRANSMIT_REQUEST,), start=((T.E, Interval.T2),)
    ),
    (S.PROCEEDING, I.TIMER_F): Row(S.TERMINATED, (A.REPORT_TIMEOUT,)),
    (S.PROCEEDING, I.PROVISIONAL): Row(S.PROCEEDING, (A.PASS_TO_TU,)),
    (S.PROCEEDING, I.SUCCESS): _CNI_FINAL,
    (S.PROCEEDING, I.FAILURE): _CNI_FINAL,
    (S.PROCEEDING, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.1.2.2: response retransmissions in Completed are buffered (absorbed)
    (S.COMPLETED, I.PROVISIONAL): Row(S.COMPLETED),
    (S.COMPLETED, I.SUCCESS): Row(S.COMPLETED),
    (S.COMPLETED, I.FAILURE): Row(S.COMPLETED),
    # RFC 3261 17.1.2.2: Timer K fires: Terminated
    (S.COMPLETED, I.TIMER_K): Row(S.TERMINATED),
}

# RFC 3261 17.2.1 (figure 7) as amended by RFC 6026 7.1 (figure 3: "Accepted" state)
SERVER_INVITE_TABLE: _Table = {
    # RFC 3261 17.2.1: 100 Trying unless the TU answered within 200 ms
    (S.PROCEEDING, I.TIMER_TRYING): Row(S.PROCEEDING, (A.SEND_TRYING,)),
    # RFC 3261 17.2.1: a request retransmission re-sends the most recent provisional response
    (S.PROCEEDING, I.REQUEST): Row(S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, I.SEND_PROVISIONAL): Row(S.PROCEEDING, (A.SEND_RESPONSE,), stop=(T.TRYING,)),
    # RFC 6026 7.1: a 2xx from the TU moves to Accepted and starts Timer L
    (S.PROCEEDING, I.SEND_SUCCESS): Row(
        S.ACCEPTED, (A.SEND_RESPONSE,), stop=(T.TRYING,), start=((T.L, _INITIAL),)
    ),
    # RFC 3261 17.2.1: 300-699 moves to Completed; Timer G (unreliable) and Timer H
    (S.PROCEEDING, I.SEND_FAILURE): Row(
        S.COMPLETED,
        (A.SEND_RESPONSE,),
        stop=(T.TRYING,),
        start=((T.G, _INITIAL), (T.H, _INITIAL)),
    ),
    # RFC 3261 17.2.4: transport failure informs the TU and terminates
    (S.PROCEEDING, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.2.1: request retransmissions in Completed re-send the final response
    (S.COMPLETED, I.REQUEST): Row(S.COMPLETED, (A.RESEND_RESPONSE,)),
    # RFC 3261 17.2.1: Timer G fires: re-send, G = min(2G, T2)
    (S.COMPLETED, I.TIMER_G): Row(
        S.COMPLETED, (A.RESEND_RESPONSE,), start=((T.G, Interval.DOUBLE_CAP_T2),)
    ),
    # RFC 3261 17.2.1: Timer H fires: the ACK never came; inform the TU
    (S.COMPLETED, I.TIMER_H): Row(S.TERMINATED, (A.REPORT_TIMEOUT,)),
    # RFC 3261 17.2.1: the ACK moves to Confirmed and starts Timer I; G is ignored
    (S.COMPLETED, I.ACK): Row(S.CONFIRMED, stop=(T.G, T.H), start=((T.I, _INITIAL),)),
    (S.COMPLETED, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.2.1: ACK retransmissions in Confirmed are absorbed
    (S.CONFIRMED, I.ACK): Row(S.CONFIRMED),
    (S.CONFIRMED, I.REQUEST): Row(S.CONFIRMED),
    # RFC 3261 17.2.1: Timer I fires: Terminated
    (S.CONFIRMED, I.TIMER_I): Row(S.TERMINATED),
    # RFC 6026 7.1: INVITE retransmissions in Accepted are absorbed
    (S.ACCEPTED, I.REQUEST): Row(S.ACCEPTED),
    # RFC 6026 7.1: an ACK in Accepted is passed to the TU
    (S.ACCEPTED, I.ACK): Row(S.ACCEPTED, (A.PASS_TO_TU,)),
    # RFC 6026 7.1: 2xx retransmissions from the TU go to the transport
    (S.ACCEPTED, I.SEND_SUCCESS): Row(S.ACCEPTED, (A.SEND_RESPONSE,)),
    (S.ACCEPTED, I.TRANSPORT_ERROR): Row(S.ACCEPTED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 6026 7.1: Timer L fires: Terminated
    (S.ACCEPTED, I.TIMER_L): Row(S.TERMINATED),
}

# RFC 3261 17.2.2 (figure 8)
_SNI_FINAL = Row(S.COMPLETED, (A.SEND_RESPONSE,), start=((T.J, _INITIAL),))
SERVER_NON_INVITE_TABLE: _Table = {
    # RFC 3261 17.2.2: retransmissions in Trying are discarded
    (S.TRYING, I.REQUEST): Row(S.TRYING),
    (S.TRYING, I.SEND_PROVISIONAL): Row(S.PROCEEDING, (A.SEND_RESPONSE,)),
    # RFC 3261 17.2.2: a final response moves to Completed and starts Timer J
    (S.TRYING, I.SEND_SUCCESS): _SNI_FINAL,
    (S.TRYING, I.SEND_FAILURE): _SNI_FINAL,
    # RFC 3261 17.2.2: retransmissions in Proceeding re-send the last provisional response
    (S.PROCEEDING, I.REQUEST): Row(S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, I.SEND_PROVISIONAL): Row(S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.SEND_SUCCESS): _SNI_FINAL,
    (S.PROCEEDING, I.SEND_FAILURE): _SNI_FINAL,
    (S.PROCEEDING, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.2.2: retransmissions in Completed re-send the final response
    (S.COMPLETED, I.REQUEST): Row(S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, I.TRANSPORT_ERROR): Row(S.TERMINATED, (A.REPORT_TRANSPORT_ERROR,)),
    # RFC 3261 17.2.2: Timer J fires: Terminated
    (S.COMPLETED, I.TIMER_J): Row(S.TERMINATED),
}

del S, I, A, T


# -- events and outputs -------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Transmit:
    """A message for the transport; ``destination`` is what the caller attached."""

    message: Request | Response
    destination: object


@dataclass(frozen=True, slots=True, eq=False)
class ResponseReceived:
    """A client transaction passes a response up to its TU."""

    transaction: ClientTransaction
    response: Response


@dataclass(frozen=True, slots=True, eq=False)
class RequestReceived:
    """A request for the TU: a new server transaction's request, or an ACK.

    ``transaction`` is None for an ACK that matched no transaction (the ACK for a 2xx,
    RFC 3261 17.2.3 / 13.3.1.4), which the TU (the dialog layer) handles itself.
    """

    transaction: ServerTransaction | None
    request: Request
    source: object = None


@dataclass(frozen=True, slots=True, eq=False)
class StrayResponseReceived:
    """A response that matched no client transaction (RFC 3261 18.1.2 / 16.7 step 1)."""

    response: Response
    source: object = None


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTimedOut:
    """Timer B, F or H fired: the transaction gave up (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1)."""

    transaction: Transaction
    timer: Timer


@dataclass(frozen=True, slots=True, eq=False)
class TransportErrorOccurred:
    """The transport could not deliver the transaction's message (RFC 3261 17.1.4, 17.2.4)."""

    transaction: Transaction


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTerminated:
    """The transaction reached Terminated; the layer forgets it."""

    transaction: Transaction


Event = (
    ResponseReceived
    | RequestReceived
    | StrayResponseReceived
    | TransactionTimedOut
    | TransportErrorOccurred
    | TransactionTerminated
)


# -- matching keys ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """RFC 3261 17.1.3 / 17.2.3 matching key for branches with the magic cookie.

    Client transactions match on (branch, CSeq method); server transactions on (branch,
    sent-by, method) where an ACK's method counts as INVITE.
    """

    server: bool
    branch: str
    method: str
    host: str = ""
    port: int | None = None


@dataclass(frozen=True, slots=True)
class _LegacyKey:
    """RFC 3261 17.2.3 fallback for RFC 2543 requests (no magic cookie)."""

    request_uri: str
    from_tag: str | None
    call_id: str
    seq: int
    via: str


def _server_key(request: Request) -> TransactionKey | None:
    via = request.via
    branch = via.branch
    if branch is None or not branch.startswith(MAGIC_COOKIE):
        return None
    # RFC 3261 17.2.3: the method matches, except for ACK, where the INVITE is matched
    method = "INVITE" if request.method == "ACK" else request.method
    host, port = via.sent_by
    return TransactionKey(True, branch, method, host.lower(), port)


def _client_key(branch: str, method: str) -> TransactionKey:
    return TransactionKey(False, branch, method)


def _legacy_key(request: Request) -> _LegacyKey:
    # RFC 3261 17.2.3: Request-URI, From tag, Call-ID, CSeq number and top Via; the To
    # tag and method are compared separately because ACK and CANCEL differ there
    return _LegacyKey(
        request.request_uri,
        request.from_tag,
        request.call_id,
        request.cseq.seq,
        str(request.via),
    )


# -- the transactions ---------------------------------------------------------------


def _top_via_text(request: Request) -> str:
    vias = request.headers.get_all("Via")
    if not vias:
        raise LocalError("request has no Via")
    return vias[0]


def _build_ack(request: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 17.1.1.3)."""
    headers = Headers()
    # RFC 3261 17.1.1.3: one Via, equal to the top Via of the original request
    headers.add("Via", _top_via_text(request))
    # RFC 3261 17.1.1.3: Route headers of the original request
    for route in request.headers.get_lines("Route"):
        headers.add("Route", route)
    # RFC 3261 8.1.1.6: Max-Forwards
    headers.add("Max-Forwards", "70")
    # RFC 3261 17.1.1.3: From and Call-ID as the request; To as the response (with its tag)
    headers.add("From", request.headers.get("From") or "")
    to = response.headers.get("To")
    headers.add("To", to if to is not None else request.headers.get("To") or "")
    headers.add("Call-ID", request.call_id)
    # RFC 3261 17.1.1.3: CSeq number of the original request, method ACK
    headers.add("CSeq", f"{request.cseq.seq} ACK")
    # RFC 3261 17.1.1.3: Request-URI equal to that of the original request
    return Request("ACK", request.request_uri, headers)


def make_cancel(request: Request) -> Request:
    """The CANCEL for ``request`` (RFC 3261 9.1), to be sent in its own client transaction."""
    if request.method in ("ACK", "CANCEL"):
        # RFC 3261 9.1: CANCEL for ACK or CANCEL must not be sent
        raise LocalError(f"cannot cancel a {request.method}")
    headers = Headers()
    # RFC 3261 9.1: a single Via equal to the top Via of the request being cancelled
    headers.add("Via", _top_via_text(request))
    for route in request.headers.get_lines("Route"):
        # RFC 3261 9.1: the Route headers of the original request
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    # RFC 3261 9.1: Request-URI, Call-ID, To, From and CSeq number as the request
    for name in ("From", "To", "Call-ID"):
        value = request.headers.get(name)
        if value is None:
            raise LocalError(f"request has no {name}")
        headers.add(name, value)
    headers.add("CSeq", f"{request.cseq.seq} CANCEL")
    return Request("CANCEL", request.request_uri, headers)


@functools.lru_cache(maxsize=64)
def _initial_durations(config: TimerConfig, reliable: bool) -> dict[Timer, float]:
    """RFC 3261 Table 4 (and RFC 6026 L, M) for one configuration and transport kind."""
    c = config
    return {
        Timer.A: c.a(),
        Timer.B: c.b(),
        Timer.D: c.d(reliable),
        Timer.E: c.e(),
        Timer.F: c.f(),
        Timer.G: c.g(),
        Timer.H: c.h(),
        Timer.I: c.i(reliable),
        Timer.J: c.j(reliable),
        Timer.K: c.k(reliable),
        Timer.L: c.l(),
        Timer.M: c.m(),
        Timer.TRYING: c.trying_delay,
    }


class Transaction:
    """What the four machines share: table lookup, timers, output queues."""

    TABLE: ClassVar[_Table]
    INITIAL: ClassVar[State]
    #: timers that only run over unreliable transports (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1)
    RETRANSMIT_TIMERS: ClassVar[frozenset[Timer]] = frozenset({Timer.A, Timer.E, Timer.G})

    request: Request
    last_response: Response | None

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        peer: object = None,
        config: TimerConfig | None = None,
    ) -> None:
        self.request = request
        self.reliable = reliable
        self.peer = peer
        self.config = config if config is not None else TimerConfig()
        self._state = self.INITIAL
        self.last_response = None
        self._timers: dict[Timer, float] = {}
        self._intervals: dict[Timer, float] = {}
        self._messages: list[Transmit] = []
        self._events: list[Event] = []
        self._ack: Request | None = None

    # -- public -------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def terminated(self) -> bool:
        return self._state is State.TERMINATED

    @property
    def branch(self) -> str | None:
        return self.request.via.branch

    def next_timer(self) -> float | None:
        """The absolute time the earliest armed timer fires, or None."""
        return min(self._timers.values(), default=None)

    def timer_deadline(self, timer: Timer) -> float | None:
        """When ``timer`` fires, or None if it is not armed."""
        return self._timers.get(timer)

    def on_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        while self._timers:
            timer, deadline = min(self._timers.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self._timers[timer]
            self._apply(_TIMER_INPUT[timer], now, None)

    def on_transport_error(self, now: float) -> None:
        """The transport failed to send this transaction's message."""
        self._apply(Input.TRANSPORT_ERROR, now, None)

    def messages_to_send(self) -> list[Transmit]:
        out, self._messages = self._messages, []
        return out

    def next_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    # -- the engine ---------------------------------------------------------------

    def _apply(self, what: Input, now: float, message: Request | Response | None) -> None:
        row = self.TABLE.get((self.state, what))
        if row is None:
            if what in _DISCARDABLE:
                return  # RFC 3261 17.1.3 / 17.2.3: nothing to do with it: discard
            raise LocalError(
                f"{type(self).__name__}: {what.value} is illegal in {self.state.value}"
            )
        for timer in row.stop:
            self._timers.pop(timer, None)
        for action in row.actions:
            self._act(action, what, now, message)
        for timer, interval in row.start:
            self._start(timer, interval, now)
        self._enter(row.next)
        self._fire_due(now)

    def _fire_due(self, now: float) -> None:
        # Zero-length timers (D, I, J, K over reliable transports) fire at once.
        if self._timers and min(self._timers.values()) <= now:
            self.on_timer(now)

    def _enter(self, state: State) -> None:
        if state is self._state:
            return
        self._state = state
        if state is State.TERMINATED:
            self._timers.clear()
            self._events.append(TransactionTerminated(self))

    def _initial(self, timer: Timer) -> float:
        return _initial_durations(self.config, self.reliable)[timer]

    def _start(self, timer: Timer, interval: Interval, now: float) -> None:
        if self.reliable and timer in self.RETRANSMIT_TIMERS:
            return  # RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1: only for unreliable transports
        if interval is Interval.INITIAL:
            value = self._initial(timer)
        elif interval is Interval.DOUBLE:
            value = 2 * self._intervals.get(timer, self._initial(timer))
        elif interval is Interval.DOUBLE_CAP_T2:
            value = min(2 * self._intervals.get(timer, self._initial(timer)), self.config.t2)
        else:
            value = self.config.t2
        self._intervals[timer] = value
        self._timers[timer] = now + value

    def _send(self, message: Request | Response) -> None:
        self._messages.append(Transmit(message, self.peer))

    def _act(
        self, action: Action, what: Input, now: float, message: Request | Response | None
    ) -> None:
        if action is Action.REPORT_TIMEOUT:
            timer = next(t for t, i in _TIMER_INPUT.items() if i is what)
            self._events.append(TransactionTimedOut(self, timer))
        elif action is Action.REPORT_TRANSPORT_ERROR:
            self._events.append(TransportErrorOccurred(self))
        elif action is Action.RETRANSMIT_REQUEST:
            self._send(self.request)
        else:
            self._act_specific(action, message)

    def _act_specific(self, action: Action, message: Request | Response | None) -> None:
        raise LocalError(f"{type(self).__name__} cannot {action.value}")


class ClientTransaction(Transaction):
    """A client transaction: sends ``request`` (to ``peer``) as soon as it is created."""

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        reliable: bool,
        peer: object = None,
        config: TimerConfig | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, peer=peer, config=config)
        branch = request.via.branch
        if not branch or not branch.startswith(MAGIC_COOKIE):
            # RFC 3261 8.1.1.7: our requests carry a branch with the magic cookie
            raise LocalError("a client transaction needs a Via branch with the magic cookie")
        if (request.method == "INVITE") != self.METHOD_INVITE:
            raise LocalError(f"{type(self).__name__} cannot carry a {request.method}")
        if request.method == "ACK":
            raise LocalError("ACK is not sent in a transaction (RFC 3261 17.1)")
        self.key = _client_key(branch, request.method)
        self._send(request)
        self._begin(now)

    METHOD_INVITE: ClassVar[bool]

    def _begin(self, now: float) -> None:
        raise NotImplementedError

    def receive(self, response: Response, now: float) -> None:
        """A response the layer matched to this transaction (RFC 3261 17.1.3)."""
        if not isinstance(response, Response):
            raise LocalError("client transactions receive responses")
        if response.status < 200:
            what = Input.PROVISIONAL
        elif response.status < 300:
            what = Input.SUCCESS
        else:
            what = Input.FAILURE
        self._apply(what, now, response)

    def _act_specific(self, action: Action, message: Request | Response | None) -> None:
        if action is Action.PASS_TO_TU:
            assert isinstance(message, Response)
            self.last_response = message
            self._events.append(ResponseReceived(self, message))
        elif action is Action.SEND_ACK:
            assert isinstance(message, Response)
            self._ack = _build_ack(self.request, message)
            self._send(self._ack)
        elif action is Action.RESEND_ACK:
            if self._ack is not None:
                self._send(self._ack)
        else:
            super()._act_specific(action, message)


class ClientInviteTransaction(ClientTransaction):
    """RFC 3261 17.1.1 with RFC 6026 7.2."""

    TABLE = CLIENT_INVITE_TABLE
    INITIAL = State.CALLING
    METHOD_INVITE = True

    def _begin(self, now: float) -> None:
        # RFC 3261 17.1.1.2: start Timer A (unreliable only) and Timer B
        self._start(Timer.A, Interval.INITIAL, now)
        self._start(Timer.B, Interval.INITIAL, now)

    @property
    def cancellable(self) -> bool:
        """Whether a CANCEL may go out now (RFC 3261 9.1).

        Not before a provisional response arrived (the CANCEL could overtake the INVITE)
        and not after a final one.
        """
        return self.state is State.PROCEEDING

    @property
    def ack(self) -> Request | None:
        """The ACK this transaction generated for a non-2xx final response."""
        return self._ack


class ClientNonInviteTransaction(ClientTransaction):
    """RFC 3261 17.1.2."""

    TABLE = CLIENT_NON_INVITE_TABLE
    INITIAL = State.TRYING
    METHOD_INVITE = False

    def _begin(self, now: float) -> None:
        # RFC 3261 17.1.2.2: Timer F, and Timer E (unreliable only)
        self._start(Timer.E, Interval.INITIAL, now)
        self._start(Timer.F, Interval.INITIAL, now)


class ServerTransaction(Transaction):
    """A server transaction, created for a request the layer did not match."""

    METHOD_INVITE: ClassVar[bool]

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        reliable: bool,
        peer: object = None,
        config: TimerConfig | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, peer=peer, config=config)
        if request.method == "ACK":
            raise LocalError("ACK does not create a server transaction (RFC 3261 17.2.3)")
        # RFC 3261 8.2.6.2: every response copies From, To, Call-ID and CSeq; a request
        # without them (RFC 4475 3.1.2.18) gets no transaction and no answer
        for name in ("From", "To", "Call-ID", "CSeq"):
            if name not in request.headers:
                raise RemoteError(400, f"Missing {name} header", respondable=False)
        if (request.method == "INVITE") != self.METHOD_INVITE:
            raise LocalError(f"{type(self).__name__} cannot carry a {request.method}")
        self.key: TransactionKey | None = _server_key(request)
        self._last_provisional: Response | None = None
        self._events.append(RequestReceived(self, request, peer))
        self._begin(now)

    def _begin(self, now: float) -> None:
        pass

    def receive(self, request: Request, now: float) -> None:
        """A retransmission of the request, or an ACK, matched to this transaction."""
        if not isinstance(request, Request):
            raise LocalError("server transactions receive requests")
        what = Input.ACK if request.method == "ACK" else Input.REQUEST
        self._apply(what, now, request)

    def send_response(self, response: Response, now: float) -> None:
        """The TU answers the request; raises LocalError when the state forbids it."""
        if response.status < 200:
            what = Input.SEND_PROVISIONAL
        elif response.status < 300:
            what = Input.SEND_SUCCESS
        else:
            what = Input.SEND_FAILURE
        if response.status in range(101, 200) and not self.METHOD_INVITE:
            # RFC 4320 4.1: no provisional response other than 100 to a non-INVITE request
            raise LocalError("a non-INVITE request gets no provisional response but 100")
        request = self.request
        if (
            response.cseq != request.cseq
            or response.via.branch != request.via.branch
            or response.call_id != request.call_id
        ):
            # RFC 3261 8.2.6.2: the response copies Via, Call-ID and CSeq of its request
            raise LocalError("this response does not answer this transaction's request")
        self._apply(what, now, response)

    def _act_specific(self, action: Action, message: Request | Response | None) -> None:
        if action is Action.PASS_TO_TU:
            assert isinstance(message, Request)
            self._events.append(RequestReceived(self, message, self.peer))
        elif action is Action.SEND_RESPONSE:
            assert isinstance(message, Response)
            self.last_response = message
            if message.status < 200:
                self._last_provisional = message
            self._send(message)
        elif action is Action.RESEND_RESPONSE:
            if self.last_response is not None:
                self._send(self.last_response)
        elif action is Action.SEND_TRYING:
            trying = make_response(self.request, 100, "Trying")
            self.last_response = trying
            self._send(trying)
        else:
            super()._act_specific(action, message)


class ServerInviteTransaction(ServerTransaction):
    """RFC 3261 17.2.1 with RFC 6026 7.1."""

    TABLE = SERVER_INVITE_TABLE
    INITIAL = State.PROCEEDING
    METHOD_INVITE = True

    def _begin(self, now: float) -> None:
        # RFC 3261 17.2.1: 100 Trying after 200 ms unless the TU responds first
        self._start(Timer.TRYING, Interval.INITIAL, now)
        self._fire_due(now)


class ServerNonInviteTransaction(ServerTransaction):
    """RFC 3261 17.2.2."""

    TABLE = SERVER_NON_INVITE_TABLE
    INITIAL = State.TRYING
    METHOD_INVITE = False


# -- the layer ----------------------------------------------------------------------


class TransactionLayer:
    """The transaction table: matching, creation of server transactions, timers.

    Drive it like a single transaction: ``receive(message, now, reliable=..., source=...)``
    for everything parsed off the wire; ``send_request(...)`` to start a client
    transaction; ``send_response(transaction, response, now)``; ``on_timer(now)`` when
    ``next_timer()`` is due; then drain ``messages_to_send()`` and ``next_events()``.
    """

    def __init__(self, config: TimerConfig | None = None) -> None:
        self.config = config if config is not None else TimerConfig()
        self._by_key: dict[TransactionKey, Transaction] = {}
        self._legacy: dict[_LegacyKey, list[ServerTransaction]] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        # id(transaction) -> (deadline, sequence) of its one live heap entry
        self._armed: dict[int, tuple[float, int]] = {}
        self._seq = itertools.count()
        self._messages: list[Transmit] = []
        self._events: list[Event] = []

    def __len__(self) -> int:
        """How many transactions are live."""
        return len(self._by_key) + sum(len(txns) for txns in self._legacy.values())

    # -- commands -----------------------------------------------------------------

    def send_request(
        self, request: Request, now: float, *, reliable: bool, destination: object = None
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` (anything but ACK)."""
        txn: ClientTransaction
        if request.method == "INVITE":
            txn = ClientInviteTransaction(
                request, now, reliable=reliable, peer=destination, config=self.config
            )
        else:
            txn = ClientNonInviteTransaction(
                request, now, reliable=reliable, peer=destination, config=self.config
            )
        if txn.key in self._by_key:
            raise LocalError("a client transaction with this branch and method exists")
        self._by_key[txn.key] = txn
        self._collect(txn)
        return txn

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        transaction.send_response(response, now)
        self._collect(transaction)

    def transport_error(self, transaction: Transaction, now: float) -> None:
        transaction.on_transport_error(now)
        self._collect(transaction)

    def receive(
        self, message: Request | Response, now: float, *, reliable: bool, source: object = None
    ) -> None:
        """Route a parsed message; may raise RemoteError if its essential headers are bad."""
        if isinstance(message, Response):
            self._receive_response(message, now, source)
        else:
            self._receive_request(message, now, reliable, source)

    def next_timer(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, seq, txn = heap[0]
            if self._armed.get(id(txn)) == (deadline, seq):
                return deadline
            heappop(heap)  # stale entry: the transaction re-armed or ended since
        return None

    def on_timer(self, now: float) -> None:
        while True:
            deadline = self.next_timer()
            if deadline is None or deadline > now:
                return
            _, _, txn = heappop(self._heap)
            self._armed.pop(id(txn), None)
            txn.on_timer(now)
            self._collect(txn)

    def messages_to_send(self) -> list[Transmit]:
        out, self._messages = self._messages, []
        return out

    def next_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    # -- lookups ------------------------------------------------------------------

    def find_server(self, request: Request) -> ServerTransaction | None:
        """The server transaction ``request`` belongs to (RFC 3261 17.2.3)."""
        key = _server_key(request)
        if key is not None:
            txn = self._by_key.get(key)
            return txn if isinstance(txn, ServerTransaction) else None
        for txn in self._legacy.get(_legacy_key(request), ()):
            if request.method == "ACK":
                # RFC 3261 17.2.3: the ACK's To tag equals the tag of our response
                sent = txn.last_response
                if (
                    txn.request.method == "INVITE"
                    and sent is not None
                    and sent.to_tag == request.to_tag
                ):
                    return txn
            elif txn.request.method == request.method and txn.request.to_tag == request.to_tag:
                return txn
        return None

    def find_client(self, response: Response) -> ClientTransaction | None:
        """The client transaction ``response`` belongs to (RFC 3261 17.1.3)."""
        branch = response.via.branch
        if branch is None:
            return None
        txn = self._by_key.get(_client_key(branch, response.cseq.method))
        return txn if isinstance(txn, ClientTransaction) else None

    def find_cancelled(self, cancel: Request) -> ServerInviteTransaction | None:
        """The INVITE server transaction a CANCEL refers to (RFC 3261 9.2), in any state."""
        if cancel.method != "CANCEL":
            raise LocalError("find_cancelled takes a CANCEL")
        key = _server_key(cancel)
        if key is not None:
            # RFC 3261 9.2: matched as in 17.2.3, but against the INVITE's transaction
            txn = self._by_key.get(TransactionKey(True, key.branch, "INVITE", key.host, key.port))
            return txn if isinstance(txn, ServerInviteTransaction) else None
        for txn in self._legacy.get(_legacy_key(cancel), ()):
            # RFC 3261 9.2: To tag compared too; the method is ignored
            if isinstance(txn, ServerInviteTransaction) and txn.request.to_tag == cancel.to_tag:
                return txn
        return None

    # -- internals ----------------------------------------------------------------

    def _receive_response(self, response: Response, now: float, source: object) -> None:
        txn = self.find_client(response)
        if txn is None:
            self._events.append(StrayResponseReceived(response, source))
            return
        txn.receive(response, now)
        self._collect(txn)

    def _receive_request(
        self, request: Request, now: float, reliable: bool, source: object
    ) -> None:
        if request.cseq.method != request.method:
            raise RemoteError(400, "CSeq method does not match the request method")
        txn = self.find_server(request)
        if txn is not None:
            txn.receive(request, now)
            self._collect(txn)
            return
        if request.method == "ACK":
            # RFC 3261 17.2.3 / 13.3.1.4: the ACK for a 2xx goes straight to the TU
            self._events.append(RequestReceived(None, request, source))
            return
        new: ServerTransaction
        if request.method == "INVITE":
            new = ServerInviteTransaction(
                request, now, reliable=reliable, peer=source, config=self.config
            )
        else:
            new = ServerNonInviteTransaction(
                request, now, reliable=reliable, peer=source, config=self.config
            )
        if new.key is not None:
            self._by_key[new.key] = new
        else:
            self._legacy.setdefault(_legacy_key(request), []).append(new)
        self._collect(new)

    def _collect(self, txn: Transaction) -> None:
        self._messages.extend(txn.messages_to_send())
        self._events.extend(txn.next_events())
        if txn.terminated:
            self._forget(txn)
            return
        deadline = txn.next_timer()
        if deadline is None:
            self._armed.pop(id(txn), None)
            return
        live = self._armed.get(id(txn))
        if live is not None and live[0] == deadline:
            return
        seq = next(self._seq)
        self._armed[id(txn)] = (deadline, seq)
        heappush(self._heap, (deadline, seq, txn))

    def _forget(self, txn: Transaction) -> None:
        self._armed.pop(id(txn), None)
        key = getattr(txn, "key", None)
        if isinstance(key, TransactionKey):
            if self._by_key.get(key) is txn:
                del self._by_key[key]
        elif isinstance(txn, ServerTransaction):
            legacy = _legacy_key(txn.request)
            txns = self._legacy.get(legacy, [])
            if txn in txns:
                txns.remove(txn)
            if not txns:
                self._legacy.pop(legacy, None)


TABLES: dict[str, _Table] = {
    "client INVITE (RFC 3261 17.1.1, RFC 6026 7.2)": CLIENT_INVITE_TABLE,
    "client non-INVITE (RFC 3261 17.1.2)": CLIENT_NON_INVITE_TABLE,
    "server INVITE (RFC 3261 17.2.1, RFC 6026 7.1)": SERVER_INVITE_TABLE,
    "server non-INVITE (RFC 3261 17.2.2)": SERVER_NON_INVITE_TABLE,
}


def render_table(table: _Table) -> str:
    """A transition table as markdown, the form docs/sip-transactions.md shows."""
    lines = [
        "| state | input | actions | stops | starts | next state |",
        "|---|---|---|---|---|---|",
    ]
    for (state, what), row in table.items():
        actions = ", ".join(a.value for a in row.actions) or "-"
        stops = ", ".join(t.value for t in row.stop) or "-"
        starts = (
            ", ".join(
                t.value if i is Interval.INITIAL else f"{t.value} = {i.value}" for t, i in row.start
            )
            or "-"
        )
        lines.append(
            f"| {state.value} | {what.value} | {actions} | {stops} | {starts} | {row.next.value} |"
        )
    return "\n".join(lines)
